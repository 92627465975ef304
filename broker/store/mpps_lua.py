"""The MPPS store's Lua scripts: creating an instance and each N-SET are one atomic call.

Used by ``broker.store.mpps``: each script writes the instance, moves
the linked worklist entries' SPS status and appends the event to the capped
event stream, together. The keys come in the payload (``broker.store.keys``).
"""

from __future__ import annotations

__all__ = ["CREATE_SCRIPT", "SET_SCRIPT"]

# One Lua prelude for both scripts: p is the payload; set_steps gives the linked entries a
# new SPS status (CANCELED and COMPLETED steps keep theirs) and returns how many changed and
# the order keys of the linked entries; record appends the event to the capped stream.
_PRELUDE = """
local p = cjson.decode(ARGV[1])
local ended = {COMPLETED=true, CANCELED=true, DISCONTINUED=true}
local kept = {COMPLETED=true, CANCELED=true}
local function set_steps(ids, status)
  local changed, orders = 0, {}
  for _, id in ipairs(ids) do
    local ek = p.entry_prefix .. id
    if redis.call('HEXISTS', ek, 'ds') == 1 then
      local current = redis.call('HGET', ek, 'status')
      if not (current and kept[current]) and current ~= status then
        redis.call('HSET', ek, 'status', status)
        if ended[status] then
          redis.call('ZADD', p.ended, p.now, id)
        else
          redis.call('ZREM', p.ended, id)
        end
        changed = changed + 1
      end
      local order = redis.call('HGET', ek, 'order')
      if order then orders[#orders + 1] = order end
    end
  end
  return changed, orders
end
local function record(event, entries_json, orders, ds)
  local orders_json = '[]'
  if #orders > 0 then orders_json = cjson.encode(orders) end
  redis.call('XADD', p.events, 'MAXLEN', '~', p.events_max, '*', 'event', event,
             'uid', p.uid, 'status', p.status, 'aet', p.aet, 'entries', entries_json,
             'orders', orders_json, 'ds', ds)
end
"""

# Returns {"dup"} when the instance exists, else {"ok", changed}.
CREATE_SCRIPT = (
    _PRELUDE
    + """
if redis.call('EXISTS', p.key) == 1 then return {'dup'} end
redis.call('HSET', p.key, 'ds', p.ds, 'status', p.status, 'entries', p.entries_json,
           'refs', p.refs_json, 'aet', p.aet, 'created', p.now, 'updated', p.now)
redis.call('ZADD', p.by_time, p.now, p.uid)
for _, ref in ipairs(p.refs) do redis.call('SADD', ref[2], p.uid) end
local changed, orders = set_steps(p.entries, p.step_status)
record('created', p.entries_json, orders, p.ds)
return {'ok', changed}
"""
)

# Returns {"missing"}, {"finished", status}, {"retry"} when the instance changed since it
# was read (p.digest: sha1 of its ds as read), else {"ok", changed, entries_json}.
SET_SCRIPT = (
    _PRELUDE
    + """
local cur = redis.call('HMGET', p.key, 'status', 'ds', 'entries')
if not cur[1] then return {'missing'} end
if cur[1] ~= 'IN PROGRESS' then return {'finished', cur[1]} end
if redis.sha1hex(cur[2] or '') ~= p.digest then return {'retry'} end
redis.call('HSET', p.key, 'ds', p.ds, 'status', p.status, 'updated', p.now)
redis.call('ZADD', p.by_time, p.now, p.uid)
local changed, orders = 0, {}
if p.status ~= 'IN PROGRESS' then
  changed, orders = set_steps(cjson.decode(cur[3]), p.step_status)
else
  for _, id in ipairs(cjson.decode(cur[3])) do
    local order = redis.call('HGET', p.entry_prefix .. id, 'order')
    if order then orders[#orders + 1] = order end
  end
end
local event = 'updated'
if p.status == 'COMPLETED' then event = 'completed'
elseif p.status == 'DISCONTINUED' then event = 'discontinued' end
record(event, cur[3], orders, p.ds)
return {'ok', changed, cur[3]}
"""
)
