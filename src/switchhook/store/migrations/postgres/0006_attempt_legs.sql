-- A hook's fallback URL (docs/fallback.md): an attempt may be two requests, the primary and the fallback. Each is
-- recorded here as a JSON array of [leg, url (password masked), status_code, duration_ms, error, reason]
-- (store/sql.py attempt_values). NULL for an attempt that sent the primary alone: the row is that request.
ALTER TABLE attempts ADD COLUMN legs TEXT;
