-- audit_release: the audit export's lease given up, if this owner holds it
-- (broker.audit.exporter).
--
-- KEYS[1]  the export state (hash: cursor, sent, owner, until)
-- ARGV[1]  the owner
-- Returns 1.
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'until', '0')
end
return 1
