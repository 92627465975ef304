"""Refusals logged at a bounded rate: one line per address and reason a minute, with a count.

Every refused connection is logged with its address (never patient data), so a person
can see who knocks. A flood from one address must not turn that into a flood of log
lines, though: 28,720 refused MLLP connections in 10 s wrote 4.4 MiB of log in
``bench.attacks``. So the first refusal of an address for a reason is logged at once,
the following ones within ``interval`` seconds are counted, and the next line after
the interval says how many there were. The table of addresses is bounded (the least
recently refused go first), so addresses spread over a network cannot grow it either.
The audit trail (``broker.audit``) still records each refusal; it has its own bound.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from broker.common.clock import SYSTEM_CLOCK, Clock

__all__ = ["RateTable", "RefusalLog"]

Key = tuple[str, str]  # (address, reason)


class RateTable:
    """Lets the first hit of a key through each ``interval`` seconds and counts the rest;
    at most ``max_keys`` keys (the least recently hit go first). Thread-safe. Shared by
    the refusal log lines here and the audit trail's refusal records."""

    def __init__(
        self,
        interval: float = 60.0,
        max_keys: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.interval = interval
        self._max = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[Key, list[float]] = OrderedDict()  # key -> [start, held]

    def __len__(self) -> int:
        return len(self._seen)

    def hit(self, key: Key) -> tuple[bool, list[tuple[Key, int]]]:
        """Count one hit: whether it goes through, and the counts held back and now due
        (this key's previous interval, and keys pushed out of the table)."""
        now = self._clock.monotonic()
        due: list[tuple[Key, int]] = []
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.interval:
                seen[1] += 1
                self._seen.move_to_end(key)
                return False, due
            if seen is not None and seen[1]:
                due.append((key, int(seen[1])))
            self._seen[key] = [now, 0]
            self._seen.move_to_end(key)
            while len(self._seen) > self._max:
                old, (_, held) = self._seen.popitem(last=False)
                if held:
                    due.append((old, int(held)))
        return True, due

    def due(self, final: bool = False) -> list[tuple[Key, int]]:
        """The counts of intervals that are over (of every key when ``final``), forgotten."""
        now = self._clock.monotonic()
        out: list[tuple[Key, int]] = []
        with self._lock:
            for key, seen in list(self._seen.items()):
                if final or now - seen[0] >= self.interval:
                    if seen[1]:
                        out.append((key, int(seen[1])))
                    del self._seen[key]
        return out


class RefusalLog:
    """Logs ``"<what> <address>: <reason>"`` lines at a bounded rate (module docstring).
    Thread-safe: the DICOM accept thread and the MLLP event loop each hold one."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        interval: float = 60.0,
        max_addresses: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._log = logger
        self._what = what
        self._table = RateTable(interval, max_addresses, clock)

    def __repr__(self) -> str:
        return f"RefusalLog({self._what!r}, addresses={len(self._table)})"

    def refused(self, address: str, reason: str) -> None:
        """Count one refusal; log it unless a line for it was written within the interval."""
        key = (address, reason)
        through, due = self._table.hit(key)
        if not through:
            return
        since = sum(n for k, n in due if k == key)
        if since:
            self._log.warning(
                "%s %s: %s (and %d more since the last line)", self._what, address, reason, since
            )
        else:
            self._log.warning("%s %s: %s", self._what, address, reason)
