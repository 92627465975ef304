-- outbound_discard: a parked event dropped for good: it is never sent
-- (broker.store.outbound.OutboundQueue.discard). The other parked events of its order stay
-- parked (an operator retries or discards them too); when none is left, the order is no
-- longer held, and its new events are queued again.
--
-- KEYS[1] the destination's prefix "{p}:out:<dest>:" (its dead, held and ev:<id> keys are
--         built from it)
-- ARGV[1] the event id
-- Returns {"missing"}, {"queued"} (it is not parked), else {"ok", the ids of its order's
--         events still parked (JSON)}.
local base, id = KEYS[1], ARGV[1]
local ev = base .. 'ev:' .. id
local row = redis.call('HMGET', ev, 'hold', 'state')  -- hold: the order's pseudonym
if not row[1] then return {'missing'} end
if row[2] ~= 'parked' then return {'queued'} end
redis.call('ZREM', base .. 'dead', id)
redis.call('DEL', ev)
local left = {}
for _, did in ipairs(redis.call('ZRANGE', base .. 'dead', 0, -1)) do
  if redis.call('HGET', base .. 'ev:' .. did, 'hold') == row[1] then left[#left + 1] = did end
end
if #left == 0 then
  redis.call('HDEL', base .. 'held', row[1])
  return {'ok', '[]'}
end
redis.call('HSET', base .. 'held', row[1], #left)
return {'ok', cjson.encode(left)}
