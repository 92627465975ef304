"""The syslog export: the audit stream, record by record, to a collector (``audit_syslog_*``).

The exporter reads the stream, not the writer's queue: a record is exported once it
is in Redis, so a collector that is down loses nothing (the stream keeps the last
``audit_max_events``), and the export resumes where it stopped, after a restart of the
collector or of the broker. Its position (the last stream id sent) and a lease live in
``{p}:audit:export``: with several brokers on one Redis, the one holding the lease
exports and the others wait, so each record is sent once (at least once: a record
being sent as a broker dies is sent again by the next one).

It runs in a thread of its own, reads and sends in batches, and after a failure (the
collector unreachable, Redis away) waits and tries again, up to a minute apart,
saying so in the log at most once a minute. If the stream was trimmed past the
position while the collector was away, it says how many records were lost (Redis 7,
which counts the records ever added; not with 6.2) and goes on from the oldest left.
Nothing the broker serves waits for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time

import redis

from broker.audit.atna import AtnaSource, audit_message
from broker.audit.events import Outcome, from_fields, iso_time
from broker.audit.syslog import SyslogSender, rfc5424
from broker.errors import StoreError
from broker.store import scripts
from broker.store.keys import KeySchema
from broker.store.scripts import ScriptRunner

__all__ = ["SyslogExporter"]

log = logging.getLogger(__name__)

_BATCH = 100  # records per read
_POLL = 1.0  # seconds between looks at a stream with nothing new
_LEASE_MS = 30_000  # another broker may take over the export after this long
_MAX_PAUSE = 60.0
_WARN_EVERY = 60.0
_LEASE = scripts.load("audit_lease")
_RELEASE = scripts.load("audit_release")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SyslogExporter:
    """Sends the audit stream to one syslog collector; see the module docstring."""

    def __init__(
        self,
        client: redis.Redis,
        keys: KeySchema,
        sender: SyslogSender,
        source: AtnaSource,
    ) -> None:
        self._client = client
        self._stream = keys.audit()
        self._state = keys.audit_export()
        self._sender = sender
        self._source = source
        self._scripts = ScriptRunner(client)
        self._owner = f"{source.node}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: dict[str, float] = {}
        self.sent = 0  # records sent by this exporter

    def __repr__(self) -> str:
        return f"SyslogExporter(to={str(self._sender.target)!r})"

    def start(self) -> None:
        """Start exporting in a thread of its own."""
        if self._thread is not None:
            raise RuntimeError("the syslog exporter was already started")
        self._thread = threading.Thread(target=self._run, name="audit-syslog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after the message being sent, waiting at most ``timeout`` seconds."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join(timeout)
        self._sender.close()
        with contextlib.suppress(StoreError):  # else the lease runs out by itself
            self._scripts.run(_RELEASE, [self._state], [self._owner])

    def _run(self) -> None:
        pause = 0.0
        while not self._stopping.is_set():
            try:
                waited = self._step()
            except (redis.RedisError, StoreError) as e:
                pause = self._failed("redis", f"cannot read the audit stream: {e}", pause)
                continue
            except OSError as e:
                trouble = f"cannot send to {self._sender.target}: {type(e).__name__}: {e}"
                pause = self._failed("syslog", trouble, pause)
                continue
            pause = 0.0
            if waited:
                self._stopping.wait(waited)

    def _failed(self, what: str, trouble: str, pause: float) -> float:
        pause = min(max(2 * pause, 1.0), _MAX_PAUSE)
        self._warn(what, f"audit export: {trouble}; trying again in {pause:.0f} s")
        self._stopping.wait(pause)
        return pause

    def _warn(self, what: str, text: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(what, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned[what] = now
            log.warning("%s", text)

    def _claim(self, cursor: str = "", ordinal: int | None = None) -> tuple[str, int | None] | None:
        """Take or renew the lease (moving the cursor, with its ordinal: the how-many-th
        record of the stream it is); (cursor, ordinal), or None when another broker exports."""
        number = "" if ordinal is None else str(ordinal)
        reply = self._scripts.run(_LEASE, [self._state], [self._owner, _LEASE_MS, cursor, number])
        if reply is None:
            return None
        sent = _text(reply[1])
        return _text(reply[0]), int(sent) if sent.isdigit() else None

    def _step(self) -> float:
        """Send the next batch; the seconds to wait before the next step (0: go on)."""
        claimed = self._claim()
        if claimed is None:
            return _LEASE_MS / 3000
        cursor, sent = claimed
        low = f"({cursor}" if cursor else "-"
        entries = self._client.xrange(self._stream, min=low, max="+", count=_BATCH)
        if not entries:
            return _POLL
        ordinal = self._ordinal(_text(entries[0][0]), sent)
        last = ""
        try:
            for raw_id, fields in entries:
                stored = from_fields(_text(raw_id), fields)
                if stored is not None:
                    event = stored.event
                    body = audit_message(event, self._source)
                    self._sender.send(
                        rfc5424(
                            body,
                            timestamp=iso_time(event.time),
                            hostname=event.node or self._source.node,
                            app_name=self._source.app_name,
                            warning=event.outcome is not Outcome.SUCCESS,
                        )
                    )
                    self.sent += 1
                last = _text(raw_id)
                ordinal = None if ordinal is None else ordinal + 1
                if self._stopping.is_set():
                    break
        finally:
            if last:
                self._claim(last, None if ordinal is None else ordinal - 1)
        return 0.0

    def _ordinal(self, first_id: str, sent: int | None) -> int | None:
        """The ordinal of record ``first_id``, the next to send, and a warning with the count
        when records between the last one sent and it were trimmed unsent. Redis 7 counts
        the records ever added to a stream (``entries-added``); with Redis 6.2 the ordinal is
        unknown and nothing is checked."""
        info = self._client.xinfo_stream(self._stream)
        added, length = info.get("entries-added"), info.get("length")
        first = info.get("first-entry")
        if not isinstance(added, int) or not isinstance(length, int) or not first:
            return None
        oldest = added - length + 1  # the ordinal of the oldest record still in the stream
        if _text(first[0]) != first_id:
            return None if sent is None else sent + 1
        if sent is not None and oldest > sent + 1:
            self._warn(
                "gap",
                f"audit export: {oldest - sent - 1} record(s) were trimmed from the stream "
                "(audit_max_events) before they could be sent; going on from the oldest left",
            )
        return oldest
