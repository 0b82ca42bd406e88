-- Deliveries a worker had no room for (a hook's backlog full, or its endpoint paused by the circuit breaker)
-- wait "shelved": leased_by = 'shelved', next_at = a horizon minutes away. They are out of the due range of
-- deliveries_due, so claims never walk past them, and this index finds one hook's shelved deliveries when
-- that hook has room again.
CREATE INDEX deliveries_shelved ON deliveries (hook_id, next_at) WHERE leased_by = 'shelved';
