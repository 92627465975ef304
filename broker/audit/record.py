"""The audit records of the broker's faces, built where they happen with one call each.

Each builder takes what the face already has (a pynetdicom event, a peer address, an
``HL7Error``) and keeps only what an audit record may hold (``broker.audit.events``):
addresses, AE titles made loggable, statuses, counts, key names.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

from broker.audit.events import AuditEvent, AuditType, Outcome, query_keys
from broker.audit.writer import AuditSink
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.common.refusals import RateTable
from broker.dicom.peers import caller_of, loggable_ae
from broker.errors import HL7Error
from broker.hl7.message import ParsedMessage
from broker.hl7.senders import peer_address

__all__ = [
    "AssociationRecords",
    "FindAudit",
    "RefusalRecords",
    "association",
    "connection_refused",
    "message_refused",
    "mpps_event",
    "web_mpps",
    "web_query",
]

_FIND_FAILURE = 0xC000  # statuses from here on are failures of the broker (PS3.4 C.4.1.1.4)


def connection_refused(listener: str, address: str, reason: str) -> AuditEvent:
    """A connection closed before any protocol: ``listener`` is ``hl7`` or ``dicom``."""
    return AuditEvent(
        AuditType.CONNECTION_REFUSED,
        Outcome.REFUSED,
        address=address,
        reason=reason,
        details={"listener": listener},
    )


class RefusalRecords:
    """``connection-refused`` records at a bounded rate, so that a flood cannot push the
    rest of the trail out of the stream (28,720 refused MLLP connections in 10 s in
    ``bench.attacks`` would be a tenth of ``audit_max_events``): the first refusal of an
    address for a reason is recorded at once; the following ones within ``interval``
    seconds are counted, and one record with their number (``details.more``) follows
    when the interval is over, or as the writer stops. The table is bounded: the least
    recently refused address goes first, its count recorded."""

    def __init__(
        self,
        sink: AuditSink,
        listener: str,
        *,
        interval: float = 60.0,
        max_addresses: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sink = sink
        self._listener = listener
        self._interval = interval
        self._table = RateTable(interval, max_addresses, clock)
        register = getattr(sink, "on_tick", None)
        if register is not None:
            register(self.tick)

    def refused(self, address: str, reason: str) -> None:
        """One refused connection."""
        key = (address, reason)
        through, due = self._table.hit(key)
        self._write([*due, (key, 0)] if through else due)

    def tick(self, final: bool = False) -> None:
        """Record the counts of intervals that are over (all of them when ``final``)."""
        self._write(self._table.due(final))

    def _write(self, counts: list[tuple[tuple[str, str], int]]) -> None:
        for (address, reason), more in counts:
            event = connection_refused(self._listener, address, reason)
            if more:
                details = {**event.details, "more": more, "seconds": self._interval}
                event = AuditEvent(
                    event.type, event.outcome, address=address, reason=reason, details=details
                )
            self._sink.record(event)


def association(ae: str, address: str, refusal: str = "", *, failed: bool = False) -> AuditEvent:
    """A DICOM association accepted (no ``refusal``) or rejected (A-ASSOCIATE-RJ)."""
    if not refusal:
        return AuditEvent(AuditType.ASSOCIATION_ACCEPTED, address=address, ae=loggable_ae(ae))
    return AuditEvent(
        AuditType.ASSOCIATION_REJECTED,
        Outcome.FAILED if failed else Outcome.REFUSED,
        address=address,
        ae=loggable_ae(ae),
        reason=refusal,
    )


# pynetdicom's own rejections (ACSE._negotiate_as_acceptor): (source, diagnostic) -> why
_LIBRARY_REJECTIONS = {
    (1, 7): "called AE title not recognized",
    (3, 2): "local limit exceeded (dicom_max_associations)",
    (2, 1): "user identity not verified",
}


class AssociationRecords:
    """DICOM associations on the audit trail once their answer is sent: pynetdicom's
    EVT_ACCEPTED, and EVT_REJECTED for the rejections pynetdicom makes itself; the
    acceptance policy records its own rejections, with its rule, and notes them in
    ``by_policy`` (``broker.dicom.server``)."""

    def __init__(self, audit: AuditSink) -> None:
        self.audit = audit
        self.by_policy: set[int] = set()  # associations being rejected by the policy

    def accepted(self, event: Any) -> None:
        self.audit.record(association(*caller_of(event)))

    def rejected(self, event: Any) -> None:
        if id(event.assoc) in self.by_policy:
            return
        rj = getattr(event.assoc.acceptor, "primitive", None)
        code = (getattr(rj, "result_source", 0), getattr(rj, "diagnostic", 0))
        why = _LIBRARY_REJECTIONS.get(code, "rejected by the association layer")
        self.audit.record(association(*caller_of(event), why))


def _caller(event: Any) -> tuple[str, str]:
    ae, address = caller_of(event)
    return loggable_ae(ae), address


class FindAudit:
    """One C-FIND's record: its keys when the identifier is decoded, its status when it
    ends (``status``, as yielded), its answers when it is written (:meth:`done`)."""

    __slots__ = ("_event", "_keys", "_phi", "_sink", "status")

    def __init__(self, sink: AuditSink, event: Any) -> None:
        self._sink = sink
        self._event = event
        self._keys: list[str] = []
        self._phi: dict[str, str] = {}
        self.status: int | Dataset = 0

    def query(self, identifier: Dataset) -> None:
        """Note the decoded identifier's keys (and, with ``log_phi``, their values)."""
        self._keys, self._phi = query_keys(identifier, self._sink.log_phi)

    def done(self, answers: int) -> None:
        """Write the record: ``answers`` pending responses were sent."""
        status = self.status
        code = int(status.get("Status", 0xC000)) if isinstance(status, Dataset) else int(status)
        if code in (0x0000, 0xFE00):  # success; cancelled by the caller
            outcome = Outcome.SUCCESS
        else:
            outcome = Outcome.FAILED if code >= _FIND_FAILURE else Outcome.REFUSED
        details: dict[str, Any] = {"answers": answers, "status": f"{code:04X}", "keys": self._keys}
        syntax = getattr(getattr(self._event, "context", None), "transfer_syntax", None)
        if syntax:
            details["transfer_syntax"] = str(syntax)
        ae, address = _caller(self._event)
        # the Error Comment of a failure: the broker's words, naming a key, never its value
        why = str(status.get("ErrorComment", "")) if isinstance(status, Dataset) else ""
        record = AuditEvent(
            AuditType.QUERY, outcome, address, ae, reason=why, details=details, phi=self._phi
        )
        self._sink.record(record)


