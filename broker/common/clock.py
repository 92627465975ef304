"""The broker's clock: time is read through one object, handed to whatever needs it.

The rule: a part whose *stored or observable* result depends on the time takes a
:class:`Clock` (``clock=`` of its constructor, :data:`SYSTEM_CLOCK` by default) and
never calls ``time.time()`` or ``datetime.now()`` itself. That covers the message
log's time stamps and retention cutoff, the retention purge, MPPS and mapping-version
times, an HL7 message's arrival time, MSH-7 of an ACK and the clock-skew check, the
"today" of a worklist query, and the intervals of the refusal summaries. A test hands
such a part a :class:`ManualClock` and moves time by hand: it never sleeps for a
record to age.

Left to ``time`` on purpose:

- timeouts and deadlines that only bound a wait or pace work, where nothing stored or
  answered depends on the time read: the network code (``mllp/``, ``dicom/transport``,
  ``dicom/guard``, the DICOM server's drain), waits for a Redis server to start, the
  mapping poll, the schema lease's renewal, retry pauses and once-a-minute warnings
  (``time.monotonic()``);
- durations measured for a log line (``time.perf_counter()``);
- a C-FIND's work budget (``dicom/budget``): CPU time of its thread
  (``time.thread_time()``), not a clock;
- Lua scripts that read Redis's ``TIME``: the server's clock, shared by every broker.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Final, Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock", "local_date"]


class Clock(Protocol):
    """Where the time comes from."""

    def now(self) -> float:
        """Wall-clock time: seconds since the epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back: for intervals."""
        ...


class SystemClock:
    """The machine's clocks (``time.time``, ``time.monotonic``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SystemClock()"

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Final[Clock] = SystemClock()

_START = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC: any fixed instant will do


class ManualClock:
    """A clock that moves only when told to (for tests): :meth:`advance` moves both
    readings; :meth:`set` makes the wall clock jump, as an operator or NTP may."""

    __slots__ = ("_monotonic", "_now")

    def __init__(self, now: float = _START, *, monotonic: float = 0.0) -> None:
        self._now = now
        self._monotonic = monotonic

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r}, monotonic={self._monotonic!r})"

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        if seconds < 0:
            raise ValueError("a clock does not go back: use set() for a wall-clock jump")
        self._now += seconds
        self._monotonic += seconds

    def set(self, now: float) -> None:
        """Set the wall clock to ``now`` (epoch seconds); the monotonic reading stays."""
        self._now = now


def local_date(clock: Clock, zone: dt.tzinfo | None) -> dt.date:
    """Today's date in ``zone`` (None: the machine's local zone) by ``clock``."""
    return dt.datetime.fromtimestamp(clock.now(), zone).date()
