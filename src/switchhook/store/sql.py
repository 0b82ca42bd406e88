"""The store's SQL in portable form, written once for both backends.

A backend supplies the primitives (`execute`, `executemany`, `fetch`), the notifications, and its dialect's lock
clauses; where it has a faster way to the same result it overrides the operation in its own module (SQLite writes
many rows per statement and checks leases per statement: `sqlite.py`; PostgreSQL numbers its placeholders:
`postgres.py`). Nothing here asks which backend it runs on.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from switchhook.store.base import (
    BEHIND,
    BEHIND_AT,
    SHELVED,
    AccountRow,
    AtCommit,
    AttemptLeg,
    AttemptRow,
    ClaimedDelivery,
    DeliveryQuery,
    DeliveryRow,
    EventRow,
    Fair,
    Finish,
    HookRow,
    HookStats,
    NewDelivery,
    Recoverable,
    SessionRow,
    TokenRow,
)

Row = Any  # sqlite3.Row or asyncpg.Record: both index by column name

_DELIVERY_COLUMNS = (
    "id, event_id, hook_id, domain, status, attempts, next_at, expires_at, last_status, last_error, "
    "created_at, updated_at, call_id, event_ts, event_seq, call_seq"
)


EVENT_CHUNK = 200  # rows per multi-row INSERT: 1,200 parameters, far below both databases' limits
#: A fair claim reads this many times its limit of the oldest due deliveries and takes each hook's and domain's
#: share of them (see claim_due).
FAIR_WINDOW = 8
ROWS_PER_STATEMENT = 200  # a backend's multi-row writes: at most 2,600 parameters, far below SQLite's 32,766
INSERT_ATTEMPT = (
    "INSERT INTO attempts (delivery_id, n, started_at, duration_ms, status_code, error, response_excerpt, legs)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
FINISH_UPDATE = (
    "UPDATE deliveries SET status = ?, attempts = ?, next_at = ?, last_status = ?, last_error = ?,"
    " lease_until = NULL, leased_by = NULL, updated_at = ? WHERE id = ?"
)


EVENTS_INSERT = "INSERT INTO events (id, domain, event_key, source, payload, received_at)"
EVENT_ROW = "(?, ?, ?, ?, ?, ?)"
DELIVERIES_INSERT = (
    "INSERT INTO deliveries (id, event_id, hook_id, domain, status, attempts, next_at, lease_until, leased_by,"
    " expires_at, created_at, updated_at, call_id, event_ts, event_seq, call_seq)"
)
NEW_DELIVERY_ROW = "(?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#: The per-call gate of ordered hooks (docs/calls.md), on a candidate row `d` of a claim or a take: a delivery of an
#: ordered hook's call (call_seq not NULL) may be leased only when it is the first of its (hook, call)'s pending
#: deliveries in gate order (`_CALL_RANK`: numbered ones, a head waiting for its retry, by number, before
#: unnumbered ones, these in event order: Event-Date-Timestamp, Event-Sequence, those without last, then creation)
#: and no other of them is leased by another worker. So at any moment a call has one candidate, and SKIP LOCKED
#: gives it to one worker; other deliveries (call_seq NULL) pass at the first test. Both tests are index probes
#: (migration 0007: the call line in gate order, and its leased rows apart), whatever the length of the line.
_CALL_RANK = (
    "CASE WHEN {t}.call_seq > 0 THEN 0 ELSE 1 END, {t}.call_seq, COALESCE({t}.event_ts, 4611686018427387904),"
    " COALESCE({t}.event_seq, 4611686018427387904), {t}.created_at, {t}.id"
)
_LINE = "o.hook_id = {hook} AND o.call_id = {call} AND o.call_seq IS NOT NULL AND o.status = 'pending'"
#: The id of the first pending delivery of a (hook, call) in gate order: one step down `deliveries_call_line`.
_FIRST_IN_LINE = (
    "(SELECT o.id FROM deliveries AS o WHERE " + _LINE + f" ORDER BY {_CALL_RANK.format(t='o')} LIMIT 1)"  # noqa: S608
)
CALL_GATE_PASSES = (
    "(d.call_seq IS NULL OR (d.id = " + _FIRST_IN_LINE.format(hook="d.hook_id", call="d.call_id") + " AND NOT EXISTS"  # noqa: S608
    " (SELECT 1 FROM deliveries AS o WHERE " + _LINE.format(hook="d.hook_id", call="d.call_id") + " AND o.id <> d.id"
    " AND o.lease_until IS NOT NULL AND o.leased_by <> ? AND o.lease_until >= ?)))"
)
CALL_GATE = " AND " + CALL_GATE_PASSES
#: Set behind (BEHIND) a claim's or a take's candidates that are not the first of their call's line: out of every
#: later claim's range and off the shelf, each is looked at once, not at every claim until its turn. A first one kept
#: back only because another delivery of its call is leased elsewhere stays (at most one a call): the worker that
#: holds its call may take it. `{window}` selects the candidates as `d`; placeholders: BEHIND_AT, the window's.
SET_BEHIND = (
    f"UPDATE deliveries SET leased_by = '{BEHIND}', lease_until = NULL, next_at = ? WHERE id IN"  # noqa: S608
    " (SELECT d.id FROM ({window}) AS d WHERE d.call_seq IS NOT NULL AND d.id <> "
    + _FIRST_IN_LINE.format(hook="d.hook_id", call="d.call_id")
    + ")"
)
#: Let the first of a (hook, call)'s line through (due now) if it was set behind: whatever came before it has
#: settled. Invariant: a delivery set behind is never its call's first at commit (a call's first changes when one of
#: its deliveries leaves pending, and the result that settles it lets the next through). Placeholders: now, hook,
#: call.
LET_THROUGH = (
    f"UPDATE deliveries SET leased_by = NULL, next_at = ? WHERE leased_by = '{BEHIND}' AND status = 'pending'"  # noqa: S608
    " AND id = " + _FIRST_IN_LINE.format(hook="?", call="?")
)
#: LET_THROUGH for the calls of some deliveries whose results just written settled them, in one statement (no read
#: first: SQLite's write path reads nothing before COMMIT). Placeholders: now, the ids ({marks}).
LET_THROUGH_AFTER = (
    f"UPDATE deliveries SET leased_by = NULL, next_at = ? WHERE leased_by = '{BEHIND}' AND status = 'pending'"  # noqa: S608
    " AND id IN (SELECT " + _FIRST_IN_LINE.format(hook="f.hook_id", call="f.call_id") + " FROM deliveries AS f"
    " WHERE f.id IN ({marks}) AND f.call_seq IS NOT NULL AND f.status <> 'pending')"
)

#: The next delivery of the calls of some just-settled deliveries, leased to the worker that settled them
#: (`claim_next_of`): of each (hook, call) its first pending delivery, when it is due and leased by none (let through
#: by the same transaction, or let go at ingest) and passes the gate. Shelved ones stay for a take (their hook's room).
#: Placeholders: lease_until, worker, now, the ids ({marks}), now, now, worker, now.
CLAIM_NEXT_OF = (
    "UPDATE deliveries SET lease_until = ?, leased_by = ? WHERE id IN (SELECT d.id FROM deliveries AS d"  # noqa: S608
    " WHERE d.id IN (SELECT " + _FIRST_IN_LINE.format(hook="f.hook_id", call="f.call_id") + " FROM deliveries AS f"
    " WHERE f.id IN ({marks}) AND f.call_seq IS NOT NULL AND f.status <> 'pending')"
    " AND d.status = 'pending' AND d.next_at <= ? AND (d.lease_until IS NULL OR d.lease_until < ?)"
    f" AND (d.leased_by IS NULL OR d.leased_by <> '{SHELVED}') AND " + CALL_GATE_PASSES + " {lock})"
    f" RETURNING {_DELIVERY_COLUMNS}"
)


def event_values(e: EventRow) -> tuple[Any, ...]:
    return (e.id, e.domain, e.event_key, e.source, e.payload, e.received_at)


def new_delivery_values(r: NewDelivery, now: float) -> tuple[Any, ...]:
    return (
        r.id,
        r.event_id,
        r.hook_id,
        r.domain,
        r.next_at,
        r.lease_until,
        r.leased_by,
        r.expires_at,
        now,
        now,
        r.call_id,
        r.event_ts,
        r.event_seq,
        r.call_seq,
    )


def attempt_values(a: AttemptRow) -> tuple[Any, ...]:
    legs = json.dumps([dataclasses.astuple(leg) for leg in a.legs]) if a.legs else None
    return (a.delivery_id, a.n, a.started_at, a.duration_ms, a.status_code, a.error, a.response_excerpt, legs)


def attempt_legs(text: str | None) -> tuple[AttemptLeg, ...]:
    """attempts.legs as stored by attempt_values: a JSON array of AttemptLeg field tuples, or NULL."""
    return tuple(AttemptLeg(*leg) for leg in json.loads(text)) if text else ()


def finish_values(r: Finish, now: float) -> tuple[Any, ...]:
    return (r.status, r.attempts, r.next_at, r.last_status, r.last_error, now, r.delivery_id)


def _delivery(row: Row) -> DeliveryRow:
    return DeliveryRow(
        id=row["id"],
        event_id=row["event_id"],
        hook_id=row["hook_id"],
        domain=row["domain"],
        status=row["status"],
        attempts=row["attempts"],
        next_at=row["next_at"],
        expires_at=row["expires_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        call_id=row["call_id"],
        event_ts=row["event_ts"],
        event_seq=row["event_seq"],
        call_seq=row["call_seq"],
    )


def event_column(event: Any) -> str:
    """The `hooks.event` column of a hook's `event`: the key as is, an array of keys as JSON (as is a key that
    itself begins like JSON text, so that reading it back is never ambiguous)."""
    if isinstance(event, str):
        return json.dumps(event) if event.startswith(("[", '"')) else event
    return json.dumps(event if isinstance(event, list) else "")


def column_event_keys(column: str) -> tuple[str, ...]:
    """The event keys of an `event` column (see event_column)."""
    if column.startswith(("[", '"')):
        try:
            value = json.loads(column)
        except ValueError:  # a raw key stored before arrays existed
            return (column,)
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list):
            return tuple(k for k in value if isinstance(k, str))
    return (column,)


def _hook(row: Row) -> HookRow:
    return HookRow(row["id"], row["domain"], json.loads(row["doc"]), row["disabled_reason"])


def _token(row: Row) -> TokenRow:
    return TokenRow(
        row["id"],
        row["domain"],
        row["role"],
        int(row["expires_ms"]),
        bool(row["enabled"]),
        row["created_by"],
        row["created_at"],
    )


class SqlTx(ABC):
    """All store operations over `execute`/`executemany`/`fetch`/`fetchrow`; backends differ only below.

    A backend implements the primitives and the three notifications, sets its lock clauses, and may override
    an operation with its own statements for the same result (`SqliteTx` does for the write path).
    """

    #: Dialect strings, not switches: what ends the subquery that picks rows to lease (`claim_lock_clause`)
    #: and the read of the rows a worker is about to finish (`row_lock_clause`). PostgreSQL locks those rows
    #: (`FOR UPDATE SKIP LOCKED`: concurrent claims pass each other by; `FOR UPDATE`: a claim skips what a
    #: finishing worker holds); SQLite has no such clause and needs none (one writer at a time).
    claim_lock_clause = ""
    row_lock_clause = ""

    @abstractmethod
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; return the number of rows it changed."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def write_rows(self, head: str, row: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        """`{head} VALUES {row}{tail}` for every row; `row` is the placeholder tuple, e.g. `(?, ?)`.

        One statement per row, which asyncpg pipelines; SQLite writes many rows per statement instead."""
        if rows:
            await self.executemany(f"{head} VALUES {row}{tail}", rows)

    # -- settings ---------------------------------------------------------------------------------
    async def get_setting(self, name: str) -> str | None:
        row = await self.fetchrow("SELECT value FROM settings WHERE name = ?", name)
        return None if row is None else str(row["value"])

    async def put_setting_if_absent(self, name: str, value: str) -> str:
        await self.execute("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING", name, value)
        stored = await self.get_setting(name)
        assert stored is not None
        return stored

    async def set_setting(self, name: str, value: str) -> None:
        await self.execute(
            "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = ?",
            name,
            value,
            value,
        )

    # -- domains and accounts ---------------------------------------------------------------------
    async def add_domain(self, name: str, now: float) -> bool:
        sql = "INSERT INTO domains (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING"
        return await self.execute(sql, name, now) == 1

    async def list_domains(self) -> list[str]:
        return [row["name"] for row in await self.fetch("SELECT name FROM domains ORDER BY name")]

    async def domain_exists(self, name: str) -> bool:
        return await self.fetchrow("SELECT 1 AS one FROM domains WHERE name = ?", name) is not None

    async def delete_domain(self, name: str) -> int:
        for table in ("accounts", "domain_tokens", "hooks"):
            await self.execute(f"DELETE FROM {table} WHERE domain = ?", name)  # noqa: S608 - fixed names
        await self.execute("DELETE FROM sessions WHERE domain = ?", name)
        return await self.execute("DELETE FROM domains WHERE name = ?", name)

    async def add_account(self, row: AccountRow, now: float) -> bool:
        sql = (
            "INSERT INTO accounts (domain, username, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING"
        )
        return await self.execute(sql, row.domain, row.username, row.password_hash, row.role, now) == 1

    async def get_account(self, domain: str, username: str) -> AccountRow | None:
        sql = "SELECT domain, username, password_hash, role FROM accounts WHERE domain = ? AND username = ?"
        row = await self.fetchrow(sql, domain, username)
        return None if row is None else AccountRow(row["domain"], row["username"], row["password_hash"], row["role"])

    async def list_accounts(self, domain: str) -> list[AccountRow]:
        sql = "SELECT domain, username, password_hash, role FROM accounts WHERE domain = ? ORDER BY username"
        return [
            AccountRow(r["domain"], r["username"], r["password_hash"], r["role"]) for r in await self.fetch(sql, domain)
        ]

    async def delete_account(self, domain: str, username: str) -> int:
        await self.execute("DELETE FROM sessions WHERE domain = ? AND username = ?", domain, username)
        return await self.execute("DELETE FROM accounts WHERE domain = ? AND username = ?", domain, username)

    async def update_account(self, domain: str, username: str, password_hash: str | None, role: str | None) -> int:
        """Set what is given of the account's password hash and role; 0 when there is no such account."""
        return await self.execute(
            "UPDATE accounts SET password_hash = COALESCE(?, password_hash), role = COALESCE(?, role) "
            "WHERE domain = ? AND username = ?",
            password_hash,
            role,
            domain,
            username,
        )

    # -- sessions and domain tokens ---------------------------------------------------------------
    async def add_session(self, row: SessionRow, now: float) -> None:
        await self.execute(
            "INSERT INTO sessions (key, token_hash, username, domain, role, expires_at, created_at, credential) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            row.key,
            row.token_hash,
            row.username,
            row.domain,
            row.role,
            row.expires_at,
            now,
            row.credential,
        )

    async def get_session(self, key: str) -> SessionRow | None:
        sql = "SELECT key, token_hash, username, domain, role, expires_at, credential FROM sessions WHERE key = ?"
        row = await self.fetchrow(sql, key)
        if row is None:
            return None
        return SessionRow(
            row["key"],
            row["token_hash"],
            row["username"],
            row["domain"],
            row["role"],
            row["expires_at"],
            row["credential"],
        )

    async def delete_session(self, key: str, now: float) -> int:
        # Webitel's logout also sweeps every expired session.
        return await self.execute("DELETE FROM sessions WHERE key = ? OR expires_at < ?", key, now)

    async def delete_sessions(self, domain: str | None, username: str | None) -> int:
        """End root's sessions (`domain` None), a domain's, or one account's (`username` too)."""
        if domain is None:
            return await self.execute("DELETE FROM sessions WHERE domain IS NULL AND username = ?", username or "root")
        if username is None:
            return await self.execute("DELETE FROM sessions WHERE domain = ?", domain)
        return await self.execute("DELETE FROM sessions WHERE domain = ? AND username = ?", domain, username)

    async def add_token(self, row: TokenRow) -> None:
        await self.execute(
            "INSERT INTO domain_tokens (id, domain, role, expires_ms, enabled, created_by, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            row.id,
            row.domain,
            row.role,
            row.expires_ms,
            int(row.enabled),
            row.created_by,
            row.created_at,
        )

    async def get_token(self, domain: str, token_id: str) -> TokenRow | None:
        sql = "SELECT * FROM domain_tokens WHERE domain = ? AND id = ?"
        row = await self.fetchrow(sql, domain, token_id)
        return None if row is None else _token(row)

    async def list_tokens(self, domain: str) -> list[TokenRow]:
        rows = await self.fetch("SELECT * FROM domain_tokens WHERE domain = ? ORDER BY created_at", domain)
        return [_token(r) for r in rows]

    async def delete_token(self, domain: str, token_id: str) -> int:
        return await self.execute("DELETE FROM domain_tokens WHERE domain = ? AND id = ?", domain, token_id)

    async def set_token_enabled(self, domain: str, token_id: str, enabled: bool) -> int:
        sql = "UPDATE domain_tokens SET enabled = ? WHERE domain = ? AND id = ?"
        return await self.execute(sql, int(enabled), domain, token_id)

    # -- hooks ------------------------------------------------------------------------------------
    async def insert_hook(self, row: HookRow, now: float) -> None:
        await self.execute(
            "INSERT INTO hooks (id, domain, event, doc, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            row.id,
            row.domain,
            event_column(row.doc.get("event")),
            json.dumps(row.doc),
            now,
            now,
        )

    async def get_hook(self, domain: str, hook_id: str) -> HookRow | None:
        sql = "SELECT id, domain, doc, disabled_reason FROM hooks WHERE domain = ? AND id = ?"
        row = await self.fetchrow(sql, domain, hook_id)
        return None if row is None else _hook(row)

    async def list_hooks(self, domain: str, limit: int, offset: int) -> list[HookRow]:
        sql = "SELECT id, domain, doc, disabled_reason FROM hooks WHERE domain = ? ORDER BY seq LIMIT ? OFFSET ?"
        return [_hook(r) for r in await self.fetch(sql, domain, limit, offset)]

    async def count_hooks(self, domain: str, events: Sequence[str]) -> tuple[int, dict[str, int]]:
        """How many hooks the domain has, and how many of them are on each event key of `events` (a hook on
        several keys counts on each). Reads the domain's `event` column, short text, at most its hook cap."""
        wanted = dict.fromkeys(events, 0)
        rows = await self.fetch("SELECT event FROM hooks WHERE domain = ?", domain)
        for row in rows:
            for key in column_event_keys(row["event"]):
                if key in wanted:
                    wanted[key] += 1
        return len(rows), wanted

    async def replace_hook(self, row: HookRow, now: float) -> int:
        return await self.execute(
            "UPDATE hooks SET event = ?, doc = ?, disabled_reason = NULL, updated_at = ? WHERE domain = ? AND id = ?",
            event_column(row.doc.get("event")),
            json.dumps(row.doc),
            now,
            row.domain,
            row.id,
        )

    async def delete_hook(self, domain: str, hook_id: str) -> int:
        return await self.execute("DELETE FROM hooks WHERE domain = ? AND id = ?", domain, hook_id)

    async def disable_hook(self, domain: str, hook_id: str, reason: str, now: float) -> int:
        row = await self.get_hook(domain, hook_id)
        if row is None:
            return 0
        doc = {**row.doc, "enable": False}
        sql = "UPDATE hooks SET doc = ?, disabled_reason = ?, updated_at = ? WHERE domain = ? AND id = ?"
        return await self.execute(sql, json.dumps(doc), reason, now, domain, hook_id)

    async def all_hooks(self) -> list[HookRow]:
        return [_hook(r) for r in await self.fetch("SELECT id, domain, doc, disabled_reason FROM hooks ORDER BY seq")]

    @abstractmethod
    async def notify_hook_changed(self, domain: str, hook_id: str) -> None:
        """Tell every process, at commit, that a hook changed ("*" for all of a domain's)."""

    @abstractmethod
    async def notify_new_deliveries(self) -> None:
        """Wake idle workers of other processes: deliveries were stored that no worker was handed."""

    @abstractmethod
    async def notify_token_changed(self, domain: str, token_id: str) -> None:
        """Tell every process, at commit, to forget a cached domain token ("*" for all)."""

    # -- events and deliveries --------------------------------------------------------------------
    async def insert_events(self, rows: Sequence[EventRow]) -> set[str]:
        """Store events; return the ids this transaction inserted (an id stored before is not among them).

        A concurrent transaction inserting the same id waits for ours and then skips it, so exactly one accept
        of a redelivered event sees it as new.
        """
        inserted: set[str] = set()
        for start in range(0, len(rows), EVENT_CHUNK):
            chunk = rows[start : start + EVENT_CHUNK]
            values = ", ".join(EVENT_ROW for _ in chunk)
            params = [v for r in chunk for v in event_values(r)]
            found = await self.fetch(
                f"{EVENTS_INSERT} VALUES {values} ON CONFLICT DO NOTHING RETURNING id",
                *params,
            )
            inserted.update(r["id"] for r in found)
        return inserted

    async def insert_deliveries(self, rows: Sequence[NewDelivery], now: float) -> None:
        await self.write_rows(
            DELIVERIES_INSERT,
            NEW_DELIVERY_ROW,
            [new_delivery_values(r, now) for r in rows],
            " ON CONFLICT DO NOTHING",
        )

    async def store_events(
        self, events: Sequence[EventRow], deliveries: Sequence[tuple[Sequence[NewDelivery], float]]
    ) -> AtCommit[set[str]]:
        """Store events and, for those not stored before, their deliveries (each batch with its creation time);
        the ids of the events this transaction stored, once it commits."""
        new = await self.insert_events(events)
        for rows, now in deliveries:
            await self.insert_deliveries([d for d in rows if d.event_id in new], now)
        return AtCommit.of(new)

    async def claim_due(
        self,
        worker_id: str,
        now: float,
        lease_until: float,
        limit: int,
        skip_hooks: Sequence[str] = (),
        fair: Fair | None = None,
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries to `worker_id` and return them with their event payloads.

        `skip_hooks`: hooks this worker already has a backlog for; their due deliveries stay for later
        (or for another worker) instead of queueing behind a slow endpoint here. `fair`: each hook's and each
        domain's share of the claim, taken oldest first from the FAIR_WINDOW x `limit` oldest due deliveries (a
        bounded read however many are due: a dead hook's backlog is shelved, out of this range), and domains
        left out.
        """
        skip = ""
        if skip_hooks:
            skip = f" AND hook_id NOT IN ({', '.join('?' for _ in skip_hooks)})"  # placeholders only
        skip_domains = fair.skip_domains if fair is not None else ()
        if skip_domains:
            skip += f" AND domain NOT IN ({', '.join('?' for _ in skip_domains)})"  # placeholders only
        # The candidates: a window of the oldest due deliveries, however many are due (FAIR_WINDOW x limit). First,
        # of the as many oldest due deliveries of ordered hooks' calls (a superset of those in the window), those
        # that are not their call's first are set behind (SET_BEHIND), so that no later claim looks at them again
        # until their call moves on; then the claim takes from its window what passes the gate.
        candidates = (
            "SELECT id, hook_id, domain, next_at, call_id, call_seq FROM deliveries WHERE status = 'pending'"  # noqa: S608
            f" AND next_at <= ? AND (lease_until IS NULL OR lease_until < ?){{calls}}{skip}"
            f" ORDER BY next_at LIMIT ? {self.claim_lock_clause}"
        )
        window = candidates.format(calls="")
        window_args = (now, now, *skip_hooks, *skip_domains, limit * FAIR_WINDOW)
        await self._set_behind(candidates.format(calls=" AND call_seq IS NOT NULL"), window_args, now)
        due = f"SELECT d.id FROM ({window}) AS d WHERE {CALL_GATE_PASSES} ORDER BY d.next_at LIMIT ?"  # noqa: S608
        shares: tuple[int, ...] = (limit,)
        if fair is not None:
            # Oldest first within each hook, then within each domain of what the hooks' shares let through.
            due = (
                "SELECT id FROM (SELECT id, next_at, ROW_NUMBER() OVER (PARTITION BY domain ORDER BY next_at) AS nth"  # noqa: S608
                " FROM (SELECT id, domain, next_at,"
                " ROW_NUMBER() OVER (PARTITION BY hook_id ORDER BY next_at) AS nth_of_hook"
                f" FROM (SELECT d.id, d.hook_id, d.domain, d.next_at FROM ({window}) AS d WHERE {CALL_GATE_PASSES})"
                " AS due) AS by_hook WHERE nth_of_hook <= ?) AS by_domain WHERE nth <= ? ORDER BY next_at LIMIT ?"
            )
            shares = (fair.per_hook, fair.per_domain, limit)
        rows = await self.fetch(
            f"UPDATE deliveries SET lease_until = ?, leased_by = ? WHERE id IN ({due})"  # noqa: S608
            f" RETURNING {_DELIVERY_COLUMNS}",
            lease_until,
            worker_id,
            *window_args,
            worker_id,
            now,
            *shares,
        )
        return await self._with_payloads(sorted((_delivery(r) for r in rows), key=lambda d: d.next_at))

    async def claim_shelved(
        self, worker_id: str, hook_id: str, now: float, lease_until: float, limit: int
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` of one hook's shelved deliveries, oldest first, whether their horizon has come or not.
        They are due from now on: one let go without a result (a stop, a crash) is claimed again like any other."""
        return await self.claim_shelves(worker_id, [(hook_id, limit)], now, lease_until)

    async def claim_shelves(
        self, worker_id: str, rooms: Sequence[tuple[str, int]], now: float, lease_until: float
    ) -> list[ClaimedDelivery]:
        """`claim_shelved` for several (hook, limit) at once, each event's payload read once for all of them."""
        taken: list[DeliveryRow] = []
        for hook_id, limit in rooms:
            taken.extend(_delivery(r) for r in await self._take_shelf(worker_id, hook_id, now, lease_until, limit))
        return await self._with_payloads(sorted(taken, key=lambda d: d.created_at))

    async def _take_shelf(self, worker_id: str, hook_id: str, now: float, lease_until: float, limit: int) -> list[Any]:
        # As claim_due: a window of the shelf, those of it that are not their call's first set behind first. The
        # take reads the window in its own order (next_at: a subquery with ORDER BY and LIMIT, which neither backend
        # flattens or reorders) and stops at `limit` rows that pass the gate: an ORDER BY around it would read and
        # sort the whole window (FAIR_WINDOW x `limit` rows) for every take, most of it from hooks with no ordered
        # deliveries, where the first `limit` rows all pass.
        candidates = (
            "SELECT id, hook_id, next_at, call_id, call_seq FROM deliveries WHERE hook_id = ?"  # noqa: S608
            f" AND leased_by = '{SHELVED}' AND status = 'pending'{{calls}} ORDER BY next_at LIMIT ?"
            f" {self.claim_lock_clause}"
        )
        window = candidates.format(calls="")
        window_args = (hook_id, limit * FAIR_WINDOW)
        await self._set_behind(candidates.format(calls=" AND call_seq IS NOT NULL"), window_args, now)
        return await self.fetch(
            "UPDATE deliveries SET next_at = ?, lease_until = ?, leased_by = ? WHERE id IN ("  # noqa: S608
            f" SELECT d.id FROM ({window}) AS d WHERE {CALL_GATE_PASSES} LIMIT ?) RETURNING {_DELIVERY_COLUMNS}",
            now,
            lease_until,
            worker_id,
            *window_args,
            worker_id,
            now,
            limit,
        )

    # -- an ordered hook's deliveries set behind their call's earlier ones (BEHIND) ---------------------------------
    #: Dialect: a statement that takes a lock on one (hook, call) until the transaction ends (placeholders: hook,
    #: call). Setting a call's deliveries behind and letting them through both take it, before the statement that
    #: lets through: otherwise, with transactions running side by side, a claim could set a delivery behind an
    #: earlier one (still pending in its snapshot) while the transaction settling that earlier one looked for
    #: deliveries to let through (this one not behind yet in its snapshot), and the call would wait for good. With
    #: the lock, whichever comes second sees what the first committed. SQLite runs one transaction at a time and
    #: has its own `_set_behind` and `let_through_after`, which need none.
    call_line_lock = ""

    async def _set_behind(self, window: str, window_args: Sequence[Any], now: float) -> None:
        """Set behind the candidates of `window` that are not the first of their call's line (SET_BEHIND); then,
        under the calls' locks, let through any of their firsts set behind (a result recorded concurrently)."""
        rows = await self.fetch(
            SET_BEHIND.format(window=window) + " RETURNING hook_id, call_id", BEHIND_AT, *window_args
        )
        if rows:
            await self.let_calls_through([(r["hook_id"], r["call_id"]) for r in rows], now)

    async def let_calls_through(self, calls: Sequence[tuple[str, str]], now: float) -> None:
        """For each (hook, call): its first pending delivery, when set behind, is due now (LET_THROUGH)."""
        keys = sorted(set(calls))  # one lock order everywhere
        await self.executemany(self.call_line_lock, keys)
        await self.executemany(LET_THROUGH, [(now, hook, call) for hook, call in keys])

    async def let_through_after(self, delivery_ids: Sequence[str], now: float) -> None:
        """LET_THROUGH for the calls of those of these deliveries whose results just written settled them: a call's
        first changes only when one of its deliveries leaves pending (a retry keeps its place, a recovered one
        comes back due). The calls are read first, to be locked (see call_line_lock)."""
        ids = sorted(set(delivery_ids))
        calls: list[tuple[str, str]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self.fetch(
                f"SELECT DISTINCT hook_id, call_id FROM deliveries WHERE id IN ({marks})"  # noqa: S608
                " AND call_seq IS NOT NULL AND status <> 'pending'",
                *chunk,
            )
            calls.extend((r["hook_id"], r["call_id"]) for r in rows)
        if calls:
            await self.let_calls_through(calls, now)

    async def _with_payloads(self, deliveries: list[DeliveryRow]) -> list[ClaimedDelivery]:
        if not deliveries:
            return []
        payloads = await self.event_payloads(sorted({d.event_id for d in deliveries}))
        return [ClaimedDelivery(d, payloads.get(d.event_id, "{}")) for d in deliveries]

    async def shelve(self, worker_id: str, delivery_ids: Sequence[str], until: float) -> None:
        """Hand deliveries this worker holds back to the store as shelved (see SHELVED), due at `until` at latest."""
        for start in range(0, len(delivery_ids), 500):
            chunk = delivery_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            await self.executemany(
                f"UPDATE deliveries SET leased_by = '{SHELVED}', lease_until = NULL, next_at = ?"  # noqa: S608
                f" WHERE leased_by = ? AND status = 'pending' AND id IN ({marks})",
                [[until, worker_id, *chunk]],
            )

    async def reshelve(self, hook_id: str, before: float, until: float) -> int:
        """Move a hook's shelved deliveries whose horizon comes before `before` out to `until` (a long outage)."""
        return await self.execute(
            f"UPDATE deliveries SET next_at = ? WHERE hook_id = ? AND leased_by = '{SHELVED}'"  # noqa: S608
            " AND status = 'pending' AND next_at < ?",
            until,
            hook_id,
            before,
        )

    async def shelved_hooks(self) -> list[str]:
        rows = await self.fetch(
            f"SELECT DISTINCT hook_id FROM deliveries WHERE leased_by = '{SHELVED}' AND status = 'pending'"  # noqa: S608
        )
        return [r["hook_id"] for r in rows]

    async def still_shelved(self, hook_ids: Sequence[str]) -> set[str]:
        """Which of these hooks have a shelved delivery left (one indexed probe per hook)."""
        left: set[str] = set()
        for hook_id in hook_ids:
            row = await self.fetchrow(
                f"SELECT 1 AS one FROM deliveries WHERE hook_id = ? AND leased_by = '{SHELVED}'"  # noqa: S608
                " AND status = 'pending' LIMIT 1",
                hook_id,
            )
            if row is not None:
                left.add(hook_id)
        return left

    async def event_payloads(self, event_ids: Sequence[str]) -> dict[str, str]:
        marks = ", ".join("?" for _ in event_ids)
        rows = await self.fetch(f"SELECT id, payload FROM events WHERE id IN ({marks})", *event_ids)  # noqa: S608
        return {r["id"]: r["payload"] for r in rows}

    async def finish(self, results: Sequence[Finish], worker_id: str | None, now: float) -> None:
        """Record attempts and move deliveries on; a result of a worker that lost the lease is dropped whole.

        With `worker_id`, only deliveries still leased to that worker change: once another worker claimed one
        (or anyone finished it and let go), the stale result and its attempt are ignored, so they can never
        overwrite a newer outcome or take the attempt number of the new holder. `worker_id=None` applies all.
        """
        if not results:
            return
        if worker_id is not None:
            owned = await self._leased_to(worker_id, [r.delivery_id for r in results])
            results = [r for r in results if r.delivery_id in owned]
            if not results:
                return
        await self.give_back_numbers(results, worker_id)
        attempts = [r.attempt for r in results if r.attempt is not None]
        if attempts:
            await self.executemany(
                INSERT_ATTEMPT,
                [attempt_values(a) for a in attempts],
            )
        rows = [finish_values(r, now) for r in results]
        if worker_id is None:
            await self.executemany(FINISH_UPDATE, rows)
        else:
            await self.executemany(FINISH_UPDATE + " AND leased_by = ?", [(*row, worker_id) for row in rows])
        await self.let_through_after([r.delivery_id for r in results], now)

    async def claim_next_of(
        self, worker_id: str, settled: Sequence[str], now: float, lease_until: float
    ) -> list[ClaimedDelivery]:
        """Lease to `worker_id` the next delivery of each ordered call one of `settled` (its results written in
        this transaction) settled, when it may go now (CLAIM_NEXT_OF): the worker that sent a call's delivery sends
        its next at once, not at its next poll, and takes no other call's (docs/calls.md)."""
        ids = sorted(set(settled))
        rows: list[Any] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows += await self.fetch(
                CLAIM_NEXT_OF.format(marks=marks, lock=self.claim_lock_clause),
                lease_until,
                worker_id,
                *chunk,
                now,
                now,
                worker_id,
                now,
            )
        return await self._with_payloads(sorted((_delivery(r) for r in rows), key=lambda d: d.created_at))

    async def give_back_numbers(self, results: Sequence[Finish], worker_id: str | None) -> None:
        """An ordered hook's delivery that expires before it was ever sent takes no X-Call-Sequence (docs/calls.md):
        one numbered when its call's turn came (core/admission.py, "numbered") and expired while it waited for a
        slot gives its number back to its (hook, call)'s counter (`Finish.return_number`, set by the worker that
        numbered it: one claimed with its number may have been sent by a process that died before recording it).
        It is its call's last number: the next of the call is numbered only once this one settles. Before the
        results are written (still leased)."""
        unsent = sorted(r.delivery_id for r in results if r.return_number)
        if not unsent:
            return
        leased = "" if worker_id is None else " AND leased_by = ?"
        mine = () if worker_id is None else (worker_id,)
        await self.executemany(
            "UPDATE call_sequences SET last_seq = last_seq - 1 WHERE (hook_id, call_id, last_seq) IN"  # noqa: S608
            " (SELECT hook_id, call_id, call_seq FROM deliveries WHERE id = ? AND call_seq > 0 AND status = 'pending'"
            f"{leased})",
            [(delivery_id, *mine) for delivery_id in unsent],
        )
        await self.executemany(
            "UPDATE deliveries SET call_seq = 0 WHERE id = ? AND call_seq > 0 AND status = 'pending'" + leased,  # noqa: S608
            [(delivery_id, *mine) for delivery_id in unsent],
        )

    async def _leased_to(self, worker_id: str, delivery_ids: Sequence[str]) -> set[str]:
        """Which of `delivery_ids` are leased to `worker_id`, locked until the transaction ends."""
        owned: set[str] = set()
        ordered = sorted(set(delivery_ids))  # one lock order everywhere (see extend_leases): no deadlocks
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            sql = f"SELECT id FROM deliveries WHERE leased_by = ? AND id IN ({marks}) ORDER BY id"  # noqa: S608
            rows = await self.fetch(f"{sql} {self.row_lock_clause}", worker_id, *chunk)
            owned.update(r["id"] for r in rows)
        return owned

    async def get_delivery(self, domain: str, delivery_id: str) -> DeliveryRow | None:
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE domain = ? AND id = ?"  # noqa: S608
        row = await self.fetchrow(sql, domain, delivery_id)
        return None if row is None else _delivery(row)

    async def get_event(self, event_id: str) -> EventRow | None:
        sql = "SELECT id, domain, event_key, source, payload, received_at FROM events WHERE id = ?"
        row = await self.fetchrow(sql, event_id)
        if row is None:
            return None
        return EventRow(row["id"], row["domain"], row["event_key"], row["source"], row["payload"], row["received_at"])

    async def list_deliveries(
        self, domain: str, hook_id: str, status: str | None, limit: int, offset: int
    ) -> list[DeliveryRow]:
        where = "domain = ? AND hook_id = ?" + (" AND status = ?" if status else "")
        args: list[Any] = [domain, hook_id] + ([status] if status else []) + [limit, offset]
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?"  # noqa: S608
        return [_delivery(r) for r in await self.fetch(sql, *args)]

    async def search_deliveries(
        self, domain: str, query: DeliveryQuery, limit: int, offset: int
    ) -> list[tuple[DeliveryRow, str | None]]:
        """The domain's deliveries `query` takes, each with its event key. Of one call (`query.call_id`): in event
        order, Event-Date-Timestamp then Event-Sequence (those without either after those with it), then order of
        creation; else newest first."""
        where: list[str] = ["domain = ?"]
        args: list[Any] = [domain]
        for column, value in (("call_id", query.call_id), ("hook_id", query.hook_id), ("status", query.status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.since is not None:
            where.append("created_at >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("created_at < ?")
            args.append(query.until)
        order = (
            "CASE WHEN event_ts IS NULL THEN 1 ELSE 0 END, event_ts, CASE WHEN event_seq IS NULL THEN 1 ELSE 0 END,"
            " event_seq, created_at, id"
            if query.call_id is not None
            else "created_at DESC, id"
        )
        sql = (
            f"SELECT {_DELIVERY_COLUMNS}, (SELECT event_key FROM events WHERE events.id = deliveries.event_id)"  # noqa: S608
            f" AS event_key FROM deliveries WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ? OFFSET ?"
        )
        return [(_delivery(r), r["event_key"]) for r in await self.fetch(sql, *args, limit, offset)]

    async def list_attempts(self, delivery_id: str) -> list[AttemptRow]:
        sql = (
            "SELECT delivery_id, n, started_at, duration_ms, status_code, error, response_excerpt, legs"
            " FROM attempts WHERE delivery_id = ? ORDER BY n"
        )
        return [
            AttemptRow(
                r["delivery_id"],
                r["n"],
                r["started_at"],
                r["duration_ms"],
                r["status_code"],
                r["error"],
                r["response_excerpt"],
                attempt_legs(r["legs"]),
            )
            for r in await self.fetch(sql, delivery_id)
        ]

    async def requeue(self, domain: str, delivery_id: str, now: float) -> int:
        """Make a delivery due now (manual retry) with a fresh ttl window of its original length.

        A delivery a worker is sending right now is left alone (0): its result is about to land.
        """
        return await self.execute(
            "UPDATE deliveries SET status = 'pending', next_at = ?, lease_until = NULL, leased_by = NULL,"
            " expires_at = CASE WHEN expires_at IS NULL THEN NULL ELSE ? + (expires_at - created_at) END,"
            " updated_at = ? WHERE domain = ? AND id = ? AND (lease_until IS NULL OR lease_until < ?)",
            now,
            now,
            now,
            domain,
            delivery_id,
            now,
        )

    @staticmethod
    def _recoverable(domain: str, match: Recoverable, after: tuple[float, str] | None) -> tuple[str, list[Any]]:
        """The WHERE clause (placeholders only) and arguments of a bulk recovery's rows, after the key `after`."""
        where: list[str] = ["domain = ?"]
        args: list[Any] = [domain]
        for column, value in (("hook_id", match.hook_id), ("call_id", match.call_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        where.append(f"status IN ({', '.join('?' for _ in match.statuses)})")
        args += match.statuses
        where.append(f"(leased_by IS NULL OR leased_by <> '{SHELVED}')")
        if match.since is not None:
            where.append("created_at >= ?")
            args.append(match.since)
        if match.until is not None:
            where.append("created_at < ?")
            args.append(match.until)
        if after is not None:
            # Keyset on (created_at, id): each chunk an index range of the hook's rows, however many came before.
            where.append("(created_at > ? OR (created_at = ? AND id > ?))")
            args += [after[0], after[0], after[1]]
        return " AND ".join(where), args

    async def find_recoverable(
        self, domain: str, match: Recoverable, after: tuple[float, str] | None, limit: int
    ) -> list[DeliveryRow]:
        """Up to `limit` of a domain's deliveries `match` takes (in flight or not), oldest first after `after`."""
        where, args = self._recoverable(domain, match, after)
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE {where} ORDER BY created_at, id LIMIT ?"  # noqa: S608
        return [_delivery(r) for r in await self.fetch(sql, *args, limit)]

    async def count_recoverable(self, domain: str, match: Recoverable, after: tuple[float, str] | None) -> int:
        where, args = self._recoverable(domain, match, after)
        row = await self.fetchrow(f"SELECT COUNT(*) AS n FROM deliveries WHERE {where}", *args)  # noqa: S608
        return int(row["n"]) if row is not None else 0

    async def recover(
        self, domain: str, delivery_ids: Sequence[str], statuses: Sequence[str], now: float
    ) -> tuple[int, int]:
        """Make those of `delivery_ids` still in one of `statuses` due now, as `requeue` does (same message id,
        a fresh ttl window of the original length); (how many, how many were left alone as in flight).

        A delivery leased to a worker right now is in flight: its result is about to land, and a second copy
        must not go out beside it. Shelved ones stay shelved (they go out as soon as their hook has room).
        """
        if not delivery_ids:
            return 0, 0
        ids = sorted(set(delivery_ids))  # one lock order everywhere (see extend_leases)
        marks = ", ".join("?" for _ in ids)
        states = ", ".join("?" for _ in statuses)
        row = await self.fetchrow(
            f"SELECT COUNT(*) AS n FROM deliveries WHERE domain = ? AND id IN ({marks})"  # noqa: S608
            " AND status = 'pending' AND lease_until >= ?",
            domain,
            *ids,
            now,
        )
        in_flight = int(row["n"]) if row is not None else 0
        queued = await self.execute(
            "UPDATE deliveries SET status = 'pending', next_at = ?, lease_until = NULL, leased_by = NULL,"  # noqa: S608
            " expires_at = CASE WHEN expires_at IS NULL THEN NULL ELSE ? + (expires_at - created_at) END,"
            f" updated_at = ? WHERE domain = ? AND id IN ({marks}) AND status IN ({states})"
            f" AND (lease_until IS NULL OR lease_until < ?) AND (leased_by IS NULL OR leased_by <> '{SHELVED}')",
            now,
            now,
            now,
            domain,
            *ids,
            *statuses,
            now,
        )
        return queued, in_flight

    async def extend_leases(self, worker_id: str, delivery_ids: Sequence[str], lease_until: float) -> None:
        """Keep holding deliveries still queued or in flight in this worker (or, with `lease_until` now, let go)."""
        await self.executemany(
            "UPDATE deliveries SET lease_until = ? WHERE id = ? AND leased_by = ? AND status = 'pending'",
            [(lease_until, delivery_id, worker_id) for delivery_id in sorted(delivery_ids)],  # lock order
        )

    async def release_leases(self, worker_id: str | None) -> int:
        if worker_id is None:
            return await self.execute(
                "UPDATE deliveries SET lease_until = NULL, leased_by = NULL"
                " WHERE status = 'pending' AND lease_until IS NOT NULL"  # leases, not shelved deliveries
            )
        sql = "UPDATE deliveries SET lease_until = NULL, leased_by = NULL WHERE status = 'pending' AND leased_by = ?"
        return await self.execute(sql, worker_id)

    async def purge_finished(self, before: float) -> int:
        """Drop finished deliveries older than `before`, their attempts, and events nothing refers to."""
        finished = "SELECT id FROM deliveries WHERE status <> 'pending' AND updated_at < ?"
        await self.execute(f"DELETE FROM attempts WHERE delivery_id IN ({finished})", before)  # noqa: S608
        count = await self.execute("DELETE FROM deliveries WHERE status <> 'pending' AND updated_at < ?", before)
        await self.execute(
            "DELETE FROM events WHERE received_at < ? AND NOT EXISTS"
            " (SELECT 1 FROM deliveries WHERE deliveries.event_id = events.id)",
            before,
        )
        return count

    async def count_pending(self) -> int:
        row = await self.fetchrow("SELECT count(*) AS n FROM deliveries WHERE status = 'pending'")
        return 0 if row is None else int(row["n"])

    async def ungate_calls(self, worker_id: str, delivery_ids: Sequence[str]) -> set[str]:
        """Of these fresh deliveries of ordered hooks, leased to `worker_id` at ingest, let go (due now) those whose
        (hook, call) has another pending delivery not leased to `worker_id`, unless the fresh one is its call's first
        (gate order, `_CALL_RANK`) and no other worker holds a delivery of its call: the claim's gate (CALL_GATE)
        then decides when each goes. A first one stays leased here and goes at once (an event that arrived after a
        later one of its call, waiting on a shelf, would otherwise wait, due, for a poll). Both extra tests are the
        gate's index probes (migration 0007), whatever the length of the call's line. The ids let go."""
        gone: set[str] = set()
        for start in range(0, len(delivery_ids), 500):
            chunk = delivery_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self.fetch(
                "UPDATE deliveries SET leased_by = NULL, lease_until = NULL"  # noqa: S608 - placeholders only
                f" WHERE id IN ({marks}) AND leased_by = ? AND call_seq = 0 AND EXISTS (SELECT 1 FROM deliveries AS o"
                " WHERE o.hook_id = deliveries.hook_id AND o.call_id = deliveries.call_id AND o.status = 'pending'"
                " AND o.call_seq IS NOT NULL AND o.id <> deliveries.id AND (o.leased_by IS NULL OR o.leased_by <> ?))"
                " AND (deliveries.id <> "
                + _FIRST_IN_LINE.format(hook="deliveries.hook_id", call="deliveries.call_id")
                + " OR EXISTS (SELECT 1 FROM deliveries AS o WHERE "
                + _LINE.format(hook="deliveries.hook_id", call="deliveries.call_id")
                + " AND o.id <> deliveries.id AND o.lease_until IS NOT NULL AND o.leased_by <> ?)) RETURNING id",
                *chunk,
                worker_id,
                worker_id,
                worker_id,
            )
            gone.update(r["id"] for r in rows)
        return gone

    async def number_calls(self, deliveries: Sequence[tuple[str, str, str]]) -> dict[str, int]:
        """The X-Call-Sequence of each (delivery id, hook id, call id) of an ordered hook (docs/calls.md): the one
        stored on the delivery, else the next of its (hook, call)'s counter, stored on it now. Numbers are taken in
        the order given; a delivery numbered before keeps its number (a retry, a restart, another worker).

        A few statements whatever the batch: one read, one multi-row upsert of the counters (each (hook, call)
        moved once by how many of its deliveries are numbered), one write of the numbers. A statement per
        delivery cost two trips to SQLite's thread each, and a numbered head waited for them all."""
        if not deliveries:
            return {}
        ordered = sorted({d[0] for d in deliveries})  # one lock order everywhere (see extend_leases)
        numbers: dict[str, int] = {}
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self.fetch(
                f"SELECT id, call_seq FROM deliveries WHERE id IN ({marks}) ORDER BY id {self.row_lock_clause}",  # noqa: S608
                *chunk,
            )
            numbers.update((r["id"], int(r["call_seq"])) for r in rows if r["call_seq"])  # 0: not numbered yet
        waiting: dict[tuple[str, str], list[str]] = {}  # per (hook, call), its unnumbered deliveries in order given
        for delivery_id, hook_id, call_id in deliveries:
            line = waiting.setdefault((hook_id, call_id), [])
            if delivery_id not in numbers and delivery_id not in line:
                line.append(delivery_id)
        counters = sorted(key for key, line in waiting.items() if line)  # one lock order on call_sequences too
        taken: list[tuple[int, str]] = []
        for start in range(0, len(counters), ROWS_PER_STATEMENT):
            chunk_keys = counters[start : start + ROWS_PER_STATEMENT]
            values = ", ".join("(?, ?, ?)" for _ in chunk_keys)
            rows = await self.fetch(
                f"INSERT INTO call_sequences (hook_id, call_id, last_seq) VALUES {values}"  # noqa: S608
                " ON CONFLICT (hook_id, call_id) DO UPDATE SET last_seq = call_sequences.last_seq + excluded.last_seq"
                " RETURNING hook_id, call_id, last_seq",
                *(v for key in chunk_keys for v in (*key, len(waiting[key]))),
            )
            for row in rows:
                line = waiting[row["hook_id"], row["call_id"]]
                first = int(row["last_seq"]) - len(line) + 1
                for n, delivery_id in enumerate(line, first):
                    numbers[delivery_id] = n
                    taken.append((n, delivery_id))
        await self.store_call_numbers(sorted(taken, key=lambda t: t[1]))  # lock order
        return numbers

    async def store_call_numbers(self, numbers: Sequence[tuple[int, str]]) -> None:
        """Write each (number, delivery id) to `deliveries.call_seq`."""
        await self.executemany("UPDATE deliveries SET call_seq = ? WHERE id = ?", numbers)

    async def hook_stats(self, domain: str, hook_ids: Sequence[str], since: float, cap: int) -> list[HookStats]:
        """Each of the domain's `hook_ids`' recent deliveries (see HookStats), in the order given; a hook of another
        domain, or without deliveries, counts none. Three index lookups per hook, at most `cap` rows counted: the
        cost of a request is bounded by the number of hooks asked for, never by the traffic of the window."""
        stats: list[HookStats] = []
        for hook_id in hook_ids:
            counts = {
                r["status"]: int(r["n"])
                for r in await self.fetch(
                    "SELECT status, COUNT(*) AS n FROM (SELECT status FROM deliveries WHERE domain = ? AND hook_id = ?"
                    " AND created_at >= ? ORDER BY created_at DESC LIMIT ?) recent GROUP BY status",
                    domain,
                    hook_id,
                    since,
                    cap,
                )
            }
            last = await self.fetchrow(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE domain = ? AND hook_id = ?"  # noqa: S608
                " ORDER BY created_at DESC, id LIMIT 1",
                domain,
                hook_id,
            )
            shelved = await self.fetchrow(
                f"SELECT 1 AS one FROM deliveries WHERE hook_id = ? AND leased_by = '{SHELVED}'"  # noqa: S608
                " AND status = 'pending' AND domain = ? LIMIT 1",
                hook_id,
                domain,
            )
            stats.append(
                HookStats(
                    hook_id,
                    delivered=counts.get("delivered", 0),
                    failed=counts.get("failed", 0) + counts.get("expired", 0),
                    pending=counts.get("pending", 0),
                    sampled=sum(counts.values()),
                    last=None if last is None else _delivery(last),
                    shelved=shelved is not None,
                )
            )
        return stats
