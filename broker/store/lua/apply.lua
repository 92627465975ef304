-- apply: an order message's changes, its dedup record and its message-log record, in one
-- atomic call (broker.store.worklist.WorklistStore.apply; the payload is built by
-- broker.store.apply_script).
-- include: message
-- include: remove_entry
-- include: record_message
--
-- KEYS[1]  the entry prefix: an order's current entries are KEYS[1] .. id, their ids read
--          from the order's set
-- KEYS[2]  the all-entries set; KEYS[3] the order-status hash; KEYS[4] the order-time hash
-- KEYS[5…] the keys ARGV[1] names by position: the dedup record, the guarded keys, each
--          order's set, each new entry's hash and index keys; then the message-log
--          record's keys from p.record.keys_at on (lib/record_message.lua)
-- Found in stored data: the index keys in a replaced entry's idx field
-- (lib/remove_entry.lua), and the message log's (lib/msglog.lua).
-- ARGV[1]  JSON payload (apply_payload); each new entry's DICOM JSON is the argument its
--          ``ds`` names (not escaped again inside the payload); with p.record, the raw
--          message, ACK and application ACK are the three arguments from p.record.argv on.
-- p.sent (absent without a usable MSH-7) is the message's UTC interval, compared as text
-- with the order's newest applied MSH-7 (broker.worklist.ordering).
-- Returns {"dup", <dedup value>} when the message was applied before, {"retry"} when a
-- guard failed, else {"ok", written, removed, skipped, stale, logged} (logged: the
-- message-log id of p.record, false without one).
local p = cjson.decode(ARGV[1])
local early = message_prologue(p)
if early then return early end
local entry_prefix, all, order_status, order_time = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local terminal = {COMPLETED=true, CANCELED=true, DISCONTINUED=true}
local written, removed, skipped, stale = 0, 0, 0, 0
for _, o in ipairs(p.orders) do
  local order_set = KEYS[o.key]
  local current = redis.call('HGET', order_status, o.field)
  local newest = p.sent and redis.call('HGET', order_time, o.field)
  if newest and p.sent.latest <= newest then
    skipped, stale = skipped + 1, stale + 1
  elseif current and terminal[current] and o.action ~= 'cancel' and not terminal[o.status] then
    skipped = skipped + 1
  else
    if p.sent and (not newest or p.sent.earliest > newest) then
      redis.call('HSET', order_time, o.field, p.sent.earliest)
    end
    if o.action == 'status' then
      for _, id in ipairs(redis.call('SMEMBERS', order_set)) do
        redis.call('HSET', entry_prefix .. id, 'status', o.status)
        written = written + 1
      end
      redis.call('HSET', order_status, o.field, o.status)
    else
      local progressed = {}  -- a step a modality (MPPS) or an ADT moved on keeps its status
      for _, id in ipairs(redis.call('SMEMBERS', order_set)) do
        local ek = entry_prefix .. id
        local was = redis.call('HGET', ek, 'status')
        if was and was ~= 'SCHEDULED' then
          progressed[id] = was
        end
        remove_entry(ek, id, redis.call('HGET', ek, 'idx'), all)
        removed = removed + 1
      end
      redis.call('DEL', order_set)
      for _, e in ipairs(o.entries) do
        local status = o.status
        if status == 'SCHEDULED' and progressed[e.id] then
          status = progressed[e.id]
        end
        redis.call('HSET', KEYS[e.key], 'ds', ARGV[e.ds], 'order', o.order_key,
                   'idx', e.idx_json, 'status', status)
        if o.origin and o.origin ~= '' then  -- its sender, and its order's pseudonym (outbound)
          redis.call('HSET', KEYS[e.key], 'origin', o.origin, 'ofield', o.field,
                     'cid', o.cid or '')  -- the message's correlation ID: to its status events
        end
        if o.mver and o.mver ~= '' then  -- the mapping version that made it (an ADT keeps it)
          redis.call('HSET', KEYS[e.key], 'mver', o.mver)
        end
        for _, ref in ipairs(e.idx) do
          if ref[1] == 'z' then
            redis.call('ZADD', KEYS[ref[2]], ref[3], e.id)
          else
            redis.call('SADD', KEYS[ref[2]], e.id)
          end
        end
        redis.call('SADD', all, e.id)
        redis.call('SADD', order_set, e.id)
        written = written + 1
      end
      if o.action == 'schedule' then
        redis.call('HSET', order_status, o.field, o.status)
      end
    end
  end
end
record_dedup(p)
local logged = false
if p.record then
  local a = p.record.argv
  logged = record_applied(p.record, written, removed, stale, ARGV[a], ARGV[a + 1], ARGV[a + 2])
end
return {'ok', written, removed, skipped, stale, logged}
