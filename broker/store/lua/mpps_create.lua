-- mpps_create: a new MPPS instance (N-CREATE), its linked steps started and its event
-- recorded, in one atomic call (broker.store.mpps.MppsStore.create).
-- include: mpps
--
-- KEYS[1-4] the instance hash, the instances by time, the ended steps, the event stream
--           (lib/mpps.lua)
-- KEYS[5…]  the keys ARGV[1] names by position: the instance's index sets (p.refs), the
--           linked entries' hashes (p.steps), the outbound prefix (p.out.prefix,
--           lib/outbound.lua). Found in stored data: the outbound destination (lib/outbound.lua).
-- ARGV[1]   JSON payload (MppsStore._payload, with entries_json and refs_json to store)
-- Returns {"dup"} when the instance exists, else {"ok", changed, parked at the outbound
-- queue's bound}.
local p = cjson.decode(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return {'dup'} end
redis.call('HSET', KEYS[1], 'ds', p.ds, 'status', p.status, 'entries', p.entries_json,
           'refs', p.refs_json, 'aet', p.aet, 'created', p.now, 'updated', p.now)
redis.call('ZADD', KEYS[2], p.now, p.uid)
for _, ref in ipairs(p.refs) do redis.call('SADD', KEYS[ref], p.uid) end
local steps = {}
for _, step in ipairs(p.steps) do steps[#steps + 1] = {step[1], KEYS[step[2]]} end
local changed, orders = set_steps(p, steps, p.step_status)
record_event(p, 'created', p.entries_json, orders, p.ds)
return {'ok', changed, out_full}
