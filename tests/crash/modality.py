"""The modality of a soak run: for each case handed to it, it finds the step by C-FIND
(accession number), reports MPPS IN PROGRESS (N-CREATE) and COMPLETED (N-SET), while the
broker is killed and restarted under it. A request that got no answer (the association
was lost) is sent again on a new association, as a modality retries; an answer saying the
first try had already done it (0x0111 to an N-CREATE, "may no longer be updated" to an
N-SET) ends that step."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.dicom.mpps import NO_LONGER_UPDATABLE
from tests.crash.workload import Case
from tests.e2e.test_mpps_cycle import completed, n_create_from
from tests.scu import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    leave_responses_to_requests,
)

__all__ = ["Modality"]

FIND = ModalityWorklistInformationFind
_DUPLICATE = 0x0111
_FAILURE = 0x0110
_PAUSE = 0.1


def _find_query(accession: str) -> Dataset:
    query = Dataset()
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "RequestedProcedureID"):
        setattr(query, keyword, "")
    query.AccessionNumber = accession
    step = Dataset()
    step.Modality = ""
    step.ScheduledProcedureStepID = ""
    step.ScheduledProcedureStepStatus = ""
    query.ScheduledProcedureStepSequence = [step]
    return query


class Modality(threading.Thread):
    """Performs the cases put in ``queue`` on the broker at ``port()`` (0: down)."""

    def __init__(self, port: Callable[[], int], seed: int, step_seconds: float = 180.0):
        super().__init__(name="soak-modality", daemon=True)
        self.cases: queue.Queue[Case | None] = queue.Queue()
        self.done: set[int] = set()
        self.problems: Counter[str] = Counter()  # what went wrong, by kind
        self.retries = 0
        self._port = port
        self._seed = seed
        self._step_seconds = step_seconds
        self._ae = AE(ae_title="SOAK_CT")
        self._ae.add_requested_context(ModalityWorklistInformationFind)
        self._ae.add_requested_context(ModalityPerformedProcedureStep)
        self._ae.acse_timeout = self._ae.dimse_timeout = self._ae.network_timeout = 15
        self._assoc: Any = None
        self._assoc_port = 0
        self._origin = time.monotonic()  # times in problems are said from here

    def __repr__(self) -> str:
        return f"Modality(done={len(self.done)})"

    def finish(self) -> None:
        """Stop once the cases queued so far are done."""
        self.cases.put(None)

    def run(self) -> None:
        try:
            while (case := self.cases.get()) is not None:
                self._perform(case)
        finally:
            self._release()

    def _perform(self, case: Case) -> None:
        query = _find_query(case.accession)
        deadline = time.monotonic() + self._step_seconds
        answers: list[tuple[Dataset, Dataset | None]] = []
        while time.monotonic() < deadline:
            answers = self._exchange(lambda a: list(a.send_c_find(query, FIND))) or []
            if answers and answers[-1][0].Status == 0:
                break
            time.sleep(_PAUSE)  # no answer, or a failure status (the store is down): again
        items = _items(answers)
        if len(items) != 1:
            at = time.monotonic() - self._origin
            self.problems[f"C-FIND found {len(items)} entries in {len(answers)} responses for "
                          f"case {case.number} at {at:.1f} s"] += 1  # fmt: skip
            return
        uid = f"1.2.826.0.1.3680043.10.543.77.{self._seed}.{case.number}"
        create = n_create_from(items[0])
        if not self._step(lambda a: a.send_n_create(create, ModalityPerformedProcedureStep, uid),
                          _DUPLICATE, "N-CREATE"):  # fmt: skip
            return
        end = completed()
        if self._step(lambda a: a.send_n_set(end, ModalityPerformedProcedureStep, uid),
                      _FAILURE, "N-SET"):  # fmt: skip
            self.done.add(case.number)

    def _step(self, request: Callable[[Any], Any], done_already: int, name: str) -> bool:
        """Send ``request`` until it succeeds; a retry answered ``done_already`` succeeded."""
        deadline = time.monotonic() + self._step_seconds
        tried = False
        while time.monotonic() < deadline:
            reply = self._exchange(request)
            if reply is None:
                tried = True
                continue
            status: Dataset = reply[0]
            code = int(status.Status)
            comment = str(status.get("ErrorComment", ""))
            if code == 0:
                return True
            retry_done = code == done_already and (
                code != _FAILURE or NO_LONGER_UPDATABLE in comment
            )
            if tried and retry_done:
                return True
            if code != _FAILURE:
                self.problems[f"{name} answered 0x{code:04X}"] += 1
            tried = True
            time.sleep(_PAUSE)  # a processing failure (store down): try again
        self.problems[f"{name} not done in time"] += 1
        return False

    def _exchange(self, request: Callable[[Any], Any]) -> Any:
        """``request(association)``'s reply, retried until the broker answers; None once
        when an association was lost (the request may or may not have been done)."""
        deadline = time.monotonic() + self._step_seconds
        while time.monotonic() < deadline:
            assoc = self._association()
            if assoc is None:
                time.sleep(_PAUSE)  # the broker is down: wait for its restart
                continue
            reply = request(assoc)
            lost = not assoc.is_established or _no_status(reply)
            if not lost:
                return reply
            self.retries += 1
            self._release()
            return None
        return None

    def _association(self) -> Any:
        """The association to the broker now running (a restarted one has a new port)."""
        port = self._port()
        if self._assoc is not None and self._assoc.is_established and port == self._assoc_port:
            return self._assoc
        self._release()
        if not port:
            return None
        assoc = self._ae.associate("127.0.0.1", port, ae_title="MWL_BROKER")
        leave_responses_to_requests(assoc)  # or a response may be lost (tests.scu)
        if not assoc.is_established:  # refused: a broker just killed
            _close_socket(assoc)
        self._assoc = assoc if assoc.is_established else None
        self._assoc_port = port
        return self._assoc

    def _release(self) -> None:
        assoc, self._assoc = self._assoc, None
        if assoc is not None:
            if assoc.is_established:
                assoc.abort()  # its broker may be gone: nobody to answer a release
            _close_socket(assoc)


def _items(answers: list[tuple[Dataset, Dataset | None]]) -> list[Dataset]:
    """The identifiers of the pending responses of a C-FIND."""
    return [ds for status, ds in answers if ds is not None and status.Status != 0]


def _close_socket(assoc: Any) -> None:
    """Close an ended association's socket: pynetdicom leaves it open when the connection
    was refused or lost (its ``close`` does nothing then), for the garbage collector."""
    holder = assoc.dul.socket
    raw = getattr(holder, "socket", None) if holder is not None else None
    if raw is not None:
        with contextlib.suppress(OSError):
            raw.close()


def _no_status(reply: Any) -> bool:
    if isinstance(reply, list):  # C-FIND: (status, identifier) pairs, the last one final
        return not reply or "Status" not in reply[-1][0]
    return "Status" not in reply[0]
