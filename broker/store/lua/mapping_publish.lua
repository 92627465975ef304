-- mapping_publish: a mapping set made a new version and the active one, announced on the
-- channel, in one atomic call (broker.store.mapping_versions.MappingVersions).
--
-- KEYS[1]  the version counter; KEYS[2] the history (sorted set); KEYS[3] the active
--          version's number
-- KEYS[4]  the version prefix: a version's hash is KEYS[4] .. number, the number read from
--          the counter or the active pointer
-- ARGV[1]  JSON {channel, files, author, comment, created, digest, only_if_empty, expect}
-- Returns {"exists", n} (only_if_empty and a version is active), {"moved", n} (the active
-- version is not ``expect``), {"same", n} (the active version has these files), or
-- {"new", n}.
local p = cjson.decode(ARGV[1])
local seq, history, active, version_prefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local current = redis.call('GET', active)
if p.only_if_empty and current then
  return {'exists', current}
end
if p.expect ~= nil and (current or '') ~= p.expect then
  return {'moved', current or ''}
end
if current and redis.call('HGET', version_prefix .. current, 'digest') == p.digest then
  return {'same', current}
end
local n = redis.call('INCR', seq)
redis.call('HSET', version_prefix .. n, 'files', p.files, 'author', p.author,
  'comment', p.comment, 'created', p.created, 'digest', p.digest, 'based_on', current or '')
redis.call('ZADD', history, n, n)
redis.call('SET', active, n)
redis.call('PUBLISH', p.channel, n)
return {'new', tostring(n)}
