-- retention_mark: when did a step end. Ended steps not yet timed get "now" (if still
-- ended); timed ones not ended (any more), or gone, lose their time
-- (broker.store.retention.Retention).
--
-- KEYS[1]  the ended steps (sorted set: entry id, when it ended)
-- KEYS[2…] the entries' hashes ARGV[1] names by position. No key is found in stored data.
-- ARGV[1]  JSON {mark: [[id, key]], unmark: [[id, key]], now}
-- Returns 0.
local p = cjson.decode(ARGV[1])
local ended = {COMPLETED=true, CANCELED=true, DISCONTINUED=true}
for _, m in ipairs(p.mark) do
  local status = redis.call('HGET', KEYS[m[2]], 'status')
  if status and ended[status] then redis.call('ZADD', KEYS[1], 'NX', p.now, m[1]) end
end
for _, m in ipairs(p.unmark) do
  local status = redis.call('HGET', KEYS[m[2]], 'status')
  if not (status and ended[status]) then redis.call('ZREM', KEYS[1], m[1]) end
end
return 0
