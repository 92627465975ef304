-- select_candidates: the ids of the worklist entries a query may match, from the index
-- keys, inside Redis (broker.store.candidates.CandidateSelector).
-- read-only
--
-- KEYS     one or more index sets, then the SPS Start Date sorted set. No key is found in
--          stored data.
-- ARGV     low, high (YYYYMMDD, or -inf / +inf), and "1" when a date range is asked.
-- Returns the ids in every set and, with a range, whose date score lies in [low, high] (an
-- id without a score does not), unsorted. It starts from the smaller side: the
-- intersection of the sets, filtered by ZMSCORE, or the ids in the range, filtered by
-- SMISMEMBER on each set.
local nsets, zkey = #KEYS - 1, KEYS[#KEYS]
if ARGV[3] ~= '1' then
  return redis.call('SINTER', unpack(KEYS, 1, nsets))
end
local low, high = ARGV[1], ARGV[2]
local lo = low == '-inf' and -math.huge or tonumber(low)
local hi = high == '+inf' and math.huge or tonumber(high)
local function keep(ids, cmd, key, test)
  local out = {}
  for first = 1, #ids, 1000 do  -- unpack() has a limit on its values
    local last = math.min(first + 999, #ids)
    local replies = redis.call(cmd, key, unpack(ids, first, last))
    for i = first, last do
      if test(replies[i - first + 1]) then
        out[#out + 1] = ids[i]
      end
    end
  end
  return out
end
local smallest = math.huge
for i = 1, nsets do
  smallest = math.min(smallest, redis.call('SCARD', KEYS[i]))
end
if redis.call('ZCOUNT', zkey, low, high) < smallest then
  local ids = redis.call('ZRANGEBYSCORE', zkey, low, high)
  for i = 1, nsets do
    ids = keep(ids, 'SMISMEMBER', KEYS[i], function(member) return member == 1 end)
  end
  return ids
end
local ids = redis.call('SINTER', unpack(KEYS, 1, nsets))
return keep(ids, 'ZMSCORE', zkey, function(score)
  local s = score and tonumber(score)  -- false: the id has no date score
  return s and s >= lo and s <= hi
end)
