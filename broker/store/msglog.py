"""The message log: every received HL7 message, its ACK and outcome, in Redis.

Each message gets an id from one counter (shared by every broker on the same
Redis) and one hash holding its raw bytes, the ACK sent and its header and
outcome fields, and the warnings its ACK carried (values cut to fit their
VR: their count, and a JSON list of code, field and text). Sorted sets scored
by id index it by outcome, message type, sending application, control ID and
"answered with warnings" (see ``broker.store.keys``), so a listing pages
newest first without a scan and the warnings are counted without one. Retention is bounded on every
write, in the same Lua call: ids older than ``retention_days``, the oldest
beyond ``max_messages`` and the oldest beyond ``max_bytes`` of raw content
(a counter the script keeps) are dropped with their index entries; hashes
also carry a TTL so the raw content goes away even when no traffic comes.
A message refused before any mapping (AR, or undecodable) keeps only its
first ``refused_prefix`` bytes.

Messages refused for their content (or by a broker fault) also wait on the
error list, without TTL, until reprocessed successfully or dismissed. The list
is capped at ``max_messages``, and its raw bytes count in ``max_bytes``: the
log gives up its history first, and when only waiting errors are left the
oldest of them go, marked as dropped (a flood of refused messages cannot fill
Redis; each sender had its NAK).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import redis

from broker.common import jsontext
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.errors import StoreError
from broker.store import scripts, steps
from broker.store.keys import KeySchema
from broker.store.message_records import (
    REPROCESS_PEER,
    ErrorInfo,
    Intake,
    MessagePage,
    MessageQuery,
    MessageRecord,
    MessageSummary,
    Outcome,
    WarningInfo,
)
from broker.store.scripts import ScriptRunner
from broker.store.steps import Steps
from broker.worklist.model import LogRecord

__all__ = ["MessageLog"]

log = logging.getLogger(__name__)

_BATCH = 200
_MAX_SCAN = 20_000  # summaries read per listing call at most; the page says where to go on
_TRIM_PER_WRITE = 1000
_CID_SEP = "\x1f"
_RECORD = scripts.load("msglog_record")
_RESOLVE = scripts.load("msglog_resolve")

_SUMMARY_FIELDS = (
    "received", "peer", "outcome", "ack_code", "type", "cid", "app", "fac",
    "err_ack", "err_code", "err_loc", "err_text", "created", "removed", "resolution",
    "warnings",
)  # fmt: skip


class MessageLog:
    """Records messages and reads them back, on ``clock``'s time; a ``MessageRecorder``."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        keys: KeySchema | None = None,
        max_messages: int = 100_000,
        retention_days: float = 30,
        max_bytes: int = 256 * 1024 * 1024,
        refused_prefix: int = 4096,
        scripts: ScriptRunner | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._redis = client
        self._scripts = scripts or ScriptRunner(client)
        self._clock = clock
        self._keys = keys or KeySchema()
        self._max = max_messages
        self._max_bytes = max_bytes
        self._refused_prefix = refused_prefix
        self._ttl_ms = int(retention_days * 86_400_000)

    def __repr__(self) -> str:
        return f"MessageLog(prefix={self._keys.prefix!r}, max_messages={self._max})"

    # -- writes ---------------------------------------------------------

    def record(self, intake: Intake) -> str:
        """Record one message (and trim the log); return its id."""
        try:
            return steps.run(self._redis, self.record_steps(intake))
        except StoreError as e:
            raise StoreError(f"message log unavailable: {e}") from e

    def record_steps(self, intake: Intake) -> Steps[str]:
        """:meth:`record` as one step (``broker.store.steps``)."""
        body = self._body(intake, self._now_ms())
        keys = body.pop("keys")  # from KEYS[1] on (keys_at)
        args = (jsontext.dumps(body), self._kept(intake), intake.ack, intake.application_ack)
        reply = yield from self._scripts.steps(_RECORD, keys, args)
        return _text(reply)

    def applied_record(self, intake: Intake) -> LogRecord:
        """The record of an order message, to be written by the script that applies it.

        Its outcome (accepted, or out-of-order when a change was stale) and its
        entry counts are set by that script from what it did.
        """
        body = self._body(intake, self._now_ms())
        keys: list[str] = body["keys"]
        body["outcomes"] = {}
        for name, outcome in (("fresh", Outcome.ACCEPTED), ("stale", Outcome.OUT_OF_ORDER)):
            keys.append(self._keys.messages_by_outcome(outcome.value))
            body["outcomes"][name] = {"name": outcome.value, "index": len(keys)}
        return LogRecord(body, intake.raw, intake.ack, intake.application_ack)

    def _kept(self, intake: Intake) -> bytes:
        """The bytes kept of a message: all of it, unless it was refused before any mapping
        (AR: undecodable, a header or a frame refused), when only its first
        ``refused_prefix`` bytes are: enough to see what it was, not a store for junk."""
        refused = intake.outcome is Outcome.REJECTED or not intake.charset
        if refused or ack_code_of(intake.ack, intake.error) == "AR":
            return intake.raw[: self._refused_prefix]
        return intake.raw

    def _now_ms(self) -> int:
        return int(self._clock.now() * 1000)

    def written(self, message_id: str) -> None:
        """Nothing to do: the record is in the log (``MessageRecorder``)."""

    def _log_keys(self) -> list[str]:
        """The log's keys, in the order ``log_keys`` (``lua/lib/msglog.lua``) reads them."""
        k = self._keys
        return [k.message_prefix(), k.message_log(), k.message_times(), k.message_errors(),
                k.message_refs(), k.message_bytes(), k.messages_by_control_id()]  # fmt: skip

    def _body(self, intake: Intake, now_ms: int) -> dict[str, Any]:
        k = self._keys
        err = intake.error or ErrorInfo("", "", "", "")
        fields = {
            "received": repr(intake.received_at),
            "peer": intake.peer,
            "outcome": intake.outcome.value,
            "ack_code": ack_code_of(intake.ack, intake.error),
            "type": intake.message_type,
            "cid": intake.control_id,
            "app": intake.sending_application,
            "fac": intake.sending_facility,
            "version": intake.version,
            "charset": intake.charset,
            "err_ack": err.ack_code,
            "err_code": err.err_code,
            "err_loc": err.location,
            "err_text": err.text,
            "mapping": intake.mapping_name,
            "mapping_version": intake.mapping_version,
            "order_keys": jsontext.dumps(list(intake.order_keys)),
            "entry_ids": jsontext.dumps(list(intake.entry_ids)),
            "created": str(intake.created),
            "removed": str(intake.removed),
            "resolution": "",
            "warnings": str(len(intake.warnings)),
            "warning_list": jsontext.dumps([_warning_json(w) for w in intake.warnings]),
            "raw_size": str(len(intake.raw)),
        }
        listed = intake.outcome.listed_as_error
        if intake.reprocess_of:
            fields["peer"] = REPROCESS_PEER + intake.reprocess_of
            if listed:  # the original stays on the error list; no second entry
                listed = False
                fields["resolution"] = f"failed reprocess of message {intake.reprocess_of}"
        # the record's keys (``lua/lib/record_message.lua``): the log's, the id counter, then
        # its index keys, which the body names by position
        keys = [*self._log_keys(), k.message_seq(), k.messages_by_type(intake.message_type)]
        keys.append(k.messages_by_sender(intake.sending_application))
        if intake.warnings:
            keys.append(k.messages_with_warnings())
        indexes = list(range(9, len(keys) + 1))
        keys.append(k.messages_by_outcome(intake.outcome.value))
        body = {
            "keys": keys,
            "keys_at": 1,  # where they are in the script's KEYS (the apply script puts them last)
            "ttl_ms": self._ttl_ms,
            "now_ms": now_ms,
            "indexes": indexes,
            "outcome_index": len(keys),
            "cid_value": intake.control_id + _CID_SEP,
            "received_ms": int(intake.received_at * 1000),
            "fields": [item for pair in fields.items() for item in pair],
            "error": listed,
            "cutoff_ms": now_ms - self._ttl_ms,
            "max": self._max,
            "max_bytes": self._max_bytes,
            "trim": _TRIM_PER_WRITE,
        }
        return body

    def resolve(self, message_id: str, resolution: str) -> bool:
        """Take a message off the error list, noting why; False if it was not on it."""
        now_ms = self._now_ms()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now_ms / 1000))
        fields = ["resolution", f"{resolution} ({stamp})"]
        body = {"id": message_id, "fields": fields, "ttl_ms": self._ttl_ms, "now_ms": now_ms}
        keys = [*self._log_keys(), self._keys.message(message_id)]
        try:
            return bool(self._scripts.run(_RESOLVE, keys, [jsontext.dumps(body)]))
        except StoreError as e:
            raise StoreError(f"message log unavailable: {e}") from e

    def dismiss(self, message_id: str) -> bool:
        """Take a message off the error list without reprocessing it."""
        return self.resolve(message_id, "dismissed")

    # -- reads ----------------------------------------------------------

    def get(self, message_id: str) -> MessageRecord | None:
        """Everything recorded about one message, or None if the log no longer has it."""
        try:
            data = self._redis.hgetall(self._keys.message(message_id))
        except redis.RedisError as e:
            raise StoreError(f"message log unavailable: {e}") from e
        if not data:
            return None
        f = {_text(k): v for k, v in data.items()}
        summary = _summary(message_id, [f.get(name) for name in _SUMMARY_FIELDS])
        return MessageRecord(
            summary=summary,
            raw=(raw := _bytes(f.get("raw"))),
            ack=_bytes(f.get("ack")),
            version=_text(f.get("version", b"")),
            charset=_text(f.get("charset", b"")),
            mapping_name=_text(f.get("mapping", b"")),
            mapping_version=_text(f.get("mapping_version", b"")),
            order_keys=tuple(jsontext.loads(f.get("order_keys", b"[]"))),
            entry_ids=tuple(jsontext.loads(f.get("entry_ids", b"[]"))),
            application_ack=_bytes(f.get("app_ack")),
            warnings=tuple(
                WarningInfo(w["code"], w["location"], w["text"])
                for w in jsontext.loads(f.get("warning_list", b"[]"))
            ),
            raw_size=int(f.get("raw_size") or len(raw)),
        )

    def count(self, *, errors_only: bool = False, warnings_only: bool = False) -> int:
        """How many messages the log holds (or the error list, or those answered with
        warnings)."""
        key = self._keys.message_errors() if errors_only else self._keys.message_log()
        if warnings_only:
            key = self._keys.messages_with_warnings()
        try:
            return int(self._redis.zcard(key))
        except redis.RedisError as e:
            raise StoreError(f"message log unavailable: {e}") from e

    def find(self, query: MessageQuery) -> MessagePage:
        """Messages matching ``query``, newest first, one page at a time."""
        try:
            return self._list(query)
        except redis.RedisError as e:
            raise StoreError(f"message log unavailable: {e}") from e

    def _list(self, query: MessageQuery) -> MessagePage:
        upper = float("inf") if query.before_id is None else query.before_id - 1
        if query.until is not None:
            last = self._redis.zrevrangebyscore(
                self._keys.message_times(), int(query.until * 1000), "-inf", start=0, num=1
            )
            upper = min(upper, int(_text(last[0])) if last else 0)
        items: list[MessageSummary] = []
        scanned = 0
        for batch in self._candidate_batches(query, upper):
            pipe = self._redis.pipeline(transaction=False)
            for message_id in batch:
                pipe.hmget(self._keys.message(message_id), list(_SUMMARY_FIELDS))
            for message_id, values in zip(batch, pipe.execute(), strict=True):
                scanned += 1
                if values[0] is None:  # expired since the index was read
                    continue
                row = _summary(message_id, values)
                if query.since is not None and row.received_at < query.since:
                    return MessagePage(tuple(items), None)
                if _matches(row, query):
                    items.append(row)
                    if len(items) >= query.limit:
                        return MessagePage(tuple(items), int(message_id))
                if scanned >= _MAX_SCAN:
                    return MessagePage(tuple(items), int(message_id))
        return MessagePage(tuple(items), None)

    def _candidate_batches(self, query: MessageQuery, upper: float) -> Iterable[list[str]]:
        """Ids that may match, newest first, from the smallest applicable index."""
        k = self._keys
        if query.control_id is not None:
            prefix = (query.control_id + _CID_SEP).encode()
            members = self._redis.zrangebylex(
                k.messages_by_control_id(), b"[" + prefix, b"[" + prefix + b"\xff"
            )
            ids = sorted((int(_text(m).rsplit(_CID_SEP, 1)[1]) for m in members), reverse=True)
            yield [str(i) for i in ids if i <= upper]
            return
        sources = [k.message_errors() if query.errors_only else k.message_log()]
        if query.outcome is not None:
            sources.append(k.messages_by_outcome(query.outcome.value))
        if query.message_type is not None:
            sources.append(k.messages_by_type(query.message_type))
        if query.sending_application is not None:
            sources.append(k.messages_by_sender(query.sending_application))
        if query.warnings_only:
            sources.append(k.messages_with_warnings())
        pipe = self._redis.pipeline(transaction=False)
        for source in sources:
            pipe.zcard(source)
        source = min(zip(pipe.execute(), sources, strict=True))[1]
        high: float | str = "+inf" if upper == float("inf") else upper
        while True:
            found = self._redis.zrevrangebyscore(source, high, "-inf", start=0, num=_BATCH)
            if not found:
                return
            batch = [_text(i) for i in found]
            yield batch
            high = int(batch[-1]) - 1


