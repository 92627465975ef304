"""Retention's Lua scripts: removing expired entries and MPPS instances, timing ended steps.

Run by ``broker.store.retention``, which decides what expired and builds their
payloads; the keys they touch are in ``broker.store.keys``.
"""

from __future__ import annotations

from broker.store.apply_script import REMOVE_ENTRY_LUA

__all__ = ["MARK_SCRIPT", "REMOVE_SCRIPT"]

# ARGV[1]: {entries: [{id, digest, status, order_set, order_field}], mpps: [uid...], ...}.
# Returns {removed entry ids as JSON, removed MPPS instance count}.
REMOVE_SCRIPT = (
    REMOVE_ENTRY_LUA
    + """
local p = cjson.decode(ARGV[1])
local removed = {}
for _, e in ipairs(p.entries) do
  local ek = p.entry_prefix .. e.id
  local row = redis.call('HMGET', ek, 'ds', 'status', 'idx')
  if row[1] and redis.sha1hex(row[1]) == e.digest and (row[2] or '') == e.status then
    remove_entry(ek, e.id, row[3], p.all)
    redis.call('ZREM', p.ended, e.id)
    if e.order_set ~= '' then
      redis.call('SREM', e.order_set, e.id)
      if redis.call('EXISTS', e.order_set) == 0 then
        redis.call('HDEL', p.order_status, e.order_field)
        redis.call('HDEL', p.order_time, e.order_field)
      end
    end
    removed[#removed + 1] = e.id
  end
end
local instances = 0
for _, m in ipairs(p.mpps) do
  local score = redis.call('ZSCORE', p.mpps_time, m.uid)
  if score and tonumber(score) <= p.mpps_cutoff then
    local refs = redis.call('HGET', m.key, 'refs')
    if refs then
      for _, ref in ipairs(cjson.decode(refs)) do redis.call('SREM', ref[2], m.uid) end
    end
    redis.call('DEL', m.key)
    redis.call('ZREM', p.mpps_time, m.uid)
    instances = instances + 1
  end
end
local removed_json = '[]'
if #removed > 0 then removed_json = cjson.encode(removed) end
return {removed_json, instances}
"""
)

# ARGV[1]: {mark: [ids], unmark: [ids], now, ...}: ended steps not yet timed get "now"
# (if still ended), timed ones that are not ended (any more) or gone lose their time.
MARK_SCRIPT = """
local p = cjson.decode(ARGV[1])
local ended = {COMPLETED=true, CANCELED=true, DISCONTINUED=true}
for _, id in ipairs(p.mark) do
  local status = redis.call('HGET', p.entry_prefix .. id, 'status')
  if status and ended[status] then redis.call('ZADD', p.ended, 'NX', p.now, id) end
end
for _, id in ipairs(p.unmark) do
  local status = redis.call('HGET', p.entry_prefix .. id, 'status')
  if not (status and ended[status]) then redis.call('ZREM', p.ended, id) end
end
return 0
"""
