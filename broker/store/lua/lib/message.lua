-- message: how every script that applies an HL7 message starts and ends.
-- include: guards
--
-- message_prologue(p): {'dup', record} when the message was applied before (its dedup
-- record, KEYS[p.dedup.key], exists), {'retry'} when a guard (p.guards) no longer holds,
-- nil to go on. Nothing has been written at either answer.
-- record_dedup(p): writes the message's dedup record (p.dedup: key position, value, ttl),
-- in the same atomic call as the message's changes.
local function message_prologue(p)
  if p.dedup then
    local existing = redis.call('GET', KEYS[p.dedup.key])
    if existing then return {'dup', existing} end
  end
  if not guards_hold(p.guards) then return {'retry'} end
  return nil
end
local function record_dedup(p)
  if p.dedup then
    redis.call('SET', KEYS[p.dedup.key], p.dedup.value, 'EX', p.dedup.ttl)
  end
end