def ack_code_of(ack: bytes, error: ErrorInfo | None) -> str:
    """MSA-1 of an ACK as sent (HL7 v2.5.1 §2.14.8.1), else the error's code, else AA."""
    for segment in ack.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSA") and len(segment) > 4:
            code = segment[4:].split(segment[3:4], 1)[0].decode("ascii", "replace")
            if code:
                return code
    return error.ack_code if error is not None else "AA"


def _warning_json(warning: WarningInfo) -> dict[str, str]:
    return {"code": warning.err_code, "location": warning.location, "text": warning.text}


def _bytes(value: Any) -> bytes:
    if value is None:
        return b""
    return value if isinstance(value, bytes) else str(value).encode()


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _summary(message_id: str, values: list[Any]) -> MessageSummary:
    v = dict(zip(_SUMMARY_FIELDS, (_text(x) for x in values), strict=True))
    outcome = Outcome(v["outcome"]) if v["outcome"] in Outcome._value2member_map_ else None
    error = None
    if v["err_code"] or v["err_text"]:
        error = ErrorInfo(v["err_ack"], v["err_code"], v["err_loc"], v["err_text"])
    return MessageSummary(
        id=message_id,
        received_at=float(v["received"] or 0),
        peer=v["peer"],
        outcome=outcome or Outcome.ERROR,
        ack_code=v["ack_code"],
        message_type=v["type"],
        control_id=v["cid"],
        sending_application=v["app"],
        sending_facility=v["fac"],
        error=error,
        created=int(v["created"] or 0),
        removed=int(v["removed"] or 0),
        on_error_list=bool(outcome and outcome.listed_as_error and not v["resolution"]),
        resolution=v["resolution"],
        warnings=int(v["warnings"] or 0),
    )


def _matches(row: MessageSummary, q: MessageQuery) -> bool:
    return (
        (not q.errors_only or row.on_error_list)
        and (not q.warnings_only or row.warnings > 0)
        and (q.outcome is None or row.outcome is q.outcome)
        and (q.message_type is None or row.message_type == q.message_type)
        and (q.sending_application is None or row.sending_application == q.sending_application)
        and (q.sending_facility is None or row.sending_facility == q.sending_facility)
        and (q.control_id is None or row.control_id == q.control_id)
        and (q.until is None or row.received_at <= q.until)
    )
