-- outbound_retry: a parked event sent again, with every parked event of its order, in their
-- order, ahead of the queue (broker.store.outbound.OutboundQueue.retry).
--
-- KEYS[1] the destination's prefix "{p}:out:<dest>:" (its queue, dead, held and ev:<id>
--         keys are built from it)
-- ARGV[1] the event id
-- Returns {"missing"}, {"queued"} (it is not parked), else {"ok", ids requeued (JSON)}.
local base, id = KEYS[1], ARGV[1]
local ev = base .. 'ev:' .. id
local row = redis.call('HMGET', ev, 'hold', 'state')  -- hold: the order's pseudonym
if not row[1] then return {'missing'} end
if row[2] ~= 'parked' then return {'queued'} end
local ids = {}
for _, did in ipairs(redis.call('ZRANGE', base .. 'dead', 0, -1)) do
  if redis.call('HGET', base .. 'ev:' .. did, 'hold') == row[1] then ids[#ids + 1] = did end
end
for i = #ids, 1, -1 do
  local key = base .. 'ev:' .. ids[i]
  redis.call('ZREM', base .. 'dead', ids[i])
  redis.call('HSET', key, 'state', 'queued', 'reason', '', 'attempts', 0)
  redis.call('LPUSH', base .. 'queue', ids[i])
end
redis.call('HDEL', base .. 'held', row[1])
return {'ok', cjson.encode(ids)}
