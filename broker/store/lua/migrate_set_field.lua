-- migrate_set_field: hash fields rewritten by the key migration, if unchanged since they
-- were read (broker.store.key_migration).
--
-- KEYS[1]  the hash (a message-log record may have expired meanwhile)
-- ARGV[1]  JSON {fields, digests, values}: HSET values (field, value, ...) if each of
--          ``fields`` still has the value read (sha1 ``digests``) and the key exists
-- Returns 1, or 0 when the hash changed meanwhile.
local p = cjson.decode(ARGV[1])
for i, f in ipairs(p.fields) do
  if redis.sha1hex(redis.call('HGET', KEYS[1], f) or '') ~= p.digests[i] then return 0 end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(p.values))
return 1