def web_query(
    sink: AuditSink,
    identifier: Dataset,
    caller: tuple[str, str, str],
    *,
    answers: int = 0,
    refused: str = "",
) -> None:
    """One DICOMweb search's record (PS3.18 §14.4), as a C-FIND's (:class:`FindAudit`):
    ``caller`` is the scanner's AE title, the address and the token's name; its keys (and,
    with ``log_phi``, their values), its answers, or why it was refused."""
    ae, address, user = caller
    keys, phi = query_keys(identifier, sink.log_phi)
    details: dict[str, Any] = {"answers": answers, "keys": keys, "via": "dicomweb"}
    outcome = Outcome.REFUSED if refused else Outcome.SUCCESS
    sink.record(
        AuditEvent(
            AuditType.QUERY,
            outcome,
            address,
            loggable_ae(ae),
            user=user,
            reason=refused,
            details=details,
            phi=phi,
        )
    )


def mpps_event(
    operation: str,
    event: Any,
    *,
    status: int = 0,
    outcome: Outcome = Outcome.SUCCESS,
    uid: str = "",
    reason: str = "",
    **details: Any,
) -> AuditEvent:
    """An MPPS N-CREATE or N-SET (``operation``), with its DIMSE status; ``uid`` the
    instance (else the one the request names); ``details`` such as the new Performed
    Procedure Step Status and the number of linked worklist entries."""
    kind = AuditType.MPPS_CREATE if operation == "N-CREATE" else AuditType.MPPS_SET
    if not uid:
        request = getattr(event, "request", None)
        named = getattr(request, "AffectedSOPInstanceUID", None) or getattr(
            request, "RequestedSOPInstanceUID", None
        )
        uid = str(named or "").strip()[:64]
    ae, address = _caller(event)
    return AuditEvent(
        kind,
        outcome,
        address=address,
        ae=ae,
        target=uid,
        reason=reason,
        details={"status": f"{status:04X}", **details},
    )


def message_refused(peer: str, msg: ParsedMessage, error: HL7Error) -> AuditEvent:
    """An HL7 message refused before any mapping (sender, header, clock): MSH-3^MSH-4,
    MSH-10, MSH-9 and where and how it was refused; never a field past the MSH."""
    return AuditEvent(
        AuditType.MESSAGE_REFUSED,
        Outcome.REFUSED,
        address=peer_address(peer),
        sender=f"{msg.sending_application}^{msg.sending_facility}".rstrip("^")[:64],
        target=msg.control_id[:64],
        reason=error.text,
        details={
            "type": msg.message_type[:16],
            "ack": f"{error.ack_code.value} {error.err_code.value}",
            "location": error.location or "",
        },
    )


def web_mpps(
    operation: str,
    caller: tuple[str, str, str],
    *,
    uid: str,
    status: int = 0,
    outcome: Outcome = Outcome.SUCCESS,
    reason: str = "",
    **details: Any,
) -> AuditEvent:
    """A DICOMweb MPPS create or update (PS3.18 15.4, 15.5) as :func:`mpps_event` records
    its DIMSE twin (``operation`` N-CREATE or N-SET, its DIMSE status): ``caller`` is the
    scanner's AE title, the address and the token's name; ``details`` the new Performed
    Procedure Step Status and the number of linked entries, never a value of the payload."""
    kind = AuditType.MPPS_CREATE if operation == "N-CREATE" else AuditType.MPPS_SET
    ae, address, user = caller
    return AuditEvent(
        kind,
        outcome,
        address=address,
        ae=loggable_ae(ae),
        user=user,
        target=uid.strip()[:64],
        reason=reason,
        details={"status": f"{status:04X}", "via": "dicomweb", **details},
    )
