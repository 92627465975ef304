"""Writing audit events to the Redis stream ``{p}:audit`` without ever making a caller wait.

The broker's hot paths (a C-FIND, an MLLP connection, an association) call
:meth:`AuditWriter.record`, which only appends the event to a bounded in-memory
queue: no I/O, no lock on the way in. One background thread takes what is queued,
in batches, about once a second (sooner when a batch is full), and writes each batch
with one pipelined round trip (``XADD … MAXLEN ~ audit_max_events``: the stream is
capped, the oldest records go first).

When the queue is full (Redis slow or away, or a flood of refusals) an event is
dropped and counted; the thread logs the count (never an event's content) and,
as soon as Redis takes writes again, adds an ``audit-dropped`` record saying how
many were lost. While Redis is away the thread keeps the batch it holds and tries
again with a growing pause (up to 30 s); nothing else waits for it. ``stop`` writes
what is queued, for at most its timeout, and says how many records it could not.

A one-off command (``mwl-broker mapping publish``, ``purge``…) writes its records
at once with :class:`CommandAudit`, with the operating-system user filled in.
"""

from __future__ import annotations

import collections
import dataclasses
import getpass
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis

from broker.audit.events import AuditEvent, AuditType, Outcome, to_fields

__all__ = [
    "NO_AUDIT",
    "QUEUE_CAPACITY",
    "AuditSink",
    "AuditWriter",
    "CommandAudit",
    "os_user",
]

log = logging.getLogger(__name__)

QUEUE_CAPACITY = 10_000  # events waiting for Redis; more are dropped and counted
BATCH = 256  # events per round trip
# Seconds between two writes unless a batch is full: records gather, and the stream is
# written (and, at appendfsync always, fsynced by Redis) at most about once a second, so
# a read-only load (C-FIND) does not turn into a stream of small Redis writes.
_INTERVAL = 1.0
_MAX_PAUSE = 30.0  # seconds between attempts while Redis refuses writes
_WARN_EVERY = 60.0  # seconds between two warnings about the same trouble


class AuditSink(Protocol):
    """Where the broker's parts send audit events."""

    @property
    def log_phi(self) -> bool:
        """Whether query values may be recorded (``phi``); ``log_phi`` of the settings."""
        ...

    def record(self, event: AuditEvent) -> None:
        """Keep ``event``; must not block or raise."""
        ...


class _NoAudit:
    """A sink that keeps nothing: for parts built without an audit trail (tools, tests)."""

    log_phi = False

    def record(self, event: AuditEvent) -> None:
        return None


NO_AUDIT: AuditSink = _NoAudit()


def os_user() -> str:
    """The operating-system user running this process, or ``?``."""
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment nor in the password database
        return "?"


def _add(pipe: Any, stream: str, fields: dict[str, str], max_events: int) -> None:
    pipe.xadd(stream, fields, maxlen=max_events, approximate=True)


