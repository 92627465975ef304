"""The worklist's entries by station and by state, counted at most every few seconds and
shared by the console's dashboard and ``/metrics``.

Counting each station's ended entries walks indexes (``broker.store.counts``): on the
embedded Redis 6.2 a script per station, each holding Redis about 3 ms at 100,000 entries
on 20 stations, a whole pass about 70 ms (bench/RESULTS.md). That is too much for every
dashboard tick (one a second) or every scrape, so one :class:`SharedWorklistCounts` per
process keeps the last pass for :data:`MAX_AGE` seconds. The first caller after that
counts again, in its own thread (the dashboard's ticks and the admin routes run in worker
threads, never on the event loop); callers meanwhile wait for that pass rather than count
too, so there is never more than one pass at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.store.counts import Counts, WorklistCounts

__all__ = ["MAX_AGE", "SharedWorklistCounts", "Tally"]

MAX_AGE = 5.0  # seconds a pass is kept (the metrics keep their families as long)


@dataclass(frozen=True)
class Tally:
    """One pass: when it was counted (epoch seconds), what it found, and the most ids one
    station's ended count walked (a station over it is left out of
    ``counts.ended_by_station``; None when this server can count no station's)."""

    counted_at: float
    counts: WorklistCounts
    limit: int | None


class SharedWorklistCounts:
    """The worklist's counts by station and state (``counts.worklist(by_status=True)``),
    counted at most once per ``max_age`` seconds; ``configured``: the scanners' AE titles
    (counted even while they have no entry)."""

    def __init__(
        self,
        counts: Counts,
        configured: Iterable[str],
        *,
        max_age: float = MAX_AGE,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._counts = counts
        self._configured = tuple(configured)
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, Tally] | None = None  # (monotonic time of the pass, it)

    def __repr__(self) -> str:
        return f"SharedWorklistCounts({self._counts!r}, max_age={self.max_age})"

    def get(self) -> Tally:
        """The last pass, or a new one when it is ``max_age`` old (raises StoreError)."""
        with self._lock:
            started = self._clock.monotonic()
            if self._last is not None and started - self._last[0] < self.max_age:
                return self._last[1]
            now = self._clock.now()
            found = self._counts.worklist(now, self._configured, by_status=True)
            limit = self._counts.ended_limit if found.ended_by_station is not None else None
            tally = Tally(now, found, limit)
            self._last = (started, tally)
            return tally
