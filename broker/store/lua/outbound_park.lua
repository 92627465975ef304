-- outbound_park: an event the destination answered AE/CE parked as a dead letter with its
-- error, and the later events of its order parked behind it, if this process holds the
-- destination's lease (broker.store.outbound.OutboundQueue.park).
--
-- KEYS[1] the lease; KEYS[2] the destination's prefix "{p}:out:<dest>:" (its queue, dead,
--         held and ev:<id> keys are built from it)
-- ARGV[1] the lease token; ARGV[2] the event id; ARGV[3] the reason; ARGV[4] the error (ERR)
-- Returns {"lease"}, {"missing"}, else {"ok", events parked behind it}.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lease'} end
local base, id = KEYS[2], ARGV[2]
local ev = base .. 'ev:' .. id
local hold = redis.call('HGET', ev, 'hold')  -- the order's pseudonym (lib/outbound.lua)
if not hold then return {'missing'} end
local function park(eid, key, reason)
  redis.call('LREM', base .. 'queue', 1, eid)
  redis.call('HSET', key, 'state', 'parked', 'reason', reason)
  redis.call('ZADD', base .. 'dead', tonumber(eid), eid)
  redis.call('HINCRBY', base .. 'held', hold, 1)
end
park(id, ev, ARGV[3])
redis.call('HSET', ev, 'err', ARGV[4])
local behind = 0
for _, qid in ipairs(redis.call('LRANGE', base .. 'queue', 0, -1)) do
  local key = base .. 'ev:' .. qid
  if redis.call('HGET', key, 'hold') == hold then
    park(qid, key, 'held: an earlier event of this order is parked (' .. id .. ')')
    behind = behind + 1
  end
end
return {'ok', behind}
