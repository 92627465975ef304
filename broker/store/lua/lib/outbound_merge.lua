-- outbound_merge: parked events queued again at their place among the waiting ones, by event
-- id (broker.store.outbound.OutboundQueue.retry, retry_all). Ids are taken from one counter
-- when an event is made, so a smaller id is an older event: merged by id, every order's
-- events wait in the order they were made, and an event parked at the bound ("queue full")
-- never goes out before an older waiting event of its order.
-- out_merge(base, ids): ids (ascending) into base .. 'queue', each before the first waiting
-- id greater than it; one read and one rewrite of the queue, whatever the number of ids.
local function out_merge(base, ids)
  if #ids == 0 then return end
  local qkey = base .. 'queue'
  local waiting = redis.call('LRANGE', qkey, 0, -1)
  local merged, i = {}, 1
  for _, wid in ipairs(waiting) do
    local w = tonumber(wid)
    while i <= #ids and tonumber(ids[i]) < w do
      merged[#merged + 1] = ids[i]
      i = i + 1
    end
    merged[#merged + 1] = wid
  end
  for j = i, #ids do merged[#merged + 1] = ids[j] end
  redis.call('DEL', qkey)
  for first = 1, #merged, 1000 do
    redis.call('RPUSH', qkey, unpack(merged, first, math.min(first + 999, #merged)))
  end
end
