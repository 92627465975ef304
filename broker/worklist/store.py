"""The worklist store: entries as DICOM JSON in Redis, index sets, atomic updates.

The client is synchronous (redis-py with its thread-safe connection pool): the
DICOM service calls it from pynetdicom's association threads, and the asyncio
HL7 side from one worker thread (``broker.hl7.batching``), whose messages share
round trips through ``broker.worklist.steps``. One client style, one code path.

Every multi-key change is one Lua script call, so it is atomic: either a
message's whole effect (its entries, their index memberships and its dedup
record) is in Redis or none of it. The script touches keys it derives itself,
which is fine on one primary (with replicas and Sentinel); Redis Cluster is not
a target (see DESIGN.md).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import redis
from pydicom.dataset import Dataset
from redis.commands.core import Script

from broker import jsontext
from broker.errors import StoreError
from broker.worklist import dicom_json, steps
from broker.worklist.candidates import CandidateSelector
from broker.worklist.entry_cache import EntryCache
from broker.worklist.guards import (
    DEDUP_EPILOGUE_LUA,
    MESSAGE_PROLOGUE_LUA,
    Guard,
    guard_payload,
)
from broker.worklist.keys import KeySchema
from broker.worklist.model import (
    ApplyOutcome,
    CandidateCriteria,
    DedupKey,
    DedupRecord,
    LogRecord,
    OrderAction,
    OrderChange,
    entry_id_for,
)
from broker.worklist.msglog_lua import RECORD_LUA
from broker.worklist.ordering import MessageTime
from broker.worklist.steps import Steps

__all__ = ["REMOVE_ENTRY_LUA", "WorklistStore", "decode_dedup"]

log = logging.getLogger(__name__)

_FETCH_BATCH = 256
# DICOM JSON keys (PS3.18 F.2) of the indexed attributes
_SPS_SEQUENCE = "00400100"
_STATION_AET = "00400001"  # Scheduled Station AE Title
_MODALITY = "00080060"
_PATIENT_ID = "00100020"
_ACCESSION = "00080050"
_SPS_START_DATE = "00400002"

# Lua: remove_entry(key, id, idx JSON or false, all-entries set) deletes an entry's hash and
# its membership of every index it was written to (its ``idx`` refs) and of the all set.
REMOVE_ENTRY_LUA = """
local function remove_entry(ek, id, idx, all)
  if idx then
    for _, ref in ipairs(cjson.decode(idx)) do
      if ref[1] == 'z' then
        redis.call('ZREM', ref[2], id)
      else
        redis.call('SREM', ref[2], id)
      end
    end
  end
  redis.call('SREM', all, id)
  redis.call('DEL', ek)
end
"""

# ARGV[1]: JSON payload built by WorklistStore._payload; each entry's DICOM JSON is the
# argument its ``ds`` names (not escaped again inside the payload); with p.record (a
# LogRecord's body), its raw message, ACK and application ACK are the three arguments
# from p.record.argv on. Returns
# {"dup", <dedup value>} when the message was applied before, {"retry"} when a guard
# (broker.worklist.guards) failed, else {"ok", written, removed, skipped, stale, logged}
# (logged: the message-log id of p.record, false without one).
# Run after MESSAGE_PROLOGUE_LUA (payload in p, dedup and guards checked).
# p.sent (absent without a usable MSH-7) is the message's UTC interval, compared as
# text with the order's newest applied MSH-7 (broker.worklist.ordering).
_APPLY_SCRIPT = (
    REMOVE_ENTRY_LUA
    + """
