-- entry_edit: one worklist entry changed by hand (broker.store.entry_edits.EntryEdits): a new
-- DICOM JSON (an attribute edited) with its index memberships, a new SPS status, or the entry
-- removed; only while the entry is at the revision the editor read, in one atomic call.
-- include: remove_entry
-- include: outbound
--
-- KEYS[1]  the entry hash; KEYS[2] the all-entries set; KEYS[3] the ended steps (zset)
-- KEYS[4]  the order-status hash; KEYS[5] the order-time hash
-- KEYS[6…] the keys ARGV[1] names by position: the entry's order set (p.order_set, 0: none),
--          the index keys of the new DICOM JSON (p.idx)
-- Found in stored data: the index keys of the entry's idx field (as lib/remove_entry.lua).
-- ARGV[1]  JSON {op = "edit" | "status" | "delete", id, expect, order_set, order_field,
--          idx = [["s", key position] | ["z", key position, score]], idx_json (as stored:
--          the keys by name), status, now, out (lib/outbound.lua: a status change is
--          queued for the RIS)}
-- ARGV[2]  the new DICOM JSON (op "edit")
-- The revision is sha1(ds .. "\n" .. status) (broker.worklist.edits.revision). An edit keeps
-- the index sets as the apply script writes them; a status change keeps the ended steps'
-- set as the MPPS scripts do; a removal does what the retention purge does.
-- Returns {"missing"}, {"retry"} (the entry is not at p.expect), else {"ok", revision}
-- (the empty string after a removal).
local p = cjson.decode(ARGV[1])
local ek, all, ended_set = KEYS[1], KEYS[2], KEYS[3]
local ended = {COMPLETED=true, CANCELED=true, DISCONTINUED=true}
local function revision(ds, status) return redis.sha1hex(ds .. '\n' .. (status or '')) end
local row = redis.call('HMGET', ek, 'ds', 'status', 'idx')
if not row[1] then return {'missing'} end
if revision(row[1], row[2]) ~= p.expect then return {'retry'} end
if p.op == 'delete' then
  remove_entry(ek, p.id, row[3], all)
  redis.call('ZREM', ended_set, p.id)
  if p.order_set ~= 0 then
    local order_set = KEYS[p.order_set]
    redis.call('SREM', order_set, p.id)
    if redis.call('EXISTS', order_set) == 0 then
      redis.call('HDEL', KEYS[4], p.order_field)
      redis.call('HDEL', KEYS[5], p.order_field)
    end
  end
  return {'ok', ''}
end
if p.op == 'status' then
  redis.call('HSET', ek, 'status', p.status)
  if ended[p.status] then
    redis.call('ZADD', ended_set, p.now, p.id)
  else
    redis.call('ZREM', ended_set, p.id)
  end
  if row[2] ~= p.status then queue_outbound(p.out, ek, p.id, p.status) end
  return {'ok', revision(row[1], p.status), out_full}
end
if row[3] then
  for _, ref in ipairs(cjson.decode(row[3])) do
    if ref[1] == 'z' then
      redis.call('ZREM', ref[2], p.id)
    else
      redis.call('SREM', ref[2], p.id)
    end
  end
end
for _, ref in ipairs(p.idx) do
  if ref[1] == 'z' then
    redis.call('ZADD', KEYS[ref[2]], ref[3], p.id)
  else
    redis.call('SADD', KEYS[ref[2]], p.id)
  end
end
redis.call('HSET', ek, 'ds', ARGV[2], 'idx', p.idx_json)
return {'ok', revision(ARGV[2], row[2])}
