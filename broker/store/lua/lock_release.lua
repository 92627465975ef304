-- lock_release: a lock given up, if this owner holds it (broker.store.schema_version).
--
-- KEYS[1]  the lock (a string holding its owner's token)
-- ARGV[1]  the owner's token
-- Returns 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
