-- migrate_move_alias: a patient alias renamed, with a TTL if it had none, its old ID added
-- to its target's merged set (broker.store.key_migration).
--
-- KEYS[1]  the alias under its schema-1 name; KEYS[2] its new name; KEYS[3] the merged set
--          of its target
-- ARGV[1]  JSON {value (the alias as read), ttl, old (the old ID)}
-- Returns 1 (also when the alias is gone), or 0 when its value changed meanwhile.
local p = cjson.decode(ARGV[1])
local v = redis.call('GET', KEYS[1])
if not v then return 1 end
if v ~= p.value then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIRE', KEYS[2], p.ttl) end
redis.call('SADD', KEYS[3], p.old)
if redis.call('TTL', KEYS[3]) < 0 then redis.call('EXPIRE', KEYS[3], p.ttl) end
return 1
