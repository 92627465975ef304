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
position while the collector was away, it says so (Redis 7) and goes on from the
oldest record left. Nothing the broker serves waits for it.
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
from broker.worklist.keys import KeySchema

__all__ = ["SyslogExporter"]

log = logging.getLogger(__name__)

_BATCH = 100  # records per read
_POLL = 1.0  # seconds between looks at a stream with nothing new
_LEASE_MS = 30_000  # another broker may take over the export after this long
_MAX_PAUSE = 60.0
_WARN_EVERY = 60.0

# KEYS[1]: the export state (hash: cursor, owner, until). ARGV: owner, lease ms, new cursor
# (or ""). Takes or renews the lease unless another owner holds it; moves the cursor;
# returns the cursor ("" before the first export), or nil when another broker exports.
# KEYS[1]: the export state; ARGV[1]: owner. Gives the lease up if this owner holds it.
_RELEASE_LUA = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'until', '0')
end
return 1
"""

_LEASE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local owner = redis.call('HGET', KEYS[1], 'owner')
local till = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if owner and owner ~= ARGV[1] and till > now then
  return false
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1],
  'until', string.format('%d', now + tonumber(ARGV[2])))
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'cursor', ARGV[3])
end
return redis.call('HGET', KEYS[1], 'cursor') or ''
"""


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
        self._lease = client.register_script(_LEASE_LUA)
        self._release = client.register_script(_RELEASE_LUA)
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
        with contextlib.suppress(redis.RedisError):  # else the lease runs out by itself
            self._release(keys=[self._state], args=[self._owner])

    def _run(self) -> None:
        pause = 0.0
        while not self._stopping.is_set():
            try:
                waited = self._step()
            except redis.RedisError as e:
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

    def _claim(self, cursor: str = "") -> str | None:
        """Take or renew the lease (moving the cursor); None when another broker exports."""
        reply = self._lease(keys=[self._state], args=[self._owner, _LEASE_MS, cursor])
        return None if reply is None else _text(reply)

    def _step(self) -> float:
        """Send the next batch; the seconds to wait before the next step (0: go on)."""
        cursor = self._claim()
        if cursor is None:
            return _LEASE_MS / 3000
        low = f"({cursor}" if cursor else "-"
        entries = self._client.xrange(self._stream, min=low, max="+", count=_BATCH)
        if not entries:
            return _POLL
        if cursor:
            self._check_gap(cursor)
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
                if self._stopping.is_set():
                    break
        finally:
            if last:
                self._claim(last)
        return 0.0

    def _check_gap(self, cursor: str) -> None:
        """Say so when records after ``cursor`` were trimmed before they were sent (Redis 7
        tells the newest id it trimmed; 6.2 does not, and the check is skipped)."""
        info = self._client.xinfo_stream(self._stream)
        trimmed = info.get("max-deleted-entry-id") if isinstance(info, dict) else None
        if trimmed and _stream_id(_text(trimmed)) > _stream_id(cursor):
            self._warn(
                "gap",
                "audit export: the stream was trimmed (audit_max_events) past records not "
                "yet sent; going on from the oldest record left",
            )


def _stream_id(text: str) -> tuple[int, int]:
    millis, _, seq = text.partition("-")
    try:
        return int(millis), int(seq or 0)
    except ValueError:
        return 0, 0
