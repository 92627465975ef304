-- count_ended: how many of a station's entries have ended, counted inside Redis
-- (broker.store.counts.Counts, the metrics' station x status family on a Redis without
-- ZINTERCARD, such as the embedded 6.2).
-- read-only
--
-- KEYS     the station's index set, the ended sorted set. No key is found in stored data.
-- ARGV     the most ids to check.
-- Returns the number of ids in both, or -1 (nothing checked) when both hold more ids than
-- ARGV[1]. It walks the smaller side: the set's ids looked up with ZMSCORE, or the sorted
-- set's ids read by rank in chunks and looked up with SMISMEMBER; 1,000 ids a call.
local station, ended = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local in_station, in_ended = redis.call('SCARD', station), redis.call('ZCARD', ended)
if math.min(in_station, in_ended) > limit then
  return -1
end
local n = 0
if in_station <= in_ended then
  local ids = redis.call('SMEMBERS', station)
  for first = 1, #ids, 1000 do  -- unpack() has a limit on its values
    local scores = redis.call('ZMSCORE', ended, unpack(ids, first, math.min(first + 999, #ids)))
    for i = 1, #scores do
      if scores[i] then
        n = n + 1
      end
    end
  end
else
  for first = 0, in_ended - 1, 1000 do
    local ids = redis.call('ZRANGE', ended, first, first + 999)
    if #ids > 0 then
      local found = redis.call('SMISMEMBER', station, unpack(ids))
      for i = 1, #found do
        n = n + found[i]
      end
    end
  end
end
return n