local terminal = {COMPLETED=true, CANCELED=true, DISCONTINUED=true}
local written, removed, skipped, stale = 0, 0, 0, 0
for _, o in ipairs(p.orders) do
  local current = redis.call('HGET', p.order_status, o.order_key)
  local newest = p.sent and redis.call('HGET', p.order_time, o.order_key)
  if newest and p.sent.latest <= newest then
    skipped, stale = skipped + 1, stale + 1
  elseif current and terminal[current] and o.action ~= 'cancel' and not terminal[o.status] then
    skipped = skipped + 1
  else
    if p.sent and (not newest or p.sent.earliest > newest) then
      redis.call('HSET', p.order_time, o.order_key, p.sent.earliest)
    end
    if o.action == 'status' then
      for _, id in ipairs(redis.call('SMEMBERS', o.key)) do
        redis.call('HSET', p.entry_prefix .. id, 'status', o.status)
        written = written + 1
      end
      redis.call('HSET', p.order_status, o.order_key, o.status)
    else
      local progressed = {}  -- a step a modality (MPPS) or an ADT moved on keeps its status
      for _, id in ipairs(redis.call('SMEMBERS', o.key)) do
        local ek = p.entry_prefix .. id
        local was = redis.call('HGET', ek, 'status')
        if was and was ~= 'SCHEDULED' then
          progressed[id] = was
        end
        remove_entry(ek, id, redis.call('HGET', ek, 'idx'), p.all)
        removed = removed + 1
      end
      redis.call('DEL', o.key)
      for _, e in ipairs(o.entries) do
        local status = o.status
        if status == 'SCHEDULED' and progressed[e.id] then
          status = progressed[e.id]
        end
        redis.call('HSET', p.entry_prefix .. e.id, 'ds', ARGV[e.ds], 'order', o.order_key,
                   'idx', e.idx_json, 'status', status)
        for _, ref in ipairs(e.idx) do
          if ref[1] == 'z' then
            redis.call('ZADD', ref[2], ref[3], e.id)
          else
            redis.call('SADD', ref[2], e.id)
          end
        end
        redis.call('SADD', p.all, e.id)
        redis.call('SADD', o.key, e.id)
        written = written + 1
      end
      if o.action == 'schedule' then
        redis.call('HSET', p.order_status, o.order_key, o.status)
      end
    end
  end
end
"""
    + DEDUP_EPILOGUE_LUA
    + """
local logged = false
if p.record then
  local a = p.record.argv
  logged = record_applied(p.record, written, removed, stale, ARGV[a], ARGV[a + 1], ARGV[a + 2])
end
return {'ok', written, removed, skipped, stale, logged}
"""
)


def _sps(entry: dict[str, Any]) -> dict[str, Any]:
    """The one Scheduled Procedure Step item of an entry's DICOM JSON."""
    items = entry.get(_SPS_SEQUENCE, {}).get("Value") or []
    if len(items) != 1:
        raise ValueError("a worklist entry holds exactly one Scheduled Procedure Step item")
    item: dict[str, Any] = items[0]
    return item


def _values(item: dict[str, Any], key: str) -> list[str]:
    """Non-empty string values of an attribute of DICOM JSON (text VRs: strings)."""
    return [str(v) for v in item.get(key, {}).get("Value") or () if str(v)]


