-- migrate_move_entry: an entry hash moved to its new id with its new idx list
-- (broker.store.key_migration).
--
-- KEYS[1]  the entry's hash under its schema-1 id; KEYS[2] its new name
-- ARGV[1]  JSON {idx, digest}: the new idx list, sha1 of the idx field as read
-- Returns 1 (also when the entry is gone), or 0 when its idx changed meanwhile.
local p = cjson.decode(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
if redis.sha1hex(redis.call('HGET', KEYS[1], 'idx') or '') ~= p.digest then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'idx', p.idx)
return 1