class AuditWriter:
    """The broker's audit sink: a bounded queue and one thread writing it to Redis."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        *,
        max_events: int,
        node: str = "",
        log_phi: bool = False,
        capacity: int = QUEUE_CAPACITY,
    ) -> None:
        self._client = client
        self._stream = stream
        self._max_events = max_events
        self._node = node or socket.gethostname()
        self.log_phi = log_phi
        self._capacity = capacity
        self._pending: collections.deque[AuditEvent] = collections.deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = False
        self._dropped = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._batch: list[AuditEvent] = []  # taken from the queue, being written
        self._tickers: list[Callable[[bool], None]] = []
        self._warned: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"AuditWriter(stream={self._stream!r}, max_events={self._max_events})"

    @property
    def dropped(self) -> int:
        """Events dropped and not yet reported by an ``audit-dropped`` record."""
        return self._dropped

    def record(self, event: AuditEvent) -> None:
        """Queue ``event`` for the stream; when the queue is full, count it as dropped."""
        if len(self._pending) < self._capacity:
            self._pending.append(event)
            return
        with self._lock:
            self._dropped += 1

    def on_tick(self, ticker: Callable[[bool], None]) -> None:
        """Call ``ticker(final)`` from the writing thread about once a second, and once
        with ``final`` true as the writer stops (``record.RefusalRecords``)."""
        self._tickers.append(ticker)

    def _tick(self, final: bool = False) -> None:
        for ticker in self._tickers:
            try:
                ticker(final)
            except Exception:  # a ticker must not stop the writer
                log.exception("audit trail: a periodic record failed")

    def start(self) -> None:
        """Start the writing thread."""
        if self._thread is not None:
            raise RuntimeError("the audit writer was already started")
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far is in Redis; False if ``timeout`` passed."""
        self._wake.set()
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending and not self._busy, timeout)

    def stop(self, timeout: float) -> None:
        """Write what is queued for at most ``timeout`` seconds, then stop the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._tick(final=True)
        self._stopping.set()
        self._wake.set()
        thread.join(timeout)
        with self._lock:
            left = len(self._pending) + len(self._batch) + self._dropped
        if left:
            log.warning(
                "audit trail: %d record(s) not written at shutdown (Redis unavailable)", left
            )

    def _run(self) -> None:
        pause = 0.0
        while True:
            self._tick()
            with self._lock:
                if not self._batch:
                    count = min(BATCH, len(self._pending))
                    self._batch = [self._pending.popleft() for _ in range(count)]
                dropped = self._dropped
                self._busy = bool(self._batch or dropped)
                if not self._busy:
                    self._idle.notify_all()
            if not self._busy:
                if self._stopping.is_set():
                    return
                self._wake.wait(_INTERVAL)
                self._wake.clear()
                continue
            try:
                self._write(self._batch, dropped)
            except (redis.RedisError, OSError) as e:
                if self._stopping.is_set():
                    return  # stop() says how many were left
                pause = min(max(2 * pause, 1.0), _MAX_PAUSE)
                self._warn("redis", f"cannot write to Redis ({type(e).__name__}: {e})", pause)
                self._stopping.wait(pause)
                continue
            pause = 0.0
            with self._lock:
                self._batch = []
                self._dropped -= dropped
            if 0 < len(self._pending) < BATCH and not self._stopping.is_set():
                self._wake.wait(_INTERVAL)  # more came meanwhile: let them gather
                self._wake.clear()

    def _write(self, batch: list[AuditEvent], dropped: int) -> None:
        pipe = self._client.pipeline(transaction=False)
        if dropped:
            trouble = f"{dropped} record(s) dropped: the queue of {self._capacity} was full"
            self._warn("dropped", trouble, 0)
            lost = AuditEvent(
                AuditType.AUDIT_DROPPED,
                Outcome.FAILED,
                reason="the audit queue was full (Redis slow or unavailable, or a flood)",
                details={"dropped": dropped},
            )
            _add(pipe, self._stream, to_fields(lost, self._node), self._max_events)
        for event in batch:
            _add(pipe, self._stream, to_fields(event, self._node), self._max_events)
        pipe.execute()

    def _warn(self, kind: str, trouble: str, pause: float) -> None:
        """Log ``trouble``, at most once a minute for each ``kind``."""
        now = time.monotonic()
        if now - self._warned.get(kind, -_WARN_EVERY) < _WARN_EVERY:
            return
        self._warned[kind] = now
        if pause:
            waiting = len(self._pending) + len(self._batch)
            log.warning(
                "audit trail: %s; %d record(s) waiting, next try in %.0f s", trouble, waiting, pause
            )
        else:
            log.warning("audit trail: %s", trouble)


class CommandAudit:
    """The audit sink of a one-off command: each record written at once, with the
    operating-system user and the command (``details.command``) filled in. A record
    that cannot be written is said in a warning; the command's work stands."""

    log_phi = False

    def __init__(self, client: redis.Redis, stream: str, *, max_events: int, command: str) -> None:
        self._client = client
        self._stream = stream
        self._max_events = max_events
        self.command = command
        self.user = os_user()
        self._node = socket.gethostname()

    def __repr__(self) -> str:
        return f"CommandAudit(stream={self._stream!r}, command={self.command!r})"

    def record(self, event: AuditEvent) -> None:
        """Write ``event`` now, as this command's (its user and command added)."""
        event = dataclasses.replace(
            event,
            user=event.user or self.user,
            details={"command": self.command, **event.details},
        )
        try:
            _add(self._client, self._stream, to_fields(event, self._node), self._max_events)
        except (redis.RedisError, OSError) as e:
            log.warning("the audit trail could not record this %s: %s", event.type.value, e)
