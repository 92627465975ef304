-- outbound: a status change queued for the RIS (broker.store.outbound), in the same atomic
-- call as the change itself.
--
-- o is the payload's ``out`` (absent: nothing is queued): {prefix = position in KEYS of
-- "{p}:out:", routes = {sender name = destination}, max = {destination = queue bound},
-- nonce (per call, for the control ids), now, source ("mpps", "edit")}.
-- Found in stored data: the destination, from the entry's origin (its sender); the
-- destination's keys are "{p}:out:" .. destination .. ":queue" etc. (broker.store.keys).
-- queue_outbound(o, ek, id, status): one event for the entry's order and new status (once
-- per call for an order and status); queued, or parked when the order has parked events
-- (they keep their order) or the queue is at its bound. Returns nothing; out_full counts
-- the events this call parked at the bound.
local out_seen, out_full = {}, 0
local function out_park(base, ev, id, hold, reason)
  redis.call('HSET', ev, 'state', 'parked', 'reason', reason)
  redis.call('ZADD', base .. 'dead', tonumber(id), id)
  redis.call('HINCRBY', base .. 'held', hold, 1)
end
local function queue_outbound(o, ek, id, status)
  if not o then return end
  local origin = redis.call('HGET', ek, 'origin')
  local dest = origin and o.routes[origin]
  if not dest then return end
  local order = redis.call('HGET', ek, 'order') or ''
  -- the order's keyed pseudonym (written with the origin at intake): no order key in a name
  local hold = redis.call('HGET', ek, 'ofield') or ('entry:' .. id)
  local once = dest .. '\31' .. hold .. '\31' .. status
  if out_seen[once] then return end
  out_seen[once] = true
  local base = KEYS[o.prefix] .. dest .. ':'
  local eid = tostring(redis.call('INCR', KEYS[o.prefix] .. 'seq'))
  local ev = base .. 'ev:' .. eid
  redis.call('HSET', ev, 'id', eid, 'order', order, 'entry', id, 'status', status,
             'source', o.source, 'at', o.now, 'ds', redis.call('HGET', ek, 'ds') or '{}',
             'control', o.nonce .. eid, 'attempts', 0, 'hold', hold,
             'cid', redis.call('HGET', ek, 'cid') or '')  -- the order's message's (apply.lua)
  if redis.call('HEXISTS', base .. 'held', hold) == 1 then
    out_park(base, ev, eid, hold, 'held: an earlier event of this order is parked')
  elseif redis.call('LLEN', base .. 'queue') >= (o.max[dest] or 10000) then
    out_full = out_full + 1
    out_park(base, ev, eid, hold, 'queue full: max_queued events were waiting')
  else
    redis.call('HSET', ev, 'state', 'queued')
    redis.call('RPUSH', base .. 'queue', eid)
  end
end
