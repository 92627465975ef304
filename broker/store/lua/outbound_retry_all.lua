-- outbound_retry_all: every parked event of a destination queued again, in their order (the
-- order of their ids: the order they were made in), each at its place in the queue by id
-- (lib/outbound_merge.lua), and no order held any more
-- (broker.store.outbound.OutboundQueue.retry_all). Once a receiver is fixed.
-- include: outbound_merge
--
-- KEYS[1] the destination's prefix "{p}:out:<dest>:" (its queue, dead, held and ev:<id>
--         keys are built from it)
-- Returns the number of events queued again.
local base = KEYS[1]
local ids = redis.call('ZRANGE', base .. 'dead', 0, -1)
for _, did in ipairs(ids) do
  redis.call('HSET', base .. 'ev:' .. did, 'state', 'queued', 'reason', '', 'attempts', 0)
end
out_merge(base, ids)
redis.call('DEL', base .. 'dead', base .. 'held')
return #ids
