-- patient: an ADT message's changes, its dedup record and its message-log record, in one
-- atomic call (broker.store.patients.PatientStore.apply; the changes are planned in Python
-- from what was read, broker.store.patient_state).
-- include: message
-- include: record_message
--
-- KEYS     every key the commands write and the guards read, and the dedup record; ARGV[1]
--          names each by its position; then the message-log record's keys from
--          p.record.keys_at on (lib/record_message.lua). Found in stored data: the message
--          log's (lib/msglog.lua).
-- ARGV[1]  JSON {dedup, guards, commands, record, stale}: each command is {name, key
--          position, args...}; with p.record, the raw message, ACK and application ACK are
--          ARGV[2..4]; p.stale: the patient changes skipped as older (MSH-7).
-- Returns {"dup", <dedup value>} for a message applied before, {"retry"} when a guard
-- failed (nothing done), else {"ok", logged} (logged: the message-log id of p.record,
-- false without one).
local p = cjson.decode(ARGV[1])
local early = message_prologue(p)
if early then return early end
for _, c in ipairs(p.commands) do redis.call(c[1], KEYS[c[2]], unpack(c, 3)) end
record_dedup(p)
local logged = false
if p.record then
  logged = record_applied(p.record, 0, 0, p.stale or 0, ARGV[2], ARGV[3], ARGV[4])
end
return {'ok', logged}
