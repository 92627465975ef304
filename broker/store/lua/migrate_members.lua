-- migrate_members: members of a set or sorted set replaced by the key migration, then the
-- key renamed (broker.store.key_migration).
--
-- KEYS[1]  the set or sorted set; KEYS[2], if given, its new name (a set already there is
--          merged into)
-- ARGV[1]  JSON {kind ("s"/"z", "" for no members), pairs [[old, new], ...]}: a sorted
--          set's members keep their scores
-- Returns 1.
local p = cjson.decode(ARGV[1])
for _, m in ipairs(p.pairs) do
  if p.kind == 'z' then
    local score = redis.call('ZSCORE', KEYS[1], m[1])
    if score then
      redis.call('ZREM', KEYS[1], m[1])
      redis.call('ZADD', KEYS[1], score, m[2])
    end
  elseif redis.call('SREM', KEYS[1], m[1]) == 1 then
    redis.call('SADD', KEYS[1], m[2])
  end
end
local rename = KEYS[2]
if rename and redis.call('EXISTS', KEYS[1]) == 1 then
  if p.kind == 's' and redis.call('EXISTS', rename) == 1 then
    redis.call('SUNIONSTORE', rename, rename, KEYS[1])
    redis.call('DEL', KEYS[1])
  else
    redis.call('RENAME', KEYS[1], rename)
  end
end
return 1
