-- remove_entry: a worklist entry taken off the worklist (broker.store.worklist, retention).
--
-- remove_entry(ek, id, idx, all) deletes the entry hash ek (entry id ``id``) and its
-- membership of every index it was written to and of the all-entries set ``all``. Its
-- index keys are found in stored data: ``idx`` is the entry's idx field as stored (JSON
-- [["s", set key] or ["z", sorted set key, score], ...]), or false.
local function remove_entry(ek, id, idx, all)
  if idx then
    for _, ref in ipairs(cjson.decode(idx)) do
      if ref[1] == 'z' then
        redis.call('ZREM', ref[2], id)
      else
        redis.call('SREM', ref[2], id)
      end
    end
  end
  redis.call('SREM', all, id)
  redis.call('DEL', ek)
end
