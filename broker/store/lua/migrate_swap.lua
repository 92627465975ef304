-- migrate_swap: a key rebuilt by the key migration replaces its target, and the step is
-- recorded as done (broker.store.key_migration).
--
-- KEYS[1]  the scratch key (the rebuilt one); KEYS[2] the target; KEYS[3] the key schema
--          hash
-- ARGV[1]  the step's field in the key schema hash
-- Returns 1, or 0 when the step was done before. With nothing rebuilt, the target is left
-- as it is.
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('RENAME', KEYS[1], KEYS[2]) end
redis.call('HSET', KEYS[3], ARGV[1], '1')
return 1
