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
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["RefusalLog"]


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._what = what
        self._interval = interval
        self._max = max_addresses
        self._clock = clock
        self._lock = threading.Lock()
        # (address, reason) -> [time of the last line, refusals since]
        self._seen: OrderedDict[tuple[str, str], list[float]] = OrderedDict()

    def __repr__(self) -> str:
        return f"RefusalLog({self._what!r}, addresses={len(self._seen)})"

    def refused(self, address: str, reason: str) -> None:
        """Count one refusal; log it unless a line for it was written within the interval."""
        now = self._clock()
        key = (address, reason)
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self._interval:
                seen[1] += 1
                self._seen.move_to_end(key)
                return
            since = 0 if seen is None else int(seen[1])
            self._seen[key] = [now, 0]
            self._seen.move_to_end(key)
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
        if since:
            self._log.warning(
                "%s %s: %s (and %d more since the last line)", self._what, address, reason, since
            )
        else:
            self._log.warning("%s %s: %s", self._what, address, reason)
