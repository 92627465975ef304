-- patient: an ADT message's changes and its dedup record, in one atomic call
-- (broker.store.patients.PatientStore.apply; the changes are planned in Python from what
-- was read, broker.store.patient_state).
-- include: message
--
-- KEYS     every key the commands write and the guards read, and the dedup record; ARGV[1]
--          names each by its position. No key is found in stored data.
-- ARGV[1]  JSON {dedup, guards, commands}: each command is {name, key position, args...}
-- Returns {"dup", <dedup value>} for a message applied before, {"retry"} when a guard
-- failed (nothing done), else {"ok"}.
local p = cjson.decode(ARGV[1])
local early = message_prologue(p)
if early then return early end
for _, c in ipairs(p.commands) do redis.call(c[1], KEYS[c[2]], unpack(c, 3)) end
record_dedup(p)
return {'ok'}
