"""The worklist's apply script: its Lua text and the JSON payload it is called with.

``WorklistStore.apply`` (``broker.store.worklist``) runs ``APPLY_SCRIPT`` once per
message: the payload names every key the script touches (``broker.store.keys``),
each entry's index memberships and where its DICOM JSON is among the arguments.
``REMOVE_ENTRY_LUA`` is shared with retention's removal script
(``broker.store.retention_lua``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from broker.common import jsontext
from broker.store.guards import DEDUP_EPILOGUE_LUA, MESSAGE_PROLOGUE_LUA
from broker.store.keys import KeySchema
from broker.store.msglog_lua import RECORD_LUA
from broker.worklist import dicom_json
from broker.worklist.model import OrderAction, OrderChange

__all__ = ["APPLY_SCRIPT", "REMOVE_ENTRY_LUA", "apply_payload"]

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

# ARGV[1]: JSON payload built by apply_payload; each entry's DICOM JSON is the
# argument its ``ds`` names (not escaped again inside the payload); with p.record (a
# LogRecord's body), its raw message, ACK and application ACK are the three arguments
# from p.record.argv on. Returns
# {"dup", <dedup value>} when the message was applied before, {"retry"} when a guard
# (broker.store.guards) failed, else {"ok", written, removed, skipped, stale, logged}
# (logged: the message-log id of p.record, false without one).
# Run after MESSAGE_PROLOGUE_LUA (payload in p, dedup and guards checked).
# p.sent (absent without a usable MSH-7) is the message's UTC interval, compared as
# text with the order's newest applied MSH-7 (broker.worklist.ordering).
_APPLY_LUA = (
    REMOVE_ENTRY_LUA
    + """
local terminal = {COMPLETED=true, CANCELED=true, DISCONTINUED=true}
local written, removed, skipped, stale = 0, 0, 0, 0
for _, o in ipairs(p.orders) do
  local current = redis.call('HGET', p.order_status, o.field)
  local newest = p.sent and redis.call('HGET', p.order_time, o.field)
  if newest and p.sent.latest <= newest then
    skipped, stale = skipped + 1, stale + 1
  elseif current and terminal[current] and o.action ~= 'cancel' and not terminal[o.status] then
    skipped = skipped + 1
  else
    if p.sent and (not newest or p.sent.earliest > newest) then
      redis.call('HSET', p.order_time, o.field, p.sent.earliest)
    end
    if o.action == 'status' then
      for _, id in ipairs(redis.call('SMEMBERS', o.key)) do
        redis.call('HSET', p.entry_prefix .. id, 'status', o.status)
        written = written + 1
      end
      redis.call('HSET', p.order_status, o.field, o.status)
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
        redis.call('HSET', p.order_status, o.field, o.status)
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

# The whole script as registered: the message log's and the guards' Lua first.
APPLY_SCRIPT = RECORD_LUA + MESSAGE_PROLOGUE_LUA + _APPLY_LUA


def apply_payload(
    keys: KeySchema,
    changes: Sequence[OrderChange],
    dedup: dict[str, Any] | None,
    documents: list[str | bytes],
) -> dict[str, Any]:
    """The apply script's payload; each entry's DICOM JSON is appended to ``documents``
    (the script's arguments after the payload) and named by its position. ``dedup`` is
    the dedup record as ``WorklistStore.dedup_body`` writes it, or None."""
    orders: list[dict[str, Any]] = []
    for change in changes:
        entries = change.entries if change.action is OrderAction.SCHEDULE else ()
        items = []
        for ordinal, entry in enumerate(entries, start=1):
            ds = dicom_json.entry_json(entry)
            idx = _index_refs(keys, ds)
            documents.append(jsontext.dumps(ds))
            items.append(
                {
                    "id": keys.entry_id(change.order_key, ordinal),
                    "ds": len(documents) + 1,  # ARGV[1] is the payload
                    "idx": idx,
                    "idx_json": jsontext.dumps(idx),
                }
            )
        order_set, order_field = keys.order_and_field(change.order_key)
        orders.append(
            {
                "key": order_set,
                "field": order_field,  # in order-status and order-time
                "order_key": change.order_key,  # the entry's ``order`` value
                "action": change.action.value,
                "status": change.status,
                "entries": items,
            }
        )
    body: dict[str, Any] = {
        "orders": orders,
        "entry_prefix": keys.entry_prefix(),
        "all": keys.all_entries(),
        "order_status": keys.order_status(),
        "order_time": keys.order_time(),
    }
    if dedup is not None:
        body["dedup"] = dedup
    return body


def _index_refs(keys: KeySchema, entry: dict[str, Any]) -> list[list[Any]]:
    """The index memberships of one entry (DICOM JSON): ``["s", set key]`` or
    ``["z", key, score]``."""
    sps = _sps(entry)
    refs: list[list[Any]] = []
    for aet in _values(sps, _STATION_AET):
        refs.append(["s", keys.by_station(aet.strip())])
    for modality in _values(sps, _MODALITY):
        refs.append(["s", keys.by_modality(modality.strip())])
    for pid in _values(entry, _PATIENT_ID):
        refs.append(["s", keys.by_patient(pid.strip())])
    for acc in _values(entry, _ACCESSION):
        refs.append(["s", keys.by_accession(acc.strip())])
    dates = _values(sps, _SPS_START_DATE)
    if dates and dates[0].isdigit() and len(dates[0]) == 8:
        refs.append(["z", keys.by_date(), int(dates[0])])
    return refs


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
