"""The message log's Lua scripts: each record, trim and resolve is one atomic call.

Used by ``broker.store.msglog``; the keys they touch are in ``broker.store.keys``.
``RECORD_LUA`` also ends the worklist's apply script (``broker.store.apply_script``),
so that an order message's record is written in the same atomic call as its
entries and dedup record.
"""

from __future__ import annotations

__all__ = ["RECORD_LUA", "RECORD_SCRIPT", "RESOLVE_SCRIPT"]

# Shared by both scripts. p: prefix, log, time, errors, refs, cid, bytes, ttl_ms, now_ms.
_HELPERS = """
local function release(p, id)
  -- off the error list: expire with the log, or go now (its bytes with it) if the log
  -- dropped it already
  local key = p.prefix .. id
  local at = redis.call('ZSCORE', p.time, id)
  if at then
    local left = tonumber(at) + p.ttl_ms - p.now_ms
    if left < 1000 then left = 1000 end
    redis.call('PEXPIRE', key, math.floor(left))
  else
    -- (a log written before errors were counted holds fewer: never below 0)
    if redis.call('DECRBY', p.bytes, redis.call('HSTRLEN', key, 'raw')) < 0 then
      redis.call('SET', p.bytes, 0)
    end
    redis.call('DEL', key)
  end
end
local function forget(p, id)
  -- out of the log; a message still on the error list keeps its hash and its bytes in
  -- the count (release takes them when it leaves the list)
  local waiting = redis.call('ZSCORE', p.errors, id)
  local refs = redis.call('HGET', p.refs, id)
  if refs then
    local d = cjson.decode(refs)
    for _, ix in ipairs(d.zs) do redis.call('ZREM', ix, id) end
    redis.call('ZREM', p.cid, d.cid)
    redis.call('HDEL', p.refs, id)
    if d.n and not waiting then redis.call('DECRBY', p.bytes, d.n) end
  end
  redis.call('ZREM', p.log, id)
  redis.call('ZREM', p.time, id)
  if not waiting then redis.call('DEL', p.prefix .. id) end
end
local function drop_errors(p, ids, why)
  for _, old in ipairs(ids) do
    redis.call('ZREM', p.errors, old)
    redis.call('HSET', p.prefix .. old, 'resolution', why)
    release(p, old)
  end
end
"""

# record_message(p, raw, ack, app_ack): p is the record (see MessageLog._body), raw the
# message, ack the ACK, app_ack the application ACK of enhanced mode (HL7 v2.5.1 §2.9.3)
# or "". Writes the record, trims the log; returns the record's id.
# record_applied(p, written, removed, stale, ...): the same for a record whose outcome is
# that of the order changes just applied: p.outcomes.fresh, or p.outcomes.stale if any
# change was skipped as stale; each {name, index} (the outcome and its index key).
RECORD_LUA = (
    _HELPERS
    + """
local function record_message(p, raw, ack, app_ack)
  local id = tostring(redis.call('INCR', p.seq))
  local key = p.prefix .. id
  local cid = p.cid_value .. id
  redis.call('HSET', key, 'raw', raw, 'ack', ack, 'app_ack', app_ack, unpack(p.fields))
  local indexes = p.indexes  -- by type and sender (with warnings); and by outcome:
  indexes[#indexes + 1] = p.outcome_index
  redis.call('HSET', p.refs, id, cjson.encode({zs = indexes, cid = cid, n = #raw}))
  redis.call('INCRBY', p.bytes, #raw)
  for _, ix in ipairs(indexes) do redis.call('ZADD', ix, id, id) end
  redis.call('ZADD', p.log, id, id)
  redis.call('ZADD', p.time, p.received_ms, id)
  redis.call('ZADD', p.cid, 0, cid)
  if p.error then
    redis.call('ZADD', p.errors, id, id)
  else
    redis.call('PEXPIRE', key, p.ttl_ms)
  end
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', p.time, '-inf', '(' .. p.cutoff_ms,
                                  'LIMIT', 0, p.trim)) do
    forget(p, old)
  end
  local excess = redis.call('ZCARD', p.log) - p.max
  if excess > 0 then
    for _, old in ipairs(redis.call('ZRANGE', p.log, 0, math.min(excess, p.trim) - 1)) do
      forget(p, old)
    end
  end
  local over = tonumber(redis.call('GET', p.bytes) or '0') - p.max_bytes
  local dropped = 0
  while over > 0 and dropped < p.trim do  -- the byte budget: the oldest go first
    local oldest = redis.call('ZRANGE', p.log, 0, 0)[1]
    if not oldest or oldest == id then break end
    forget(p, oldest)
    dropped = dropped + 1
    over = tonumber(redis.call('GET', p.bytes) or '0') - p.max_bytes
  end
  dropped = 0
  while over > 0 and dropped < p.trim do  -- what is left over it waits on the error list
    local oldest = redis.call('ZRANGE', p.errors, 0, 0)[1]
    if not oldest or oldest == id then break end
    drop_errors(p, {oldest}, 'dropped: message log over its byte budget')
    dropped = dropped + 1
    over = tonumber(redis.call('GET', p.bytes) or '0') - p.max_bytes
  end
  excess = redis.call('ZCARD', p.errors) - p.max
  if excess > 0 then
    local ids = redis.call('ZRANGE', p.errors, 0, math.min(excess, p.trim) - 1)
    drop_errors(p, ids, 'dropped: error list over its limit')
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
"""
)

# ARGV[1]: JSON record (see MessageLog._body); ARGV[2]: raw message; ARGV[3]: ACK;
# ARGV[4]: the application ACK of enhanced mode, "" if none.
RECORD_SCRIPT = (
    RECORD_LUA
    + """
return record_message(cjson.decode(ARGV[1]), ARGV[2], ARGV[3], ARGV[4])
"""
)

# ARGV[1]: JSON {id, fields, + the keys of _HELPERS}. Returns 1, or 0 if not on the list.
RESOLVE_SCRIPT = (
    _HELPERS
    + """
local p = cjson.decode(ARGV[1])
if redis.call('ZREM', p.errors, p.id) == 0 then return 0 end
redis.call('HSET', p.prefix .. p.id, unpack(p.fields))
release(p, p.id)
return 1
"""
)
