-- msglog_resolve: a message taken off the message log's error list, with why
-- (broker.store.msglog.MessageLog.resolve).
-- include: msglog
--
-- KEYS[1-7] the log's keys (lib/msglog.lua: the record prefix, log, times, error list,
--           refs, byte counter, control ids); KEYS[8] the message's hash.
-- ARGV[1]   JSON {id, fields (name, value, ...), ttl_ms, now_ms}
-- Returns 1, or 0 when the message was not on the error list.
local p = cjson.decode(ARGV[1])
local k = log_keys(1)
if redis.call('ZREM', k.errors, p.id) == 0 then return 0 end
redis.call('HSET', KEYS[8], unpack(p.fields))
release(k, p, p.id)
return 1
