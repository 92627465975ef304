-- outbound_retry: a parked event sent again, with every parked event of its order, in their
-- order, at their place in the queue by id (lib/outbound_merge.lua;
-- broker.store.outbound.OutboundQueue.retry).
-- include: outbound_merge
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
for _, did in ipairs(ids) do
  redis.call('ZREM', base .. 'dead', did)
  redis.call('HSET', base .. 'ev:' .. did, 'state', 'queued', 'reason', '', 'attempts', 0)
end
out_merge(base, ids)
redis.call('HDEL', base .. 'held', row[1])
return {'ok', cjson.encode(ids)}
