"""The work one C-FIND may do: candidate entries examined, processor time spent.

Matching holds the GIL, so a query that examines every entry of a large
worklist, slowly, delays every other association and the HL7 intake with it.
Each query gets a budget (``dicom_max_candidates``, ``dicom_query_cpu_seconds``);
past either, it ends with 0xA700 "Refused: Out of resources" (PS3.4 K.4.1.1.4,
C.4.1.1.4) and an Error Comment that asks for a narrower query, instead of
running on. Candidates are counted as they are read from the store, which
reads them in batches as they are needed, so the work stops at the limit.

The time is the processor time of the query's own thread (``time.thread_time``)
while the query runs: waiting does not spend it, whether for pynetdicom to send
an answer (paused here), for Redis, or for the GIL while other queries run.
A wall clock would refuse legitimate queries on a busy broker: eight broad
queries at once over 100,000 entries (≈ 3,000 answers each, 45 s apiece in
bench/RESULTS.md) were all refused at 10 s of wall time, though each needs a
few seconds of processor time. Bounding processor time bounds what one query
takes from the others, whatever else runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from broker.dicom.status import Status
from broker.errors import DicomServiceError

__all__ = ["QueryBudget"]


class QueryBudget:
    """One query's budget; ``examine`` before each candidate entry. Made and used in
    the thread that runs the query (the default clock is that thread's)."""

    def __init__(
        self,
        max_candidates: int,
        seconds: float,
        clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self._max_candidates = max_candidates
        self._seconds = seconds
        self._clock = clock
        self._spent = 0.0
        self._since: float | None = clock()
        self.examined = 0

    def __repr__(self) -> str:
        return (
            f"QueryBudget(examined={self.examined}/{self._max_candidates}, "
            f"seconds={self.seconds_spent:.3f}/{self._seconds})"
        )

    @property
    def seconds_spent(self) -> float:
        """Processor time spent on the query so far, pauses excluded."""
        running = 0.0 if self._since is None else self._clock() - self._since
        return self._spent + running

    def pause(self) -> None:
        """The query waits for someone else (its answer is being sent)."""
        if self._since is not None:
            self._spent += self._clock() - self._since
            self._since = None

    def resume(self) -> None:
        if self._since is None:
            self._since = self._clock()

    def expect(self, candidates: int) -> None:
        """Refuse at once a query that will have to examine ``candidates`` entries,
        more than the budget allows (it sorts, or refuses past its answer limit)."""
        if candidates > self._max_candidates:
            raise self._refusal()

    def examine(self) -> None:
        """Count one more candidate entry, or raise when the budget is spent."""
        if self.examined >= self._max_candidates:
            raise self._refusal()
        if self.seconds_spent > self._seconds:
            raise DicomServiceError(
                Status.OUT_OF_RESOURCES,
                f"over {self._seconds:g} CPU seconds of searching; narrow the query",
            )
        self.examined += 1

    def _refusal(self) -> DicomServiceError:
        return DicomServiceError(
            Status.OUT_OF_RESOURCES,
            f"over {self._max_candidates} candidate entries; narrow the query",
        )
