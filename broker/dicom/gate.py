"""Broad queries take turns: a query over many candidates waits for, or is refused, a slot.

A station poll selects a few hundred entries through its index keys; a query that
names only a patient's name (wild cards or not) examines every entry, ≈ 0.3-0.5 ms
of processor time each, holding the GIL. Four such queries at once at 10,000
entries slowed a listed scanner's poll tenfold (p50 43 → 422 ms) and the HL7
intake with it (``bench.attacks``, scenario a), though each query stayed within
its own work budget (``broker.dicom.budget``). So a query whose candidate list is
longer than ``dicom_broad_query_candidates`` must hold one of
``dicom_broad_queries`` slots while it examines them:

- one caller (source address) runs one broad query at a time: a second one is
  refused at once (0xA700, "another broad query from this address is running");
- a broad query waits at most ``wait`` seconds for a slot, then is refused
  (0xA700, "the broker is busy with other broad queries; narrow the query").

Polls and every other narrow query never wait here. DICOMweb searches
(``WorklistService.search_as``) take turns in the same gate as C-FINDs: the broker
has one (``Services.broad_queries``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from broker.dicom.status import Status
from broker.errors import DicomServiceError

__all__ = ["BroadQueryBusy", "BroadQueryGate"]


class BroadQueryBusy(DicomServiceError):
    """A broad query refused by the gate (0xA700): the caller may try again later."""

    def __init__(self, comment: str) -> None:
        super().__init__(Status.OUT_OF_RESOURCES, comment)


class BroadQueryGate:
    """Slots for broad queries (module docstring); shared by every association."""

    def __init__(self, threshold: int, slots: int, wait: float) -> None:
        if threshold < 1 or slots < 1 or wait < 0:
            raise ValueError("threshold and slots must be at least 1, wait 0 or more")
        self.threshold = threshold
        self._slots = threading.BoundedSemaphore(slots)
        self._wait = wait
        self._lock = threading.Lock()
        self._running: set[str] = set()  # source addresses with a broad query running

    def __repr__(self) -> str:
        return f"BroadQueryGate(threshold={self.threshold}, running={len(self._running)})"

    def is_broad(self, candidates: int) -> bool:
        """Whether a query over ``candidates`` entries is broad (takes a slot)."""
        return candidates > self.threshold

    @contextlib.contextmanager
    def admit(self, candidates: int, address: str) -> Iterator[None]:
        """Hold a slot while a query over ``candidates`` entries from ``address`` runs;
        a narrow query passes straight through. Raises ``BroadQueryBusy`` (0xA700)."""
        if not self.is_broad(candidates):
            yield
            return
        with self._lock:
            if address in self._running:
                raise BroadQueryBusy(
                    "another broad query from this address is running; wait for it, or "
                    "narrow the query (station, date, patient ID)",
                )
            self._running.add(address)
        try:
            if not self._slots.acquire(timeout=self._wait):
                raise BroadQueryBusy(
                    "the broker is busy with other broad queries; narrow the query (station, "
                    "date, patient ID) or try again",
                )
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._running.discard(address)