class WorklistStore:
    """Worklist entries in Redis; see ``broker.worklist.keys`` for the schema."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        keys: KeySchema | None = None,
        dedup_ttl_seconds: int = 7 * 24 * 3600,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        entry_cache: int = 10_000,
    ) -> None:
        self._redis = client
        self._keys = keys or KeySchema()
        self._selector = CandidateSelector(client, self._keys)
        self._cache = EntryCache(entry_cache)  # decoded entries for reads; 0: off
        self._dedup_ttl = dedup_ttl_seconds
        self._wait_replicas = wait_replicas
        self._wait_timeout_ms = wait_timeout_ms
        self._apply = client.register_script(RECORD_LUA + MESSAGE_PROLOGUE_LUA + _APPLY_SCRIPT)

    def __repr__(self) -> str:
        return f"WorklistStore(prefix={self._keys.prefix!r})"

    @property
    def keys(self) -> KeySchema:
        return self._keys

    @property
    def entry_cache(self) -> EntryCache:
        """The decoded entries kept for reads (its size, for metrics)."""
        return self._cache

    @property
    def client(self) -> redis.Redis:
        """The Redis client, for the patient store's reads and scripts."""
        return self._redis

    # -- writes ---------------------------------------------------------

    def apply(
        self,
        changes: Sequence[OrderChange],
        dedup: tuple[DedupKey, DedupRecord] | None,
        guards: Sequence[Guard] = (),
        sent: MessageTime | None = None,
        log: LogRecord | None = None,
    ) -> ApplyOutcome:
        """Apply a message's order changes and record its dedup entry, atomically.

        If ``dedup`` names a message that was applied before, nothing changes and
        the earlier record is returned in ``ApplyOutcome.duplicate``. If a guard
        no longer holds, nothing changes and ``ApplyOutcome.conflict`` is set.
        ``sent`` is the message's MSH-7: a change to an order that already took a
        newer message is skipped (``ApplyOutcome.stale``, see
        ``broker.worklist.ordering``); None applies without that check. ``log``, if
        given, is written to the message log in the same call when the changes are
        applied (``ApplyOutcome.logged`` is its id).
        """
        return steps.run(self._redis, self.apply_steps(changes, dedup, guards, sent, log))

    def apply_steps(
        self,
        changes: Sequence[OrderChange],
        dedup: tuple[DedupKey, DedupRecord] | None,
        guards: Sequence[Guard] = (),
        sent: MessageTime | None = None,
        log: LogRecord | None = None,
    ) -> Steps[ApplyOutcome]:
        """:meth:`apply` as steps (``broker.worklist.steps``)."""
        documents: list[str | bytes] = []
        body = self._payload(changes, dedup, documents)
        body["guards"] = guard_payload(guards)
        if sent is not None:  # absent, not null: cjson's null would be true in Lua
            body["sent"] = {"earliest": sent.earliest, "latest": sent.latest}
        if log is not None:
            body["record"] = log.body | {"argv": len(documents) + 2}  # ARGV[1] is the payload
            documents += (log.raw, log.ack, log.application_ack)
        reply = yield from self.script_steps(self._apply, jsontext.dumps(body), *documents)
        tag = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if tag == "dup":
            return ApplyOutcome(duplicate=decode_dedup(reply[1]))
        if tag == "retry":
            return ApplyOutcome(conflict=True)
        created, removed, skipped, stale = (int(v) for v in reply[1:5])
        logged = reply[5] if len(reply) > 5 and reply[5] is not None else None
        return ApplyOutcome(
            created=created,
            removed=removed,
            skipped=skipped,
            stale=stale,
            logged=None if logged is None else _text(logged),
        )

    def run_script(self, script: Script, payload: str, *args: str | bytes) -> list[Any]:
        """Run a registered script with one JSON argument (and ``args`` after it), then wait
        for replicas if configured."""
        return steps.run(self._redis, self.script_steps(script, payload, *args))

    def script_steps(self, script: Script, payload: str, *args: str | bytes) -> Steps[list[Any]]:
        """:meth:`run_script` as steps: the script, then (if configured) WAIT for replicas."""
        (reply,) = yield [steps.script_call(script, payload, *args)]
        if self._wait_replicas:
            (acked,) = yield [steps.Command(("WAIT", self._wait_replicas, self._wait_timeout_ms))]
            if int(acked) < self._wait_replicas:
                raise StoreError(
                    f"only {int(acked)} of {self._wait_replicas} replicas confirmed the write"
                )
        return cast(list[Any], reply)

    def dedup_body(self, dedup: tuple[DedupKey, DedupRecord] | None) -> dict[str, Any] | None:
        """A dedup record as the scripts write it (key, JSON value, TTL), or None."""
        if dedup is None:
            return None
        key, record = dedup
        value = _encode_dedup(record)
        return {"key": self._keys.dedup(key), "value": value, "ttl": self._dedup_ttl}

    def _payload(
        self,
        changes: Sequence[OrderChange],
        dedup: tuple[DedupKey, DedupRecord] | None,
        documents: list[str | bytes],
    ) -> dict[str, Any]:
        """The apply script's payload; each entry's DICOM JSON is appended to ``documents``
        (the script's arguments after the payload) and named by its position."""
        orders: list[dict[str, Any]] = []
        for change in changes:
            entries = change.entries if change.action is OrderAction.SCHEDULE else ()
            items = []
            for ordinal, entry in enumerate(entries, start=1):
                ds = dicom_json.entry_json(entry)
                idx = self._index_refs(ds)
                documents.append(jsontext.dumps(ds))
                items.append(
                    {
                        "id": entry_id_for(change.order_key, ordinal),
                        "ds": len(documents) + 1,  # ARGV[1] is the payload
                        "idx": idx,
                        "idx_json": jsontext.dumps(idx),
                    }
                )
            orders.append(
                {
                    "key": self._keys.order(change.order_key),
                    "order_key": change.order_key,
                    "action": change.action.value,
                    "status": change.status,
                    "entries": items,
                }
            )
        body: dict[str, Any] = {
            "orders": orders,
            "entry_prefix": self._keys.entry_prefix(),
            "all": self._keys.all_entries(),
            "order_status": self._keys.order_status(),
            "order_time": self._keys.order_time(),
        }
        if dedup is not None:
            body["dedup"] = self.dedup_body(dedup)
        return body

    def _index_refs(self, entry: dict[str, Any]) -> list[list[Any]]:
        """The index memberships of one entry (DICOM JSON): ``["s", set key]`` or
        ``["z", key, score]``."""
        sps = _sps(entry)
        refs: list[list[Any]] = []
        for aet in _values(sps, _STATION_AET):
            refs.append(["s", self._keys.by_station(aet.strip())])
        for modality in _values(sps, _MODALITY):
            refs.append(["s", self._keys.by_modality(modality.strip())])
        for pid in _values(entry, _PATIENT_ID):
            refs.append(["s", self._keys.by_patient(pid.strip())])
        for acc in _values(entry, _ACCESSION):
            refs.append(["s", self._keys.by_accession(acc.strip())])
        dates = _values(sps, _SPS_START_DATE)
        if dates and dates[0].isdigit() and len(dates[0]) == 8:
            refs.append(["z", self._keys.by_date(), int(dates[0])])
        return refs

    # -- reads ----------------------------------------------------------

    def dedup_lookup(self, key: DedupKey) -> DedupRecord | None:
        """The record of a message already applied under this identity, if any."""
        try:
            raw = self._redis.get(self._keys.dedup(key))
        except redis.RedisError as e:
            raise StoreError(f"worklist store unavailable: {e}") from e
        return None if raw is None else decode_dedup(raw)

    def candidate_ids(self, criteria: CandidateCriteria) -> list[str]:
        """Entry ids that may match, sorted, narrowed through the index keys (never a scan)."""
        return self._selector.ids(criteria)

    def candidates(self, criteria: CandidateCriteria) -> Iterator[Dataset]:
        """Stream the entries that may match ``criteria``, fetched in batches."""
        return self.entries(self.candidate_ids(criteria))

    def entries(self, ids: Iterable[str], *, keep: bool = True) -> Iterator[Dataset]:
        """Stream entries by id, skipping any removed since the ids were read.

        Each is read from Redis, but decoded only if its stored JSON or status changed
        since it was last read (``broker.worklist.entry_cache``): the Datasets may be
        shared with other readers, so they must not be changed. Without ``keep``, what
        is decoded now is not cached (a broad query would push out what polls use).
        """
        batch: list[str] = []
        for entry_id in ids:
            batch.append(entry_id)
            if len(batch) >= _FETCH_BATCH:
                yield from self._fetch(batch, keep)
                batch = []
        if batch:
            yield from self._fetch(batch, keep)

    def _fetch(self, ids: list[str], keep: bool) -> Iterator[Dataset]:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for entry_id in ids:
                pipe.hmget(self._keys.entry(entry_id), "ds", "status")
            rows = pipe.execute()
        except redis.RedisError as e:
            raise StoreError(f"worklist store unavailable: {e}") from e
        for entry_id, (raw, status) in zip(ids, rows, strict=True):
            if raw is None:
                self._cache.discard(entry_id)
            else:
                yield self._cache.entry(entry_id, raw, status, keep=keep)

    def order_entry_ids(self, order_key: str) -> list[str]:
        """Ids of the entries an order has on the worklist now."""
        try:
            return sorted(_text(i) for i in self._redis.smembers(self._keys.order(order_key)))
        except redis.RedisError as e:
            raise StoreError(f"worklist store unavailable: {e}") from e

    def count(self) -> int:
        """How many entries are on the worklist."""
        try:
            return int(self._redis.scard(self._keys.all_entries()))
        except redis.RedisError as e:
            raise StoreError(f"worklist store unavailable: {e}") from e


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encode_dedup(record: DedupRecord) -> str:
    return jsontext.dumps({"digest": record.digest, "ack": base64.b64encode(record.ack).decode()})


def decode_dedup(raw: bytes | str) -> DedupRecord:
    data = json.loads(raw)
    return DedupRecord(digest=str(data["digest"]), ack=base64.b64decode(data["ack"]))
