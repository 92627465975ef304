-- outbound_retry_all: every parked event of a destination queued again, in their order (the
-- order of their ids: the order they were queued in), ahead of the queue, and no order held
-- any more (broker.store.outbound.OutboundQueue.retry_all). Once a receiver is fixed.
--
-- KEYS[1] the destination's prefix "{p}:out:<dest>:" (its queue, dead, held and ev:<id>
--         keys are built from it)
-- Returns the number of events queued again.
local base = KEYS[1]
local ids = redis.call('ZRANGE', base .. 'dead', 0, -1)
for i = #ids, 1, -1 do
  redis.call('HSET', base .. 'ev:' .. ids[i], 'state', 'queued', 'reason', '', 'attempts', 0)
  redis.call('LPUSH', base .. 'queue', ids[i])
end
redis.call('DEL', base .. 'dead', base .. 'held')
return #ids
