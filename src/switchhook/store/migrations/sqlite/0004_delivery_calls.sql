-- Every delivery knows its call (docs/behaviour.md, Calls): `call_id` is the first non-empty of the event's
-- SWITCHHOOK_CALL_HEADERS, NULL for an event without a call. The event order key is `event_ts`
-- (Event-Date-Timestamp, microseconds since the epoch) then `event_seq` (Event-Sequence), NULL where the event
-- has none: a call's deliveries are listed and sent in that order, then in order of creation.
ALTER TABLE deliveries ADD COLUMN call_id TEXT;
ALTER TABLE deliveries ADD COLUMN event_ts BIGINT;
ALTER TABLE deliveries ADD COLUMN event_seq BIGINT;
-- The delivery log by call (GET /api/v2/deliveries?call=) finds one domain's deliveries of one call.
CREATE INDEX deliveries_call ON deliveries (domain, call_id) WHERE call_id IS NOT NULL;
