-- lock_renew: a lock kept, if this owner still holds it (broker.store.schema_version).
--
-- KEYS[1]  the lock (a string holding its owner's token)
-- ARGV[1]  the owner's token; ARGV[2] the lock's new life, in milliseconds
-- Returns 1, or 0 when another owner holds the lock (or nobody does).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
