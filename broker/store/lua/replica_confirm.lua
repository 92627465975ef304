-- replica_confirm: a write for the replicas to confirm, and nothing else
-- (broker.store.worklist.WorklistStore.confirm_steps). A resend answered from its dedup
-- record changes nothing, so the runner's WAIT after it would cover none of the order's
-- writes; after this one it covers everything this primary holds, the order included
-- (a replica's acknowledged offset counts the one replication stream).
--
-- KEYS[1]  the counter of these writes (broker.store.keys.KeySchema.replica_confirm)
-- Returns the counter.
return redis.call('INCR', KEYS[1])
