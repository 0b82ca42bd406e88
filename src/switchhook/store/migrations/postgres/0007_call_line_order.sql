-- Ordered hooks' call gate at a bounded cost (docs/calls.md, "What a call's waiting deliveries cost").
-- The call line in gate order (store/sql.py _CALL_RANK): the first pending delivery of a (hook, call) is one
-- index step, however many wait behind it (the gate read the whole line to prove a head had none before it).
DROP INDEX deliveries_call_line;
CREATE INDEX deliveries_call_line ON deliveries (hook_id, call_id, ((CASE WHEN call_seq > 0 THEN 0 ELSE 1 END)),
    call_seq, (COALESCE(event_ts, 4611686018427387904)), (COALESCE(event_seq, 4611686018427387904)), created_at, id)
    WHERE call_seq IS NOT NULL AND status = 'pending';
-- A call's deliveries leased to a worker, at most what the workers hold: the gate's other test.
CREATE INDEX deliveries_call_leases ON deliveries (hook_id, call_id, lease_until)
    WHERE call_seq IS NOT NULL AND status = 'pending' AND lease_until IS NOT NULL;
-- The due deliveries of ordered hooks' calls: a claim sets behind those of them that are not their call's first
-- (store/sql.py SET_BEHIND) reading only these, nothing when no ordered hook has any due.
CREATE INDEX deliveries_call_due ON deliveries (next_at) WHERE call_seq IS NOT NULL AND status = 'pending';
