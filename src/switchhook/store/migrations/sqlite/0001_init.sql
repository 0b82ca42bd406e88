-- switchhook schema v1 (SQLite). Timestamps are epoch seconds (REAL, UTC, microseconds) set in Python.
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE domains (name TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE accounts (
    domain TEXT NOT NULL, username TEXT NOT NULL, password_hash TEXT NOT NULL, role TEXT NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (domain, username));
CREATE TABLE sessions (
    key TEXT PRIMARY KEY, token_hash TEXT NOT NULL, username TEXT NOT NULL, domain TEXT,
    role TEXT NOT NULL, expires_at REAL NOT NULL, created_at REAL NOT NULL);
CREATE TABLE domain_tokens (
    id TEXT PRIMARY KEY, domain TEXT NOT NULL, role TEXT NOT NULL, expires_ms INTEGER NOT NULL,
    enabled INTEGER NOT NULL, created_by TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX domain_tokens_domain ON domain_tokens (domain);
CREATE TABLE hooks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, domain TEXT NOT NULL, event TEXT NOT NULL,
    doc TEXT NOT NULL, disabled_reason TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX hooks_domain ON hooks (domain, seq);
CREATE TABLE events (
    id TEXT PRIMARY KEY, domain TEXT NOT NULL, event_key TEXT NOT NULL, source TEXT NOT NULL,
    payload TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY, event_id TEXT NOT NULL, hook_id TEXT NOT NULL, domain TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
    lease_until REAL, leased_by TEXT, expires_at REAL, last_status INTEGER, last_error TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
CREATE INDEX deliveries_hook ON deliveries (hook_id, created_at);
CREATE INDEX deliveries_finished ON deliveries (updated_at) WHERE status <> 'pending';
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE TABLE attempts (
    delivery_id TEXT NOT NULL, n INTEGER NOT NULL, started_at REAL NOT NULL, duration_ms REAL NOT NULL,
    status_code INTEGER, error TEXT, response_excerpt TEXT, PRIMARY KEY (delivery_id, n));
