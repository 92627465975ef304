-- audit_lease: the audit export's lease taken or renewed, unless another owner holds it,
-- and its cursor moved (broker.audit.exporter).
--
-- KEYS[1]  the export state (hash: cursor, sent, owner, until)
-- ARGV     the owner, the lease's life in ms, the new cursor and its ordinal (or "")
-- Returns {cursor, ordinal} ("" when unknown), or nil when another broker exports.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local owner = redis.call('HGET', KEYS[1], 'owner')
local till = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if owner and owner ~= ARGV[1] and till > now then
  return false
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1],
  'until', string.format('%d', now + tonumber(ARGV[2])))
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'cursor', ARGV[3], 'sent', ARGV[4])
end
return {redis.call('HGET', KEYS[1], 'cursor') or '', redis.call('HGET', KEYS[1], 'sent') or ''}
