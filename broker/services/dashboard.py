"""The console's dashboard: one snapshot of what the broker is doing, cheap to compute.

A snapshot holds the messages received per minute over the last hour, the ACK codes
(AA, AE, AR) answered in that hour, the error list's newest entries (message id, type,
ERR location and code: never a value the message carried), and the worklist's entries
by station and by state. Every number comes from an index Redis keeps anyway
(``broker.store.counts``); the cheap forms, said here once:

- the AE/AR split of the messages refused for their content reads each one's ACK code,
  at most ``MAX_ACK_READS`` of the hour (past it, the rest count as AE); a duplicate
  counts as an AA (it is answered with the first message's ACK);
- the worklist's states are two: open (scheduled or in progress) and ended (completed,
  discontinued or canceled, not yet purged), from the ``ended`` index: a step ended by
  MPPS counts at once, one ended by the RIS from the next purge on (at most
  ``retention_interval_seconds`` late); telling scheduled from in progress would read
  every entry;
- the station AE titles are found by a ``SCAN`` of the key space, kept a minute: a new
  station shows up to a minute late;
- the open and ended entries of each station (``worklist.stations``) walk indexes, so
  they are not counted for every snapshot: they come from the pass the metrics share
  (:class:`~broker.services.worklist_counts.SharedWorklistCounts`, at most
  ``MAX_AGE`` seconds old), which the snapshot dates (``counted_at``, ``age_seconds``);
  every figure of a row comes from that one pass. A station whose entries and the ended
  ones both number more than the pass's ``limit`` is not counted (its open and ended
  are null), nor is any when the server cannot count them (before Redis 6.2: ``limit``
  null). An entry naming several stations counts in each row, one naming none in
  none: the ``all`` row is the worklist's, not the rows' sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.services.worklist_counts import SharedWorklistCounts, Tally
from broker.store.counts import Counts, LogCounts, WorklistCounts

__all__ = ["DashboardService", "Snapshot"]


@dataclass(frozen=True)
class Snapshot:
    time: float
    messages: LogCounts
    worklist: WorklistCounts
    stations: Tally  # the open and ended entries by station, from a shared pass

    def as_json(self) -> dict[str, Any]:
        """The snapshot as the console reads it (plain JSON types)."""
        m, w = self.messages, self.worklist
        return {
            "time": self.time,
            "messages": {
                "per_minute": list(m.per_minute),
                "last_hour": sum(m.per_minute),
                "acks": dict(m.acks),
                "errors": m.errors,
                "warnings": m.warnings,
                "total": m.total,
                "recent_errors": [
                    {
                        "id": e.id,
                        "type": e.message_type,
                        "location": e.location,
                        "code": e.code,
                        "ack_code": e.ack_code,
                        "received_at": e.received_at,
                    }
                    for e in m.recent_errors
                ],
            },
            "worklist": {
                "total": w.total,
                "by_status": {"open": max(0, w.total - w.ended), "ended": w.ended},
                "by_station": dict(w.by_station),
                "stations": _stations(self.stations, self.time),
            },
        }


def _stations(tally: Tally, now: float) -> dict[str, Any]:
    """The table of entries by station and state, from one pass (see the module doc)."""
    w = tally.counts
    ended = w.ended_by_station or {}
    rows = []
    for station, n in sorted(w.by_station.items()):
        done = ended.get(station)
        rows.append(
            {
                "station": station,
                "entries": n,
                "open": None if done is None else max(0, n - done),
                "ended": done,
            }
        )
    return {
        "counted_at": tally.counted_at,
        "age_seconds": round(max(0.0, now - tally.counted_at), 1),
        "limit": tally.limit,
        "rows": rows,
        "all": {"entries": w.total, "open": max(0, w.total - w.ended), "ended": w.ended},
    }


class DashboardService:
    """Snapshots from ``counts`` (read at each) and ``shared`` (the pass by station and
    state); ``stations`` are the configured scanners' AE titles (counted even while they
    have no entry)."""

    def __init__(
        self,
        counts: Counts,
        stations: Mapping[str, Any],
        shared: SharedWorklistCounts,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._counts = counts
        self._stations = tuple(stations)
        self._shared = shared
        self._clock = clock

    def __repr__(self) -> str:
        return f"DashboardService({self._counts!r})"

    def snapshot(self) -> Snapshot:
        stations = self._shared.get()  # first: counted at or before the snapshot's time
        now = self._clock.now()
        messages = self._counts.messages(now)
        worklist = self._counts.worklist(now, self._stations)
        return Snapshot(now, messages, worklist, stations)
