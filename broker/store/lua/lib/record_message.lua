-- record_message: one message written to the message log, the log trimmed (broker.store.msglog).
-- include: msglog
--
-- The record p (MessageLog._body) names its keys by position from KEYS[p.keys_at] on:
-- 1-7 the log's keys (log_keys), 8 the id counter, then the index keys p.indexes and
-- p.outcome_index name (by type, sender, warnings; by outcome), relative to p.keys_at.
--
-- record_message(p, raw, ack, app_ack): raw the message, ack the ACK, app_ack the
-- application ACK of enhanced mode (HL7 v2.5.1 §2.9.3) or "". Writes the record, trims
-- the log; returns the record's id.
-- record_applied(p, written, removed, stale, ...): the same for a record whose outcome is
-- that of the order changes just applied: p.outcomes.fresh, or p.outcomes.stale if any
-- change was skipped as stale; each {name, index} (the outcome and its index key's
-- position).
local function record_message(p, raw, ack, app_ack)
  local k = log_keys(p.keys_at)
  local function key(i) return KEYS[p.keys_at + i - 1] end
  local id = tostring(redis.call('INCR', key(8)))
  local mk = k.prefix .. id
  local cid = p.cid_value .. id
  redis.call('HSET', mk, 'raw', raw, 'ack', ack, 'app_ack', app_ack, unpack(p.fields))
  local indexes = {}  -- by type and sender (with warnings); and by outcome:
  for _, i in ipairs(p.indexes) do indexes[#indexes + 1] = key(i) end
  indexes[#indexes + 1] = key(p.outcome_index)
  redis.call('HSET', k.refs, id, cjson.encode({zs = indexes, cid = cid, n = #raw}))
  redis.call('INCRBY', k.bytes, #raw)
  for _, ix in ipairs(indexes) do redis.call('ZADD', ix, id, id) end
  redis.call('ZADD', k.log, id, id)
  redis.call('ZADD', k.time, p.received_ms, id)
  redis.call('ZADD', k.cid, 0, cid)
  if p.error then
    redis.call('ZADD', k.errors, id, id)
  else
    redis.call('PEXPIRE', mk, p.ttl_ms)
  end
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', k.time, '-inf', '(' .. p.cutoff_ms,
                                  'LIMIT', 0, p.trim)) do
    forget(k, old)
  end
  local excess = redis.call('ZCARD', k.log) - p.max
  if excess > 0 then
    for _, old in ipairs(redis.call('ZRANGE', k.log, 0, math.min(excess, p.trim) - 1)) do
      forget(k, old)
    end
  end
  local over = tonumber(redis.call('GET', k.bytes) or '0') - p.max_bytes
  local dropped = 0
  while over > 0 and dropped < p.trim do  -- the byte budget: the oldest go first
    local oldest = redis.call('ZRANGE', k.log, 0, 0)[1]
    if not oldest or oldest == id then break end
    forget(k, oldest)
    dropped = dropped + 1
    over = tonumber(redis.call('GET', k.bytes) or '0') - p.max_bytes
  end
  dropped = 0
  while over > 0 and dropped < p.trim do  -- what is left over it waits on the error list
    local oldest = redis.call('ZRANGE', k.errors, 0, 0)[1]
    if not oldest or oldest == id then break end
    drop_errors(k, p, {oldest}, 'dropped: message log over its byte budget')
    dropped = dropped + 1
    over = tonumber(redis.call('GET', k.bytes) or '0') - p.max_bytes
  end
  excess = redis.call('ZCARD', k.errors) - p.max
  if excess > 0 then
    local ids = redis.call('ZRANGE', k.errors, 0, math.min(excess, p.trim) - 1)
    drop_errors(k, p, ids, 'dropped: error list over its limit')
  end
  return id
end
local function record_applied(p, written, removed, stale, raw, ack, app_ack)
  local outcome = p.outcomes.fresh
  if stale > 0 then outcome = p.outcomes.stale end
  local f = p.fields  -- later pairs of one HSET win over the placeholders before them
  for _, v in ipairs({'outcome', outcome.name, 'created', tostring(written),
                      'removed', tostring(removed)}) do
    f[#f + 1] = v
  end
  p.outcome_index = outcome.index
  return record_message(p, raw, ack, app_ack)
end
