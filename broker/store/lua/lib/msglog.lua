-- msglog: the message log's keys and how a message leaves it (broker.store.msglog).
--
-- log_keys(at): the log's keys, from KEYS[at] on: the record prefix (a message's hash is
-- prefix .. id, ids read from the log's sorted sets), the log, its times and the error
-- list (sorted sets), the refs hash (each message's index keys as stored: the keys
-- forget() finds in stored data), the byte counter, the control-id sorted set.
-- p (the caller's payload) gives ttl_ms and now_ms.
local function log_keys(at)
  return {prefix = KEYS[at], log = KEYS[at + 1], time = KEYS[at + 2],
          errors = KEYS[at + 3], refs = KEYS[at + 4], bytes = KEYS[at + 5],
          cid = KEYS[at + 6]}
end
local function release(k, p, id)
  -- off the error list: expire with the log, or go now (its bytes with it) if the log
  -- dropped it already
  local key = k.prefix .. id
  local at = redis.call('ZSCORE', k.time, id)
  if at then
    local left = tonumber(at) + p.ttl_ms - p.now_ms
    if left < 1000 then left = 1000 end
    redis.call('PEXPIRE', key, math.floor(left))
  else
    -- (a log written before errors were counted holds fewer: never below 0)
    if redis.call('DECRBY', k.bytes, redis.call('HSTRLEN', key, 'raw')) < 0 then
      redis.call('SET', k.bytes, 0)
    end
    redis.call('DEL', key)
  end
end
local function forget(k, id)
  -- out of the log; a message still on the error list keeps its hash and its bytes in
  -- the count (release takes them when it leaves the list)
  local waiting = redis.call('ZSCORE', k.errors, id)
  local refs = redis.call('HGET', k.refs, id)
  if refs then
    local d = cjson.decode(refs)
    for _, ix in ipairs(d.zs) do redis.call('ZREM', ix, id) end
    redis.call('ZREM', k.cid, d.cid)
    redis.call('HDEL', k.refs, id)
    if d.n and not waiting then redis.call('DECRBY', k.bytes, d.n) end
  end
  redis.call('ZREM', k.log, id)
  redis.call('ZREM', k.time, id)
  if not waiting then redis.call('DEL', k.prefix .. id) end
end
local function drop_errors(k, p, ids, why)
  for _, old in ipairs(ids) do
    redis.call('ZREM', k.errors, old)
    redis.call('HSET', k.prefix .. old, 'resolution', why)
    release(k, p, old)
  end
end
