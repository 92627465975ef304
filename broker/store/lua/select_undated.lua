-- select_undated: one step of reading the ids of the worklist entries the SPS Start Date
-- index does not hold, inside Redis (broker.store.candidates.CandidateSelector.days).
-- read-only
--
-- KEYS[1]  the all-entries set; KEYS[2] the SPS Start Date sorted set. No key is found in
--          stored data.
-- ARGV     an SSCAN cursor of KEYS[1] ("0": the first step), and the step's COUNT.
-- Returns {the next cursor ("0": the last step), {the ids of this step without a date
-- score}}: each step examines about COUNT ids and moves only the undated ones.
local scan = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local ids, out = scan[2], {}
for first = 1, #ids, 1000 do  -- unpack() has a limit on its values
  local last = math.min(first + 999, #ids)
  local scores = redis.call('ZMSCORE', KEYS[2], unpack(ids, first, last))
  for i = first, last do
    if not scores[i - first + 1] then
      out[#out + 1] = ids[i]
    end
  end
end
return {scan[1], out}
