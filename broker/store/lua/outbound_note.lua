-- outbound_note: fields of a queued event written (its message as first built, a failed
-- attempt), if the event still exists and this process holds the destination's lease
-- (broker.store.outbound.OutboundQueue.note).
--
-- KEYS[1] the lease; KEYS[2] the event hash
-- ARGV[1] the lease token; ARGV[2] 1: count an attempt, 0: not; ARGV[3…] field, value pairs
-- Returns {"lease"}, {"missing"}, else {"ok", attempts}.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lease'} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing'} end
if #ARGV > 2 then redis.call('HSET', KEYS[2], unpack(ARGV, 3)) end
if ARGV[2] == '1' then return {'ok', redis.call('HINCRBY', KEYS[2], 'attempts', 1)} end
return {'ok', tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0')}
