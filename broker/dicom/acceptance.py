"""Who may open an association: the EVT_REQUESTED check and the A-ASSOCIATE-RJ it sends.

The policy is pure (``broker.dicom.profiles.ProfileSet.decide``: calling AE title and
source address -> ``Decision``); this module applies it to pynetdicom's association as
soon as the A-ASSOCIATE-RQ is read, rejects as the table in ``broker.dicom.server``'s
docstring says (PS3.8 9.3.4), logs one WARNING line and records the refusal on the audit
trail. With TLS client certificates the certificate must also name the caller.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any

from pynetdicom import evt

from broker.audit.record import AssociationRecords, association
from broker.common.tls import certificate_names
from broker.dicom.peers import loggable_ae
from broker.dicom.profiles import Decision, Refusal
from broker.dicom.status import RejectReason, RejectResult, RejectSource

__all__ = ["Admission", "admission_check"]

log = logging.getLogger("broker.dicom.server")  # the association lines, one logger

# The acceptance policy: (Calling AE Title, source address) -> Decision.
Admission = Callable[[str, str], Decision]


def _rejection(refusal: Refusal) -> RejectReason:
    """The A-ASSOCIATE-RJ reason for a refusal (PS3.8 Table 9-21, source service user)."""
    if refusal.unknown_caller:
        return RejectReason.CALLING_AE_TITLE_NOT_RECOGNIZED
    return RejectReason.NO_REASON_GIVEN


def admission_check(
    admit: Admission, certificates: bool = False, records: AssociationRecords | None = None
) -> Callable[[Any], None]:
    """The EVT_REQUESTED handler: reject the association unless ``admit`` accepts the
    caller (module docstring). With ``certificates`` (TLS with client certificates) the
    caller's verified certificate must also carry its Calling AE Title as a name (subject
    CN or DNS alternative name, any case): a certificate names the one scanner it was
    issued to.

    pynetdicom logs and swallows an exception of a notification handler and then
    negotiates as usual, so every failure here rejects (or aborts): it fails closed.
    """

    def on_requested(event: Any) -> None:
        assoc = event.assoc
        address, calling = "?", ""
        result, reason = RejectResult.TRANSIENT, RejectReason.NO_REASON_GIVEN
        try:
            address = str(assoc.requestor.address)
            calling = str(assoc.requestor.primitive.calling_ae_title)
            refusal = admit(calling, address).refusal
            if refusal is None and certificates and not _certified(assoc, calling):
                refusal = Refusal.CERTIFICATE_NAME
        except Exception:
            log.exception("DICOM association from %s: the acceptance check failed", address)
            why = "the acceptance check failed"
        else:
            if refusal is None:
                return
            why = refusal.value
            result, reason = RejectResult.PERMANENT, _rejection(refusal)
        log.warning(
            "DICOM association from %s, calling AE title '%s', rejected (%s, %s): %s",
            address,
            loggable_ae(calling),
            result.name.lower(),
            reason.name.lower().replace("_", " ").replace("ae title", "AE title"),
            why,
        )
        if records is not None:
            failed = result is RejectResult.TRANSIENT
            records.audit.record(association(calling, address, why, failed=failed))
            records.by_policy.add(id(assoc))
        try:
            _reject(assoc, result, reason)
        finally:
            if records is not None:
                records.by_policy.discard(id(assoc))

    return on_requested


def _certified(assoc: Any, calling: str) -> bool:
    """Whether the association's TLS peer certificate names the Calling AE Title."""
    sock = assoc.dul.socket.socket if assoc.dul.socket is not None else None
    if not isinstance(sock, ssl.SSLSocket):
        return False
    return calling.strip().lower() in certificate_names(sock.getpeercert())


def _reject(assoc: Any, result: RejectResult, reason: RejectReason) -> None:
    """Send the A-ASSOCIATE-RJ and end the association, as pynetdicom does for its own
    rejections (``ACSE._negotiate_as_acceptor``); A-ABORT should that fail."""
    try:
        assoc.acse.send_reject(int(result), int(RejectSource.SERVICE_USER), int(reason))
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()
    except Exception:
        log.exception("could not reject a DICOM association; aborting it")
        assoc.abort()
