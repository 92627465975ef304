-- retention_remove: expired worklist entries and MPPS instances removed, each only if it is
-- still as it was read, in one atomic call (broker.store.retention.Retention).
-- include: remove_entry
--
-- KEYS[1]  the all-entries set; KEYS[2] the ended steps; KEYS[3] the order-status hash;
-- KEYS[4]  the order-time hash; KEYS[5] the MPPS instances by time
-- KEYS[6…] the keys ARGV[1] names by position: each entry's hash and its order's set, each
--          MPPS instance's hash
-- Found in stored data: the index keys in an entry's idx field (lib/remove_entry.lua) and
-- in an instance's refs field.
-- ARGV[1]  JSON {entries: [{id, key, digest, status, order_set (0: none), order_field}],
--          mpps: [{uid, key}], mpps_cutoff}
-- Returns {removed entry ids as JSON, removed MPPS instance count}.
local p = cjson.decode(ARGV[1])
local all, ended, mpps_time = KEYS[1], KEYS[2], KEYS[5]
local order_status, order_time = KEYS[3], KEYS[4]
local removed = {}
for _, e in ipairs(p.entries) do
  local ek = KEYS[e.key]
  local row = redis.call('HMGET', ek, 'ds', 'status', 'idx')
  if row[1] and redis.sha1hex(row[1]) == e.digest and (row[2] or '') == e.status then
    remove_entry(ek, e.id, row[3], all)
    redis.call('ZREM', ended, e.id)
    if e.order_set ~= 0 then
      local order_set = KEYS[e.order_set]
      redis.call('SREM', order_set, e.id)
      if redis.call('EXISTS', order_set) == 0 then
        redis.call('HDEL', order_status, e.order_field)
        redis.call('HDEL', order_time, e.order_field)
      end
    end
    removed[#removed + 1] = e.id
  end
end
local instances = 0
for _, m in ipairs(p.mpps) do
  local score = redis.call('ZSCORE', mpps_time, m.uid)
  if score and tonumber(score) <= p.mpps_cutoff then
    local mk = KEYS[m.key]
    local refs = redis.call('HGET', mk, 'refs')
    if refs then
      for _, ref in ipairs(cjson.decode(refs)) do redis.call('SREM', ref[2], m.uid) end
    end
    redis.call('DEL', mk)
    redis.call('ZREM', mpps_time, m.uid)
    instances = instances + 1
  end
end
local removed_json = '[]'
if #removed > 0 then removed_json = cjson.encode(removed) end
return {removed_json, instances}
