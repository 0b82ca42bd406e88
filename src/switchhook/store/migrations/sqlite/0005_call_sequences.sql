-- Ordered hooks (`"order": "call"`, docs/calls.md): each request of one (hook, call) carries X-Call-Sequence, 1, 2,
-- 3 ... in sending order. The number is taken from the (hook, call)'s counter when the delivery is first sent and
-- kept on the delivery, so a retry, a restart or another worker sends it with the same number.
ALTER TABLE deliveries ADD COLUMN call_seq BIGINT;
CREATE TABLE call_sequences (
    hook_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (hook_id, call_id)
);
-- The claim's per-call gate (store/sql.py CALL_GATE) looks up the pending deliveries of an ordered hook's call:
-- only those rows are in this index (call_seq is NULL for every other delivery).
CREATE INDEX deliveries_call_line ON deliveries (hook_id, call_id) WHERE call_seq IS NOT NULL AND status = 'pending';
