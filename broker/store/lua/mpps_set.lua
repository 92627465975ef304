-- mpps_set: an N-SET applied to an IN PROGRESS instance, its linked steps moved on when it
-- ends and its event recorded, in one atomic call (broker.store.mpps.MppsStore.update).
-- include: mpps
--
-- KEYS[1-4] the instance hash, the instances by time, the ended steps, the event stream
--           (lib/mpps.lua)
-- KEYS[5]   the entry prefix: the linked entries are KEYS[5] .. id, their ids read from the
--           instance; KEYS[6] the outbound prefix, when p.out (lib/outbound.lua) names it
-- ARGV[1]   JSON payload (MppsStore._payload, with digest: sha1 of the instance's ds as read)
-- Returns {"missing"}, {"finished", status}, {"retry"} when the instance changed since it
-- was read, else {"ok", changed, entries_json, parked at the outbound queue's bound}.
local p = cjson.decode(ARGV[1])
local cur = redis.call('HMGET', KEYS[1], 'status', 'ds', 'entries')
if not cur[1] then return {'missing'} end
if cur[1] ~= 'IN PROGRESS' then return {'finished', cur[1]} end
if redis.sha1hex(cur[2] or '') ~= p.digest then return {'retry'} end
redis.call('HSET', KEYS[1], 'ds', p.ds, 'status', p.status, 'updated', p.now)
redis.call('ZADD', KEYS[2], p.now, p.uid)
local steps = {}
for _, id in ipairs(cjson.decode(cur[3])) do steps[#steps + 1] = {id, KEYS[5] .. id} end
local changed, orders = 0, {}
if p.status ~= 'IN PROGRESS' then
  changed, orders = set_steps(p, steps, p.step_status)
else
  for _, step in ipairs(steps) do
    local order = redis.call('HGET', step[2], 'order')
    if order then orders[#orders + 1] = order end
  end
end
local event = 'updated'
if p.status == 'COMPLETED' then event = 'completed'
elseif p.status == 'DISCONTINUED' then event = 'discontinued' end
record_event(p, event, cur[3], orders, p.ds)
return {'ok', changed, cur[3], out_full}
