-- backup_order: one order as a backup reads it, in one atomic call
-- (broker.store.backup_read.BackupReader).
-- read-only
--
-- KEYS[1]  the order's set; KEYS[2] the entry prefix (an entry's hash is KEYS[2] .. id, the
--          id read from the order's set); KEYS[3] the order-status hash; KEYS[4] the
--          order-time hash; KEYS[5] the ended sorted set
-- ARGV[1]  the order's field in order-status and order-time
-- Returns {status, time, {id, ds, order key, SPS status, ended score, origin, cid, mver},
-- ...};
-- a missing value is a nil reply.
local out = {redis.call('HGET', KEYS[3], ARGV[1]), redis.call('HGET', KEYS[4], ARGV[1])}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local e = redis.call('HMGET', KEYS[2] .. id, 'ds', 'order', 'status', 'origin', 'cid',
                         'mver')
  if e[1] then
    out[#out + 1] = {id, e[1], e[2], e[3], redis.call('ZSCORE', KEYS[5], id), e[4], e[5],
                      e[6]}
  end
end
return out
