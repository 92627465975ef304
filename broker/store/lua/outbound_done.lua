-- outbound_done: an event the destination acknowledged (AA/CA) taken off its queue, if this
-- process still holds the destination's lease (broker.store.outbound.OutboundQueue.done).
--
-- KEYS[1] the lease; KEYS[2] the queue; KEYS[3] the event hash
-- ARGV[1] the lease token; ARGV[2] the event id
-- Returns {"lease"} when another process holds the lease, else {"ok"}.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lease'} end
redis.call('LREM', KEYS[2], 1, ARGV[2])
redis.call('DEL', KEYS[3])
return {'ok'}
