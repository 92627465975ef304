-- mpps: what an MPPS instance does to its linked worklist entries, and its event record
-- (broker.store.mpps).
-- include: outbound
--
-- Both MPPS scripts take KEYS[1] the instance hash, KEYS[2] the instances by time,
-- KEYS[3] the ended steps (sorted set), KEYS[4] the event stream; p is their payload.
-- set_steps(p, steps, status): gives the linked entries (each {id, its hash key}) a new SPS
-- status (CANCELED and COMPLETED steps keep theirs); returns how many changed and the
-- order keys of the linked entries; each step it changes queues its outbound event
-- (lib/outbound.lua, p.out).
-- record_event(p, event, entries_json, orders, ds): appends the event to the capped stream.
local ended = {COMPLETED=true, CANCELED=true, DISCONTINUED=true}
local kept = {COMPLETED=true, CANCELED=true}
local function set_steps(p, steps, status)
  local changed, orders = 0, {}
  for _, step in ipairs(steps) do
    local id, ek = step[1], step[2]
    if redis.call('HEXISTS', ek, 'ds') == 1 then
      local current = redis.call('HGET', ek, 'status')
      if not (current and kept[current]) and current ~= status then
        redis.call('HSET', ek, 'status', status)
        if ended[status] then
          redis.call('ZADD', KEYS[3], p.now, id)
        else
          redis.call('ZREM', KEYS[3], id)
        end
        changed = changed + 1
        queue_outbound(p.out, ek, id, status)
      end
      local order = redis.call('HGET', ek, 'order')
      if order then orders[#orders + 1] = order end
    end
  end
  return changed, orders
end
local function record_event(p, event, entries_json, orders, ds)
  local orders_json = '[]'
  if #orders > 0 then orders_json = cjson.encode(orders) end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', p.events_max, '*', 'event', event,
             'uid', p.uid, 'status', p.status, 'aet', p.aet, 'entries', entries_json,
             'orders', orders_json, 'ds', ds)
end
