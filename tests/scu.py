"""pynetdicom as the tests' SCU, typed: its SOP classes by name, the identifier of an answer.

pynetdicom makes its ``pynetdicom.sop_class`` names at import time, which a type checker
cannot see; these are the same objects. The tests take them from the peer library, not
from ``broker.dicom.server``, so that a wrong UID in the broker fails them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import sop_class
from pynetdicom.sop_class import SOPClass

__all__ = [
    "ModalityPerformedProcedureStep",
    "ModalityWorklistInformationFind",
    "Verification",
    "create_then_complete",
    "established",
    "identifier_of",
    "leave_responses_to_requests",
]


def _named(name: str) -> SOPClass:
    found = getattr(sop_class, name)
    assert isinstance(found, SOPClass), name
    return found


Verification = _named("Verification")
ModalityWorklistInformationFind = _named("ModalityWorklistInformationFind")
ModalityPerformedProcedureStep = _named("ModalityPerformedProcedureStep")


def identifier_of(identifier: Dataset | None) -> Dataset:
    """The identifier of a pending C-FIND response, which always has one (PS3.7 Table 9.1-2)."""
    assert identifier is not None, "a pending C-FIND response without an identifier"
    return identifier


def create_then_complete(assoc: Any, mpps: Dataset) -> str:
    """N-CREATE ``mpps`` (IN PROGRESS) on an established association, then N-SET it
    COMPLETED; both must succeed. The instance's UID."""
    uid = str(generate_uid())
    status, _ = assoc.send_n_create(mpps, ModalityPerformedProcedureStep, uid)
    assert status.Status == 0
    end = Dataset()
    end.PerformedProcedureStepStatus = "COMPLETED"
    status, _ = assoc.send_n_set(end, ModalityPerformedProcedureStep, uid)
    assert status.Status == 0
    return uid


def leave_responses_to_requests(assoc: Any) -> Any:
    """``assoc`` (a requestor's association), its reactor no longer taking responses.

    pynetdicom (3.0.4) runs a reactor thread beside every association, a requestor's too,
    which polls the received DIMSE messages for requests to serve. ``send_c_find`` and the
    other ``send_*`` pause it first (``_reactor_checkpoint.clear()``, then wait for
    ``_is_paused``), but ``_is_paused`` is still True for a moment after the reactor was let
    go at the end of the previous request: a reactor not yet scheduled again then polls
    once after the next request went out and, if a response is already in, takes it and
    drops it as "Received unexpected C-FIND service message". The caller sees the other
    responses only: a C-FIND's pending answer lost, Success alone (a few times in 10,000
    back-to-back C-FINDs on a busy machine; pydicom/pynetdicom#875). A requestor here
    serves no requests, so the reactor's poll (the one non-blocking ``get_msg``) is made
    to leave everything but a request in the queue, for the request waiting for it."""
    dimse = assoc.dimse
    take = dimse.get_msg

    def get_msg(block: bool = False) -> Any:
        if not block:  # the reactor's poll
            _, message = dimse.peek_msg()
            if message is None or not message.is_valid_request:
                return None, None
        return take(block)

    dimse.get_msg = get_msg
    return assoc


@contextmanager
def established(ae: Any, port: int, called: str, **options: Any) -> Iterator[Any]:
    """An association of ``ae`` to 127.0.0.1:``port`` (``options``: ``AE.associate``'s),
    established, its responses left to its requests; released at the end."""
    assoc = leave_responses_to_requests(ae.associate("127.0.0.1", port, ae_title=called, **options))
    assert assoc.is_established
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
