-- guards: optimistic guards, values read before a script ran, checked again inside it
-- (broker.store.guards).
--
-- guards_hold(guards) is false when any guarded value changed since it was read. Each
-- guard is {kind, key position in KEYS, hash field, sha1 of the value as read}; kind is
-- 'get' (a string key), 'hget' (one field of a hash) or 'members' (a set's members,
-- sorted, joined by "\n"; entry ids and patient keys are ASCII, so Lua's table.sort
-- orders them as Python does). A missing value digests as the empty string.
local function guards_hold(guards)
  for _, g in ipairs(guards or {}) do
    local key = KEYS[g[2]]
    local v
    if g[1] == 'hget' then
      v = redis.call('HGET', key, g[3])
    elseif g[1] == 'get' then
      v = redis.call('GET', key)
    else
      local m = redis.call('SMEMBERS', key)
      table.sort(m)
      v = table.concat(m, '\n')
    end
    if not v then v = '' end
    if redis.sha1hex(v) ~= g[4] then return false end
  end
  return true
end
