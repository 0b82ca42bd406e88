-- The shelved deliveries of ordered hooks' calls, per hook: a take from a hook's shelf sets behind those of them
-- that are not their call's first (store/sql.py SET_BEHIND) reading only these. Without it that read walked the
-- hook's whole shelf (deliveries_shelved) to find none when the hook is not ordered: every take paid for the shelf.
CREATE INDEX deliveries_call_shelved ON deliveries (hook_id, next_at)
    WHERE leased_by = 'shelved' AND call_seq IS NOT NULL AND status = 'pending';
