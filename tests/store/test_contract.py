"""The store contract: one suite, run unchanged on SQLite and on the real PostgreSQL (STYLE §6)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from switchhook.core.errors import Unavailable
from switchhook.store.base import (
    SHELVED,
    AccountRow,
    AttemptRow,
    EventRow,
    Fair,
    Finish,
    HookRow,
    NewDelivery,
    Recoverable,
    SessionRow,
    Store,
    TokenRow,
    Tx,
)
from switchhook.store.postgres import PostgresStore
from switchhook.store.sql import EVENT_CHUNK, FAIR_WINDOW, ROWS_PER_STATEMENT
from switchhook.store.sqlite import SqliteStore
from tests.support.postgres import drop_schema, new_schema, require_postgres

NOW = 1_700_000_000.123456  # epoch seconds with microseconds, as the services write them
A, B = "a.example.com", "b.example.com"


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated store of each backend; PostgreSQL gets a fresh schema, dropped afterwards."""
    if request.param == "sqlite":
        sqlite = SqliteStore(tmp_path / "x.db")
        try:
            await sqlite.migrate()
            yield sqlite
        finally:
            await sqlite.close()
        return
    dsn = await require_postgres()
    schema = new_schema()
    postgres = PostgresStore(dsn, schema, min_size=1, max_size=6)
    try:
        await postgres.migrate()
        yield postgres
    finally:
        await postgres.close()
        await drop_schema(dsn, schema)


@pytest.fixture
async def pg_store(tmp_path: Path) -> AsyncIterator[tuple[PostgresStore, str, str]]:
    """PostgreSQL only: the store plus its dsn and schema (for a second instance on the same data)."""
    dsn = await require_postgres()
    schema = new_schema()
    postgres = PostgresStore(dsn, schema, min_size=1, max_size=8)
    try:
        await postgres.migrate()
        yield postgres, dsn, schema
    finally:
        await postgres.close()
        await drop_schema(dsn, schema)


def hook_id() -> str:
    return uuid.uuid4().hex[:24]


def hook_doc(event: str = "CHANNEL_CREATE", **extra: Any) -> dict[str, Any]:
    doc = {
        "event": event,
        "enable": True,
        "action": {"type": "web", "method": "POST", "url": "https://x.test/h"},
    }
    return {**doc, **extra}


def event_row(event_id: str | None = None, domain: str = A, received_at: float = NOW, **payload: str) -> EventRow:
    body = {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": domain, **payload}
    return EventRow(event_id or str(uuid.uuid4()), domain, "CHANNEL_CREATE", "http", json.dumps(body), received_at)


def delivery(
    event_id: str,
    hook: str,
    domain: str = A,
    next_at: float = NOW,
    leased_by: str | None = None,
    lease_until: float | None = None,
    expires_at: float | None = None,
) -> NewDelivery:
    return NewDelivery("msg_" + uuid.uuid4().hex, event_id, hook, domain, next_at, expires_at, leased_by, lease_until)


def attempt(delivery_id: str, n: int, status_code: int | None = 200, error: str | None = None) -> AttemptRow:
    return AttemptRow(delivery_id, n, NOW + n, 12.5, status_code, error, "ok" if status_code == 200 else None)


def done(delivery_id: str, status: str, attempts: int, code: int | None = 200, next_at: float = NOW) -> Finish:
    error = None if code == 200 else "boom"
    return Finish(delivery_id, status, attempts, next_at, code, error, attempt(delivery_id, attempts, code, error))


async def seed(tx: Tx, count: int, domain: str = A, hook: str | None = None, **kwargs: Any) -> list[NewDelivery]:
    """`count` events, one delivery each, for one hook."""
    hook = hook or hook_id()
    events = [event_row(domain=domain, n=str(i)) for i in range(count)]
    rows = [delivery(e.id, hook, domain, **kwargs) for e in events]
    await tx.insert_events(events)
    await tx.insert_deliveries(rows, NOW)
    return rows


async def claim(store: Store, worker: str, now: float, lease_s: float = 30, limit: int = 100) -> list[str]:
    async with store.transaction() as tx:
        return [c.delivery.id for c in await tx.claim_due(worker, now, now + lease_s, limit)]


async def status_of(store: Store, delivery_id: str, domain: str = A) -> tuple[str, int] | None:
    async with store.transaction() as tx:
        row = await tx.get_delivery(domain, delivery_id)
    return None if row is None else (row.status, row.attempts)


# -- transactions and migrations ------------------------------------------------------------------
async def test_migrate_twice_is_a_no_op(store: Store) -> None:
    assert await store.migrate() == []
    assert await store.migrate() == []
    async with store.transaction() as tx:
        assert await tx.count_pending() == 0
    assert await store.ping() is True


async def test_an_error_inside_a_transaction_rolls_everything_back(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.add_domain(A, NOW)
            await tx.set_setting("x", "1")
            raise RuntimeError("abort")

    async with store.transaction() as tx:
        assert await tx.domain_exists(A) is False
        assert await tx.get_setting("x") is None


# -- settings -------------------------------------------------------------------------------------
async def test_settings_put_if_absent_keeps_the_first_and_set_overwrites(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.get_setting("token_secret") is None
        assert await tx.put_setting_if_absent("token_secret", "first") == "first"
        assert await tx.put_setting_if_absent("token_secret", "second") == "first"
    async with store.transaction() as tx:
        assert await tx.get_setting("token_secret") == "first"
        await tx.set_setting("token_secret", "third")
        await tx.set_setting("other", "x")
    async with store.transaction() as tx:
        assert await tx.get_setting("token_secret") == "third"
        assert await tx.get_setting("other") == "x"


# -- domains and accounts -------------------------------------------------------------------------
async def test_domains_add_list_exists_delete(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.add_domain(B, NOW) is True
        assert await tx.add_domain(A, NOW) is True
        assert await tx.add_domain(A, NOW + 1) is False
        assert await tx.list_domains() == [A, B]
        assert await tx.domain_exists(A) is True
        assert await tx.domain_exists("c.example.com") is False
        assert await tx.delete_domain(A) == 1
        assert await tx.delete_domain(A) == 0
        assert await tx.list_domains() == [B]


async def test_deleting_a_domain_removes_its_accounts_tokens_hooks_and_sessions_only(store: Store) -> None:
    hooks = {A: hook_id(), B: hook_id()}
    async with store.transaction() as tx:
        for domain in (A, B):
            await tx.add_domain(domain, NOW)
            await tx.add_account(AccountRow(domain, "alice", "hash", "admin"), NOW)
            await tx.add_token(TokenRow(f"tok-{domain}", domain, "admin", 2_000_000_000_000, True, "root", NOW))
            await tx.insert_hook(HookRow(hooks[domain], domain, hook_doc()), NOW)
            await tx.add_session(SessionRow(f"key-{domain}", "th", "alice", domain, "admin", NOW + 100), NOW)
    async with store.transaction() as tx:
        assert await tx.delete_domain(A) == 1
    async with store.transaction() as tx:
        assert await tx.get_account(A, "alice") is None
        assert await tx.get_token(A, f"tok-{A}") is None
        assert await tx.get_hook(A, hooks[A]) is None
        assert await tx.get_session(f"key-{A}") is None
        assert await tx.get_account(B, "alice") is not None
        assert await tx.get_token(B, f"tok-{B}") is not None
        assert await tx.get_hook(B, hooks[B]) is not None
        assert await tx.get_session(f"key-{B}") is not None


async def test_accounts_are_per_domain(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.add_account(AccountRow(A, "bob", "h1", "user"), NOW) is True
        assert await tx.add_account(AccountRow(A, "alice", "h2", "admin"), NOW) is True
        assert await tx.add_account(AccountRow(A, "alice", "other", "user"), NOW) is False
        assert await tx.add_account(AccountRow(B, "alice", "h3", "user"), NOW) is True
    async with store.transaction() as tx:
        assert await tx.get_account(A, "alice") == AccountRow(A, "alice", "h2", "admin")
        assert await tx.get_account(B, "alice") == AccountRow(B, "alice", "h3", "user")
        assert await tx.get_account(B, "bob") is None
        assert [r.username for r in await tx.list_accounts(A)] == ["alice", "bob"]
        assert await tx.list_accounts(B) == [AccountRow(B, "alice", "h3", "user")]
        assert await tx.list_accounts("c.example.com") == []


async def test_deleting_an_account_ends_its_sessions(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.add_account(AccountRow(A, "alice", "h", "admin"), NOW)
        await tx.add_account(AccountRow(B, "alice", "h", "admin"), NOW)
        await tx.add_session(SessionRow("ka", "t", "alice", A, "admin", NOW + 100), NOW)
        await tx.add_session(SessionRow("kb", "t", "alice", B, "admin", NOW + 100), NOW)
    async with store.transaction() as tx:
        assert await tx.delete_account(B, "nobody") == 0
        assert await tx.delete_account(A, "alice") == 1
        assert await tx.delete_account(A, "alice") == 0
    async with store.transaction() as tx:
        assert await tx.get_session("ka") is None
        assert await tx.get_session("kb") is not None
        assert await tx.get_account(B, "alice") is not None


# -- sessions and tokens --------------------------------------------------------------------------
async def test_sessions_add_get_and_delete_sweeps_expired(store: Store) -> None:
    root = SessionRow("k-root", "digest", "root", None, "root", NOW + 3600.5)
    async with store.transaction() as tx:
        await tx.add_session(root, NOW)
        await tx.add_session(SessionRow("k-live", "d2", "alice", A, "admin", NOW + 10), NOW)
        await tx.add_session(SessionRow("k-old1", "d3", "bob", A, "user", NOW - 10), NOW - 100)
        await tx.add_session(SessionRow("k-old2", "d4", "bob", B, "user", NOW - 1), NOW - 100)
    async with store.transaction() as tx:
        assert await tx.get_session("k-root") == root
        assert await tx.get_session("missing") is None
        assert await tx.delete_session("k-root", NOW) == 3  # itself and the two expired ones
    async with store.transaction() as tx:
        assert await tx.get_session("k-root") is None
        assert await tx.get_session("k-old1") is None
        assert await tx.get_session("k-old2") is None
        assert await tx.get_session("k-live") == SessionRow("k-live", "d2", "alice", A, "admin", NOW + 10)


async def test_a_session_keeps_its_credential_and_an_accounts_sessions_end_together(store: Store) -> None:
    mine = SessionRow("k1", "t", "alice", A, "admin", NOW + 10, "cred-1")
    async with store.transaction() as tx:
        await tx.add_session(mine, NOW)
        await tx.add_session(SessionRow("k2", "t", "alice", A, "admin", NOW + 10, "cred-1"), NOW)
        await tx.add_session(SessionRow("k3", "t", "bob", A, "user", NOW + 10), NOW)
        await tx.add_session(SessionRow("k4", "t", "alice", B, "admin", NOW + 10), NOW)
        await tx.add_session(SessionRow("k5", "t", "root", None, "root", NOW + 10), NOW)
    async with store.transaction() as tx:
        assert await tx.get_session("k1") == mine
        assert await tx.delete_sessions(A, "alice") == 2
        assert await tx.delete_sessions(A, "alice") == 0
        assert await tx.get_session("k3") is not None and await tx.get_session("k4") is not None
        assert await tx.delete_sessions(None, "root") == 1
        assert await tx.delete_sessions(A, None) == 1  # bob's: the rest of the domain
        assert [await tx.get_session(k) for k in ("k3", "k5")] == [None, None]
        assert await tx.get_session("k4") is not None


async def test_an_account_is_updated_in_place(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.add_account(AccountRow(A, "alice", "h1", "user"), NOW)
        await tx.add_account(AccountRow(B, "alice", "h1", "user"), NOW)
    async with store.transaction() as tx:
        assert await tx.update_account(A, "alice", "h2", None) == 1
        assert await tx.get_account(A, "alice") == AccountRow(A, "alice", "h2", "user")
        assert await tx.update_account(A, "alice", None, "admin") == 1
        assert await tx.get_account(A, "alice") == AccountRow(A, "alice", "h2", "admin")
        assert await tx.update_account(A, "nobody", "h3", None) == 0
        assert await tx.get_account(B, "alice") == AccountRow(B, "alice", "h1", "user")


async def test_tokens_add_get_list_enable_disable_delete(store: Store) -> None:
    far_ms = 4_102_444_800_000  # year 2100, in ms: needs 64 bits
    first = TokenRow("t1", A, "admin", far_ms, True, "root", NOW)
    second = TokenRow("t2", A, "user", far_ms + 1, True, "alice@" + A, NOW + 1)
    other = TokenRow("t3", B, "admin", far_ms, True, "root", NOW)
    async with store.transaction() as tx:
        for row in (second, first, other):
            await tx.add_token(row)
    async with store.transaction() as tx:
        assert await tx.get_token(A, "t1") == first
        assert await tx.get_token(B, "t1") is None  # the domain is part of the key
        assert await tx.list_tokens(A) == [first, second]  # by creation time
        assert await tx.list_tokens(B) == [other]
        assert await tx.set_token_enabled(A, "t1", False) == 1
        assert await tx.set_token_enabled(B, "t2", False) == 0
        assert await tx.set_token_enabled(A, "missing", False) == 0
    async with store.transaction() as tx:
        row = await tx.get_token(A, "t1")
        assert row is not None and row.enabled is False
        assert await tx.set_token_enabled(A, "t1", True) == 1
        row = await tx.get_token(A, "t1")
        assert row is not None and row.enabled is True
        assert await tx.delete_token(B, "t1") == 0
        assert await tx.delete_token(A, "t1") == 1
        assert await tx.delete_token(A, "t1") == 0
        assert await tx.get_token(A, "t1") is None
        assert await tx.list_tokens(A) == [second]


# -- hooks ----------------------------------------------------------------------------------------
async def test_hook_round_trips_its_document(store: Store) -> None:
    doc = hook_doc(
        "CUSTOM->engine::dialer_member_end",
        description="ünïcode ✓",
        filter={"x": {"operation": "==", "value": 1}},
        headers={"X-A": "${Unique-ID}"},
        fields=["a", "b"],
        retries=3,
        delay=1.5,
        secret="whsec_abc",
    )
    row = HookRow(hook_id(), A, doc)
    async with store.transaction() as tx:
        await tx.insert_hook(row, NOW)
    async with store.transaction() as tx:
        assert await tx.get_hook(A, row.id) == row
        assert await tx.get_hook(B, row.id) is None
        assert await tx.get_hook(A, hook_id()) is None


async def test_list_hooks_pages_in_insertion_order_within_the_domain(store: Store) -> None:
    ids = [hook_id() for _ in range(7)]
    async with store.transaction() as tx:
        for n, hid in enumerate(ids):
            await tx.insert_hook(HookRow(hid, A, hook_doc(description=str(n))), NOW + n)
            await tx.insert_hook(HookRow(hook_id(), B, hook_doc()), NOW + n)
    async with store.transaction() as tx:
        assert [r.id for r in await tx.list_hooks(A, 100, 0)] == ids
        assert [r.id for r in await tx.list_hooks(A, 3, 0)] == ids[:3]
        assert [r.id for r in await tx.list_hooks(A, 3, 3)] == ids[3:6]
        assert [r.id for r in await tx.list_hooks(A, 3, 6)] == ids[6:]
        assert await tx.list_hooks(A, 3, 9) == []
        assert await tx.list_hooks("c.example.com", 10, 0) == []
        assert all(r.domain == A for r in await tx.list_hooks(A, 100, 0))


async def test_replace_delete_disable_only_touch_the_given_domain(store: Store) -> None:
    row = HookRow(hook_id(), A, hook_doc(description="original"))
    async with store.transaction() as tx:
        await tx.insert_hook(row, NOW)
        assert await tx.replace_hook(HookRow(row.id, B, hook_doc("X", description="hijack")), NOW) == 0
        assert await tx.delete_hook(B, row.id) == 0
        assert await tx.disable_hook(B, row.id, "nope", NOW) == 0
        assert await tx.get_hook(B, row.id) is None
    async with store.transaction() as tx:
        assert await tx.get_hook(A, row.id) == row


async def test_replace_is_a_full_replacement_and_clears_the_disabled_reason(store: Store) -> None:
    row = HookRow(hook_id(), A, hook_doc(description="original", retries=5))
    async with store.transaction() as tx:
        await tx.insert_hook(row, NOW)
        assert await tx.disable_hook(A, row.id, "410 Gone from https://x.test/h", NOW + 1) == 1
    async with store.transaction() as tx:
        disabled = await tx.get_hook(A, row.id)
        assert disabled is not None
        assert disabled.doc == {**row.doc, "enable": False}
        assert disabled.disabled_reason == "410 Gone from https://x.test/h"
        replacement = hook_doc("CHANNEL_HANGUP")
        assert await tx.replace_hook(HookRow(row.id, A, replacement), NOW + 2) == 1
    async with store.transaction() as tx:
        assert await tx.get_hook(A, row.id) == HookRow(row.id, A, replacement, None)
        assert await tx.disable_hook(A, hook_id(), "missing", NOW) == 0


async def test_delete_hook_and_all_hooks(store: Store) -> None:
    rows = [HookRow(hook_id(), domain, hook_doc()) for domain in (A, B, A)]
    async with store.transaction() as tx:
        for row in rows:
            await tx.insert_hook(row, NOW)
        await tx.notify_hook_changed(A, rows[0].id)  # harmless on every backend
    async with store.transaction() as tx:
        assert await tx.all_hooks() == rows
        assert await tx.delete_hook(A, rows[0].id) == 1
        assert await tx.delete_hook(A, rows[0].id) == 0
    async with store.transaction() as tx:
        assert await tx.all_hooks() == rows[1:]


# -- events and deliveries ------------------------------------------------------------------------
async def test_claim_returns_due_deliveries_with_their_payloads(store: Store) -> None:
    hook = hook_id()
    due_event = event_row(domain=A, marker="due")
    later_event = event_row(domain=A, marker="later")
    due = [delivery(due_event.id, hook, next_at=NOW - 5), delivery(due_event.id, hook_id(), next_at=NOW)]
    later = delivery(later_event.id, hook, next_at=NOW + 60)
    async with store.transaction() as tx:
        await tx.insert_events([due_event, later_event])
        await tx.insert_deliveries([*due, later], NOW - 10)
        assert await tx.get_event(due_event.id) == due_event
        assert await tx.get_event("missing") is None
    async with store.transaction() as tx:
        claimed = await tx.claim_due("w1", NOW, NOW + 1000, 10)
    assert sorted(c.delivery.id for c in claimed) == sorted(d.id for d in due)
    for item in claimed:
        assert json.loads(item.payload)["marker"] == "due"
        assert item.delivery.status == "pending"
        assert item.delivery.attempts == 0
        assert item.delivery.event_id == due_event.id
        assert item.delivery.domain == A
    # The later one becomes due in time.
    assert await claim(store, "w1", NOW + 59) == []
    assert await claim(store, "w1", NOW + 60) == [later.id]


async def test_claim_honours_the_limit_oldest_due_first(store: Store) -> None:
    async with store.transaction() as tx:
        rows = []
        for n in range(5):
            rows += await seed(tx, 1, next_at=NOW - n)
    first = await claim(store, "w1", NOW, limit=2)
    assert first == [rows[4].id, rows[3].id]
    assert sorted(await claim(store, "w2", NOW, limit=10)) == sorted(r.id for r in rows[:3])


async def fair_claim(store: Store, fair: Fair, limit: int = 20) -> list[tuple[str, str, str]]:
    """(domain, hook, delivery id) of what a fair claim of `limit` leases."""
    async with store.transaction() as tx:
        claimed = await tx.claim_due("w1", NOW, NOW + 30, limit, (), fair)
    return [(c.delivery.domain, c.delivery.hook_id, c.delivery.id) for c in claimed]


async def test_a_fair_claim_bounds_each_hooks_and_each_domains_share(store: Store) -> None:
    """Issue 13, item 4: one tenant's due deliveries, older than everyone else's, filled every claim."""
    a1, a2, b1 = hook_id(), hook_id(), hook_id()
    async with store.transaction() as tx:
        for n in range(30):  # A's, all older than B's, interleaved between its two hooks
            await seed(tx, 1, A, hook=a1 if n % 3 else a2, next_at=NOW - 100 + n)
        b_rows = await seed(tx, 3, B, hook=b1, next_at=NOW - 1)
    claimed = await fair_claim(store, Fair(per_hook=5, per_domain=8))
    of_a = [c for c in claimed if c[0] == A]
    assert sorted(c[2] for c in claimed if c[0] == B) == sorted(r.id for r in b_rows)  # B's, behind 30 of A's
    assert len(of_a) == 8 and sum(c[1] == a1 for c in of_a) == 5 and sum(c[1] == a2 for c in of_a) == 3
    # The oldest first within each share; the rest stays due for the next claim.
    assert len(await fair_claim(store, Fair(per_hook=5, per_domain=8))) == 8
    assert len(await claim(store, "w2", NOW, limit=100)) == 30 - 16


async def test_a_fair_claim_leaves_out_the_domains_it_is_told_to(store: Store) -> None:
    async with store.transaction() as tx:
        await seed(tx, 5, A, next_at=NOW - 10)
        b_rows = await seed(tx, 2, B, next_at=NOW - 1)
    claimed = await fair_claim(store, Fair(per_hook=100, per_domain=100, skip_domains=[A]))
    assert sorted(c[2] for c in claimed) == sorted(r.id for r in b_rows)


async def test_a_fair_claim_reads_a_bounded_window_of_the_oldest_due(store: Store) -> None:
    """The claim's cost is bounded however many are due: it looks at FAIR_WINDOW x its limit of the oldest."""
    limit = 2
    async with store.transaction() as tx:
        await seed(tx, limit * FAIR_WINDOW, A, next_at=NOW - 10)
        (late,) = await seed(tx, 1, B, next_at=NOW - 1)
    claimed = await fair_claim(store, Fair(per_hook=1, per_domain=1), limit)
    assert [c[0] for c in claimed] == [A]  # B's is past the window: not this claim's
    async with store.transaction() as tx:
        await seed(tx, 1, B, next_at=NOW - 20)
    assert sorted(c[0] for c in await fair_claim(store, Fair(per_hook=1, per_domain=1), limit)) == [A, B]
    assert late.id not in [c[2] for c in await fair_claim(store, Fair(per_hook=1, per_domain=1), 1)]


async def test_a_leased_delivery_is_not_claimed_again_until_the_lease_expires(store: Store) -> None:
    async with store.transaction() as tx:
        (row,) = await seed(tx, 1)
    assert await claim(store, "w1", NOW, lease_s=30) == [row.id]
    assert await claim(store, "w2", NOW + 10) == []
    assert await claim(store, "w2", NOW + 29.9) == []
    assert await claim(store, "w2", NOW + 30.5) == [row.id]
    assert await claim(store, "w1", NOW + 31) == []


async def test_a_fast_path_delivery_is_leased_from_birth(store: Store) -> None:
    async with store.transaction() as tx:
        (row,) = await seed(tx, 1, leased_by="fast", lease_until=NOW + 30)
    assert await claim(store, "poller", NOW) == []
    assert await claim(store, "poller", NOW + 31) == [row.id]


async def shelved(store: Store, worker: str, hook: str, limit: int = 100, lease_s: float = 30) -> list[str]:
    async with store.transaction() as tx:
        return [c.delivery.id for c in await tx.claim_shelved(worker, hook, NOW, NOW + lease_s, limit)]


async def test_shelved_deliveries_are_not_due_but_taken_by_hook_oldest_first(store: Store) -> None:
    hook, other = hook_id(), hook_id()
    async with store.transaction() as tx:
        rows = []
        for n in range(3):
            rows += await seed(tx, 1, hook=hook, next_at=NOW + 600 + n, leased_by=SHELVED)
        (due,) = await seed(tx, 1, hook=other)
        (others_shelf,) = await seed(tx, 1, hook=other, next_at=NOW + 600, leased_by=SHELVED)
        assert sorted(await tx.shelved_hooks()) == sorted([hook, other])
    assert await claim(store, "w1", NOW + 599) == [due.id]  # claims never see a shelf before its horizon
    async with store.transaction() as tx:
        taken = await tx.claim_shelved("w1", hook, NOW, NOW + 1000, 2)
    assert sorted(c.delivery.id for c in taken) == sorted([rows[0].id, rows[1].id])  # the first shelved
    assert all(json.loads(c.payload)["Event-Name"] == "CHANNEL_CREATE" for c in taken)
    assert await shelved(store, "w2", hook, lease_s=1000) == [rows[2].id]  # leased now: not taken twice
    assert await shelved(store, "w2", hook) == []
    async with store.transaction() as tx:
        assert await tx.shelved_hooks() == [other]
    assert await claim(store, "w3", NOW + 601) == [others_shelf.id]  # its worker gone: due at the horizon


async def test_shelves_of_several_hooks_are_taken_in_one_trip_each_within_its_limit(store: Store) -> None:
    hook, other, untouched = hook_id(), hook_id(), hook_id()
    async with store.transaction() as tx:
        mine = [await seed(tx, 1, hook=hook, next_at=NOW + 600 + n, leased_by=SHELVED) for n in range(3)]
        theirs = [await seed(tx, 1, hook=other, next_at=NOW + 600 + n, leased_by=SHELVED) for n in range(2)]
        (left,) = await seed(tx, 1, hook=untouched, next_at=NOW + 600, leased_by=SHELVED)
    async with store.transaction() as tx:
        taken = await tx.claim_shelves("w1", [(hook, 2), (other, 5)], NOW, NOW + 1000)
    got = sorted(c.delivery.id for c in taken)
    assert got == sorted([mine[0][0].id, mine[1][0].id, theirs[0][0].id, theirs[1][0].id])  # oldest, within limits
    assert all(json.loads(c.payload)["Event-Name"] == "CHANNEL_CREATE" for c in taken)
    assert await shelved(store, "w2", hook) == [mine[2][0].id]
    assert await shelved(store, "w2", untouched) == [left.id]


async def test_a_delivery_taken_off_the_shelf_and_let_go_is_due_again_at_once(store: Store) -> None:
    hook = hook_id()
    async with store.transaction() as tx:
        (row,) = await seed(tx, 1, hook=hook, next_at=NOW + 600, leased_by=SHELVED)
    assert await shelved(store, "w1", hook, lease_s=30) == [row.id]
    assert await claim(store, "w2", NOW + 31) == [row.id]  # w1 died: its lease lapsed, not the shelf's horizon
    async with store.transaction() as tx:
        assert await tx.release_leases("w2") == 1  # a clean stop
    assert await claim(store, "w3", NOW + 32) == [row.id]


async def test_shelve_hands_this_workers_deliveries_back_out_of_the_due_range(store: Store) -> None:
    hook = hook_id()
    async with store.transaction() as tx:
        rows = await seed(tx, 3, hook=hook, leased_by="w1", lease_until=NOW + 30)
        theirs = await seed(tx, 1, hook=hook, leased_by="w2", lease_until=NOW + 30)
    async with store.transaction() as tx:
        await tx.shelve("w1", [r.id for r in rows] + [theirs[0].id], NOW + 600)
    assert await claim(store, "w3", NOW + 20) == []  # w1's lease ended, but shelved; w2's still leased
    assert sorted(await shelved(store, "w3", hook)) == sorted(r.id for r in rows)


async def test_reshelve_pushes_out_only_what_falls_due_soon(store: Store) -> None:
    hook, other = hook_id(), hook_id()
    async with store.transaction() as tx:
        soon = await seed(tx, 2, hook=hook, next_at=NOW + 100, leased_by=SHELVED)
        (late,) = await seed(tx, 1, hook=hook, next_at=NOW + 900, leased_by=SHELVED)
        (others,) = await seed(tx, 1, hook=other, next_at=NOW + 100, leased_by=SHELVED)
        assert await tx.reshelve(hook, NOW + 300, NOW + 1200) == 2
        moved = [await tx.get_delivery(A, r.id) for r in soon]
        kept = await tx.get_delivery(A, late.id)
        untouched = await tx.get_delivery(A, others.id)
    assert [m.next_at for m in moved if m is not None] == [NOW + 1200, NOW + 1200]
    assert kept is not None and kept.next_at == NOW + 900
    assert untouched is not None and untouched.next_at == NOW + 100


async def test_a_shelved_delivery_can_be_requeued_and_outlives_a_release_of_all_leases(store: Store) -> None:
    hook = hook_id()
    async with store.transaction() as tx:
        first, second = await seed(tx, 2, hook=hook, next_at=NOW + 600, leased_by=SHELVED)
        assert await tx.release_leases(None) == 0  # no lease to release: the shelf stays
        assert await tx.requeue(A, first.id, NOW + 5) == 1
    assert await claim(store, "w1", NOW + 5) == [first.id]
    assert await shelved(store, "w1", hook) == [second.id]


async def test_finish_records_attempts_and_moves_status(store: Store) -> None:
    async with store.transaction() as tx:
        ok_row, retry_row, dead_row = await seed(tx, 3)
    assert len(await claim(store, "w1", NOW)) == 3
    async with store.transaction() as tx:
        await tx.finish(
            [
                done(ok_row.id, "delivered", 1),
                done(retry_row.id, "pending", 1, code=500, next_at=NOW + 100),
                Finish(dead_row.id, "failed", 0, NOW, None, "hook deleted", None),
            ],
            "w1",
            NOW + 1,
        )
    async with store.transaction() as tx:
        delivered = await tx.get_delivery(A, ok_row.id)
        assert delivered is not None
        assert (delivered.status, delivered.attempts, delivered.last_status, delivered.last_error) == (
            "delivered",
            1,
            200,
            None,
        )
        assert delivered.updated_at == NOW + 1
        assert delivered.created_at == NOW
        assert await tx.list_attempts(ok_row.id) == [attempt(ok_row.id, 1)]
        retrying = await tx.get_delivery(A, retry_row.id)
        assert retrying is not None
        assert (retrying.status, retrying.attempts, retrying.next_at, retrying.last_status) == (
            "pending",
            1,
            NOW + 100,
            500,
        )
        assert retrying.last_error == "boom"
        assert await tx.list_attempts(retry_row.id) == [attempt(retry_row.id, 1, 500, "boom")]
        failed = await tx.get_delivery(A, dead_row.id)
        assert failed is not None
        assert (failed.status, failed.last_error) == ("failed", "hook deleted")
        assert await tx.list_attempts(dead_row.id) == []
        assert await tx.get_delivery(B, ok_row.id) is None  # deliveries are domain-scoped
    # A finished delivery is never claimed again; a retry is, when due, with its lease cleared.
    assert await claim(store, "w2", NOW + 99) == []
    assert await claim(store, "w2", NOW + 100) == [retry_row.id]
    async with store.transaction() as tx:
        await tx.finish([done(retry_row.id, "delivered", 2)], "w2", NOW + 101)
        assert [a.n for a in await tx.list_attempts(retry_row.id)] == [1, 2]
        assert await tx.count_pending() == 0


async def test_insert_events_returns_only_the_ids_it_stored(store: Store) -> None:
    stored_before = [event_row(n=str(i)) for i in range(3)]
    async with store.transaction() as tx:
        assert await tx.insert_events(stored_before) == {e.id for e in stored_before}
    fresh = [event_row(n=f"fresh{i}") for i in range(EVENT_CHUNK + 50)]  # more than one statement's worth
    again = event_row(stored_before[1].id, n="changed")  # the same id with another payload: not stored again
    async with store.transaction() as tx:
        assert await tx.insert_events([*fresh[:100], again, *fresh[100:]]) == {e.id for e in fresh}
        kept = await tx.get_event(again.id)
        assert kept is not None and kept.payload == stored_before[1].payload
        assert await tx.insert_events([]) == set()


async def test_store_events_adds_deliveries_only_for_events_not_stored_before(store: Store) -> None:
    hook = hook_id()
    old = event_row(n="old")
    async with store.transaction() as tx:
        await tx.insert_events([old])
    fresh = [event_row(n=f"new{i}") for i in range(EVENT_CHUNK + 5)]  # more than one statement's worth
    early = [delivery(e.id, hook) for e in (old, *fresh[:3])]
    late = [delivery(e.id, hook, leased_by="fast", lease_until=NOW + 30) for e in fresh[3:]]
    async with store.transaction() as tx:
        stored = await tx.store_events([old, *fresh], [(early, NOW), (late, NOW + 1)])
    assert stored.value == {e.id for e in fresh}
    async with store.transaction() as tx:
        assert await tx.get_delivery(A, early[0].id) is None  # the old event's: it was stored before
        first = await tx.get_delivery(A, early[1].id)
        last = await tx.get_delivery(A, late[-1].id)
        assert await tx.count_pending() == len(fresh)
    assert first is not None and (first.created_at, first.status) == (NOW, "pending")
    assert last is not None and last.created_at == NOW + 1
    assert sorted(await claim(store, "poller", NOW + 2)) == sorted(d.id for d in early[1:])  # fast path: leased

    async with store.transaction() as tx:
        again = await tx.store_events(fresh[:2], [([delivery(fresh[0].id, hook_id())], NOW)])
    assert again.value == set()  # nothing new: no delivery either, whatever the hook
    async with store.transaction() as tx:
        assert await tx.count_pending() == len(fresh)


async def test_finish_applies_every_row_of_a_large_batch_and_only_this_workers(store: Store) -> None:
    """Several hundred results at once (the worker records in batches): statements are chunked on some
    backends, so rows on both sides of every chunk boundary must land, and a row leased elsewhere must not."""
    async with store.transaction() as tx:
        rows = await seed(tx, 2 * ROWS_PER_STATEMENT + 50)
    assert len(await claim(store, "w1", NOW, limit=len(rows))) == len(rows)
    async with store.transaction() as tx:
        await tx.release_leases("w1")
    stolen = rows[ROWS_PER_STATEMENT]  # another worker holds this one now
    assert len(await claim(store, "w1", NOW, limit=len(rows))) == len(rows)
    async with store.transaction() as tx:
        await tx.execute("UPDATE deliveries SET leased_by = 'w2' WHERE id = ?", stolen.id)
    results = []
    for i, row in enumerate(rows):
        if i % 3 == 0:
            results.append(done(row.id, "delivered", 1))
        elif i % 3 == 1:
            results.append(done(row.id, "pending", 1, code=503, next_at=NOW + 60))
        else:
            results.append(Finish(row.id, "failed", 0, NOW, None, "hook deleted", None))
    async with store.transaction() as tx:
        await tx.finish(results, "w1", NOW + 1)
    for i, (row, result) in enumerate(zip(rows, results, strict=True)):
        got = await status_of(store, row.id)
        async with store.transaction() as tx:
            logged = await tx.list_attempts(row.id)
        if row is stolen:
            assert (got, logged) == (("pending", 0), []), i
        else:
            assert got == (result.status, result.attempts), i
            assert logged == ([result.attempt] if result.attempt else []), i
    async with store.transaction() as tx:
        retrying = await tx.get_delivery(A, rows[1].id)
    assert retrying is not None and (retrying.next_at, retrying.last_status, retrying.last_error) == (
        NOW + 60,
        503,
        "boom",
    )


async def test_finish_ignores_a_result_once_the_lease_moved_to_another_worker(store: Store) -> None:
    async with store.transaction() as tx:
        (row,) = await seed(tx, 1)
    assert await claim(store, "w1", NOW, lease_s=30) == [row.id]
    assert await claim(store, "w2", NOW + 31, lease_s=30) == [row.id]  # w1 was too slow

    async with store.transaction() as tx:
        await tx.finish([done(row.id, "failed", 1, code=500)], "w1", NOW + 32)
    assert await status_of(store, row.id) == ("pending", 0)
    assert await claim(store, "w3", NOW + 40) == []  # still w2's lease
    async with store.transaction() as tx:
        assert await tx.list_attempts(row.id) == []  # w1's attempt is not w2's attempt 1

    async with store.transaction() as tx:
        await tx.finish([done(row.id, "delivered", 1)], "w2", NOW + 33)
    # Even after w2 finished (and let go of the lease), the stale worker cannot overwrite the outcome.
    async with store.transaction() as tx:
        await tx.finish([done(row.id, "failed", 1, code=500)], "w1", NOW + 34)
    assert await status_of(store, row.id) == ("delivered", 1)
    async with store.transaction() as tx:
        assert await tx.list_attempts(row.id) == [attempt(row.id, 1)]


async def test_finish_without_a_worker_applies_whatever_the_lease(store: Store) -> None:
    async with store.transaction() as tx:
        (row,) = await seed(tx, 1)
    await claim(store, "w1", NOW)
    async with store.transaction() as tx:
        await tx.finish([Finish(row.id, "expired", 0, NOW, None, "ttl passed", None)], None, NOW + 1)
    assert await status_of(store, row.id) == ("expired", 0)


async def test_extend_leases_keeps_only_this_workers_pending_deliveries(store: Store) -> None:
    async with store.transaction() as tx:
        mine = await seed(tx, 2)
        (theirs,) = await seed(tx, 1, next_at=NOW + 1)
    assert sorted(await claim(store, "w1", NOW, lease_s=30)) == sorted(r.id for r in mine)
    assert await claim(store, "w2", NOW + 1, lease_s=30) == [theirs.id]
    async with store.transaction() as tx:
        await tx.finish([done(mine[1].id, "delivered", 1)], "w1", NOW + 2)
        await tx.extend_leases("w1", [mine[0].id, mine[1].id, theirs.id], NOW + 120)
        await tx.extend_leases("w1", [], NOW + 120)
    # mine[0] is still held; theirs was not extended by w1, so it expires on w2's schedule.
    assert await claim(store, "w3", NOW + 60, lease_s=1000) == [theirs.id]
    assert await claim(store, "w4", NOW + 119) == []
    assert await claim(store, "w4", NOW + 121) == [mine[0].id]
    assert await status_of(store, mine[1].id) == ("delivered", 1)


async def test_extend_leases_covers_every_id_of_a_long_list_and_can_end_leases(store: Store) -> None:
    async with store.transaction() as tx:
        rows = await seed(tx, 1234)  # the lease loop renews everything a worker holds at once
    assert len(await claim(store, "w1", NOW, lease_s=30, limit=2000)) == len(rows)
    ids = [r.id for r in rows]
    async with store.transaction() as tx:
        await tx.extend_leases("w1", ids, NOW + 300)
    assert await claim(store, "w2", NOW + 299, limit=2000) == []  # every one of them renewed
    async with store.transaction() as tx:
        await tx.extend_leases("w1", ids[:700], NOW + 1)  # handed back: the lease ends now
    assert len(await claim(store, "w2", NOW + 2, limit=2000)) == 700


async def test_release_leases_of_one_worker_or_all(store: Store) -> None:
    async with store.transaction() as tx:
        w1_rows = await seed(tx, 2)
        w2_rows = await seed(tx, 1, next_at=NOW + 1)
    await claim(store, "w1", NOW)
    await claim(store, "w2", NOW + 1)
    async with store.transaction() as tx:
        await tx.finish([done(w1_rows[1].id, "delivered", 1)], "w1", NOW + 2)
        assert await tx.release_leases("w1") == 1  # the finished one holds no lease
    assert await claim(store, "w3", NOW + 3) == [w1_rows[0].id]
    async with store.transaction() as tx:
        assert await tx.release_leases(None) == 2  # w2's and w3's
        assert await tx.release_leases(None) == 0
    assert sorted(await claim(store, "w4", NOW + 4)) == sorted([w1_rows[0].id, w2_rows[0].id])


async def test_requeue_makes_a_finished_delivery_due_now_in_its_domain_only(store: Store) -> None:
    async with store.transaction() as tx:
        (row,) = await seed(tx, 1, expires_at=NOW + 10)
    await claim(store, "w1", NOW)
    async with store.transaction() as tx:
        await tx.finish([done(row.id, "failed", 4, code=500)], "w1", NOW + 1)
        assert await tx.requeue(B, row.id, NOW + 500) == 0
        assert await tx.requeue(A, "msg_missing", NOW + 500) == 0
    assert await status_of(store, row.id) == ("failed", 4)
    async with store.transaction() as tx:
        assert await tx.requeue(A, row.id, NOW + 500) == 1
        requeued = await tx.get_delivery(A, row.id)
    assert requeued is not None
    assert (requeued.status, requeued.attempts, requeued.next_at, requeued.expires_at) == (
        "pending",
        4,
        NOW + 500,
        NOW + 510,  # a fresh ttl window as long as the first (10 s)
    )
    assert await claim(store, "w2", NOW + 499) == []
    assert await claim(store, "w2", NOW + 500) == [row.id]
    async with store.transaction() as tx:  # leased to w2 right now: a manual retry leaves it alone
        assert await tx.requeue(A, row.id, NOW + 501) == 0


async def test_list_deliveries_filters_by_hook_status_and_domain(store: Store) -> None:
    hook = hook_id()
    async with store.transaction() as tx:
        rows = await seed(tx, 4, hook=hook)
        await seed(tx, 2, hook=hook_id())  # another hook of A
        (foreign,) = await seed(tx, 1, domain=B, hook=hook)  # same hook id in B must never show in A
    await claim(store, "w1", NOW, limit=100)
    async with store.transaction() as tx:
        await tx.finish([done(rows[0].id, "delivered", 1), done(rows[1].id, "failed", 1, code=500)], "w1", NOW)
    async with store.transaction() as tx:
        everything = await tx.list_deliveries(A, hook, None, 100, 0)
        assert sorted(d.id for d in everything) == sorted(r.id for r in rows)
        assert [d.id for d in await tx.list_deliveries(A, hook, "delivered", 100, 0)] == [rows[0].id]
        assert [d.id for d in await tx.list_deliveries(A, hook, "failed", 100, 0)] == [rows[1].id]
        pending = await tx.list_deliveries(A, hook, "pending", 100, 0)
        assert sorted(d.id for d in pending) == sorted([rows[2].id, rows[3].id])
        assert await tx.list_deliveries(A, hook, "expired", 100, 0) == []
        assert [d.id for d in await tx.list_deliveries(B, hook, None, 100, 0)] == [foreign.id]
        page1 = await tx.list_deliveries(A, hook, None, 3, 0)
        page2 = await tx.list_deliveries(A, hook, None, 3, 3)
        assert len(page1) == 3 and len(page2) == 1
        assert {d.id for d in page1} | {d.id for d in page2} == {r.id for r in rows}


async def test_purge_removes_old_finished_deliveries_attempts_and_orphan_events_only(store: Store) -> None:
    async with store.transaction() as tx:
        old_done, old_failed, old_pending, recent_done = await seed(tx, 4)
        shared_event = event_row()
        shared = [delivery(shared_event.id, hook_id()), delivery(shared_event.id, hook_id())]
        await tx.insert_events([shared_event])
        await tx.insert_deliveries(shared, NOW)
        lonely = event_row(received_at=NOW - 1)  # matched nothing: purged with the rest
        await tx.insert_events([lonely])
    await claim(store, "w1", NOW)
    async with store.transaction() as tx:
        await tx.finish(
            [
                done(old_done.id, "delivered", 1),
                done(old_failed.id, "failed", 1, code=500),
                done(old_pending.id, "pending", 1, code=500, next_at=NOW + 10**6),
                done(shared[0].id, "delivered", 1),
            ],
            "w1",
            NOW + 10,
        )
        await tx.finish([done(recent_done.id, "delivered", 1)], "w1", NOW + 1000)
    async with store.transaction() as tx:
        assert await tx.purge_finished(NOW + 500) == 3  # old_done, old_failed, shared[0]
    async with store.transaction() as tx:
        assert await tx.get_delivery(A, old_done.id) is None
        assert await tx.get_delivery(A, old_failed.id) is None
        assert await tx.list_attempts(old_done.id) == []
        assert await tx.list_attempts(old_failed.id) == []
        assert await tx.get_event(old_done.event_id) is None
        assert await tx.get_event(old_failed.event_id) is None
        assert await tx.get_event(lonely.id) is None
        # Pending (even with old attempts), recent, and events still referred to stay.
        kept = await tx.get_delivery(A, old_pending.id)
        assert kept is not None and kept.status == "pending"
        assert [a.n for a in await tx.list_attempts(old_pending.id)] == [1]
        assert await tx.get_event(old_pending.event_id) is not None
        assert await tx.get_delivery(A, recent_done.id) is not None
        assert await tx.get_event(recent_done.event_id) is not None
        assert await tx.get_event(shared_event.id) is not None
        assert await tx.get_delivery(A, shared[1].id) is not None
        assert await tx.count_pending() == 2  # old_pending and shared[1]


async def test_count_pending(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.count_pending() == 0
        rows = await seed(tx, 3, next_at=NOW + 100)
        assert await tx.count_pending() == 3
    await claim(store, "w1", NOW + 100)
    async with store.transaction() as tx:
        assert await tx.count_pending() == 3  # leased is still pending
        await tx.finish([done(rows[0].id, "delivered", 1)], "w1", NOW + 101)
        assert await tx.count_pending() == 2


# -- PostgreSQL only: several processes share the database ----------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize("fair", [None, Fair(per_hook=3, per_domain=5)])
async def test_concurrent_claimers_never_get_the_same_delivery(
    pg_store: tuple[PostgresStore, str, str], fair: Fair | None
) -> None:
    store, _dsn, _schema = pg_store
    async with store.transaction() as tx:
        rows = await seed(tx, 200)
    start = asyncio.Event()

    async def claimer(worker: str) -> list[str]:
        got: list[str] = []
        await start.wait()
        while True:
            async with store.transaction() as tx:
                batch = await tx.claim_due(worker, NOW, NOW + 30, 7, (), fair)
                await asyncio.sleep(0.005)  # hold the row locks while the others claim
            if not batch:
                return got
            got += [c.delivery.id for c in batch]

    tasks = [asyncio.create_task(claimer(f"w{n}")) for n in range(4)]
    start.set()
    results = await asyncio.gather(*tasks)
    union = [delivery_id for got in results for delivery_id in got]
    assert len(union) == len(set(union)), "a delivery was claimed twice"
    assert set(union) == {r.id for r in rows}
    assert sum(1 for got in results if got) > 1  # the claims really overlapped


@pytest.mark.postgres
async def test_listen_hook_changes_hears_another_instances_commit(
    pg_store: tuple[PostgresStore, str, str],
) -> None:
    listener, dsn, schema = pg_store
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def on_change(domain: str, hook: str) -> None:
        await heard.put((domain, hook))

    await listener.listen_hook_changes(on_change)
    assert await asyncio.wait_for(heard.get(), 10) == ("*", "*")  # connected: reload everything

    other = PostgresStore(dsn, schema, min_size=1, max_size=2)
    try:
        hid = hook_id()
        async with other.transaction() as tx:
            await tx.insert_hook(HookRow(hid, A, hook_doc()), NOW)
            await tx.notify_hook_changed(A, hid)
            await asyncio.sleep(0.2)
            assert heard.empty()  # nothing before the commit
        assert await asyncio.wait_for(heard.get(), 10) == (A, hid)

        with pytest.raises(RuntimeError):
            async with other.transaction() as tx:
                await tx.notify_hook_changed(B, "rolled-back")
                raise RuntimeError("abort")
        await asyncio.sleep(0.2)
        assert heard.empty()  # a rolled-back change is never announced
    finally:
        await other.close()


async def test_a_database_that_cannot_take_writes_is_unavailable_not_an_error(store: Store) -> None:
    """Read-only (a PostgreSQL failover to a standby; a SQLite file gone read-only) means "try again later": the
    store says `Unavailable`, which the ingest answers 503 / nacks, rather than an error that reads as a bug (500)."""
    if isinstance(store, SqliteStore):
        await store.call(lambda conn: conn.execute("PRAGMA query_only = 1"))
        with pytest.raises(Unavailable):
            async with store.transaction() as tx:
                await tx.insert_hook(HookRow(hook_id(), A, hook_doc()), NOW)
        await store.call(lambda conn: conn.execute("PRAGMA query_only = 0"))
    else:
        assert isinstance(store, PostgresStore)
        with pytest.raises(Unavailable):
            async with store.transaction() as tx:
                await tx._conn.execute("SET TRANSACTION READ ONLY")  # what a hot standby answers every write with
                await tx.insert_hook(HookRow(hook_id(), A, hook_doc()), NOW)
    async with store.transaction() as tx:  # and once writable again, writes go through
        await tx.insert_hook(HookRow(hook_id(), A, hook_doc()), NOW)


# -- bulk recovery (services/deliveries.py `recover`) ----------------------------------------------
async def seed_call(
    tx: Tx, hook: str, call: str | None, created_at: float, domain: str = A, **kwargs: Any
) -> NewDelivery:
    """One event and its delivery of `call`, created at `created_at`."""
    event = event_row(domain=domain)
    row = replace(delivery(event.id, hook, domain, **kwargs), call_id=call)
    await tx.insert_events([event])
    await tx.insert_deliveries([row], created_at)
    return row


async def test_find_recoverable_takes_a_hooks_or_a_calls_deliveries_by_status_and_window_in_its_domain_only(
    store: Store,
) -> None:
    hook, other = hook_id(), hook_id()
    async with store.transaction() as tx:
        early = await seed_call(tx, hook, "call-1", NOW)
        late = await seed_call(tx, hook, "call-2", NOW + 10)
        mine_elsewhere = await seed_call(tx, other, "call-1", NOW + 5, next_at=NOW + 100)
        pending = await seed_call(tx, hook, "call-1", NOW + 20, next_at=NOW + 100)
        await seed_call(tx, hook, "call-1", NOW + 30, next_at=NOW + 600, leased_by=SHELVED)
        await seed_call(tx, hook, "call-1", NOW, domain=B)  # same hook and call ids in B: never A's
    await claim(store, "w1", NOW, limit=2)  # early and late (oldest due first)
    async with store.transaction() as tx:
        await tx.finish([done(early.id, "failed", 1, code=500), done(late.id, "expired", 1, code=500)], "w1", NOW)
    finished = ("failed", "expired")

    async def ids(match: Recoverable, after: tuple[float, str] | None = None, limit: int = 100) -> list[str]:
        async with store.transaction() as tx:
            return [r.id for r in await tx.find_recoverable(A, match, after, limit)]

    assert await ids(Recoverable(hook, None, finished)) == [early.id, late.id]  # oldest first
    assert await ids(Recoverable(None, "call-1", finished)) == [early.id]
    assert await ids(Recoverable(None, "call-1", ("pending",))) == [mine_elsewhere.id, pending.id]  # not shelved
    assert await ids(Recoverable(hook, "call-1", ("pending", "failed"))) == [early.id, pending.id]
    assert await ids(Recoverable(hook, None, finished, since=NOW + 1, until=NOW + 10.001)) == [late.id]
    assert await ids(Recoverable(hook, None, finished, since=NOW + 11, until=NOW + 19)) == []
    assert await ids(Recoverable(hook, None, finished, since=NOW + 10, until=NOW + 10)) == []  # until: exclusive
    assert await ids(Recoverable(hook, None, ("failed", "expired", "pending")), limit=2) == [early.id, late.id]
    assert await ids(Recoverable(hook, None, ("failed", "expired", "pending")), after=(NOW + 10, late.id)) == [
        pending.id
    ]
    assert await ids(Recoverable(hook_id(), None, finished)) == []
    async with store.transaction() as tx:
        assert await tx.count_recoverable(A, Recoverable(None, "call-1", ("failed", "pending")), None) == 3
        assert await tx.count_recoverable(A, Recoverable(hook, None, finished), (NOW, early.id)) == 1
        assert await tx.find_recoverable(B, Recoverable(hook, None, finished), None, 100) == []


async def test_recover_makes_deliveries_due_again_with_a_fresh_ttl_and_leaves_those_in_flight(store: Store) -> None:
    hook = hook_id()
    async with store.transaction() as tx:
        failed = await seed_call(tx, hook, "c", NOW, expires_at=NOW + 10)
        delivered = await seed_call(tx, hook, "c", NOW)
        in_flight = await seed_call(tx, hook, "c", NOW, next_at=NOW + 1)
        shelved_row = await seed_call(tx, hook, "c", NOW, next_at=NOW + 600, leased_by=SHELVED)
    assert sorted(await claim(store, "w1", NOW, limit=2)) == sorted([failed.id, delivered.id])
    async with store.transaction() as tx:
        await tx.finish([done(failed.id, "failed", 3, code=500), done(delivered.id, "delivered", 1)], "w1", NOW + 1)
    assert await claim(store, "w2", NOW + 1, lease_s=100) == [in_flight.id]
    everything = [failed.id, delivered.id, in_flight.id, shelved_row.id]
    async with store.transaction() as tx:
        assert await tx.recover(B, everything, ("failed", "pending"), NOW + 50) == (0, 0)  # A's ids, B's domain
        assert await tx.recover(A, [], ("failed",), NOW + 50) == (0, 0)
        assert await tx.recover(A, everything, ("failed", "pending"), NOW + 50) == (1, 1)
        recovered = await tx.get_delivery(A, failed.id)
    assert recovered is not None
    assert (recovered.status, recovered.attempts, recovered.next_at, recovered.expires_at) == (
        "pending",
        3,
        NOW + 50,
        NOW + 60,  # a fresh ttl window as long as the first (10 s)
    )
    assert await status_of(store, delivered.id) == ("delivered", 1)  # not among the statuses asked for
    assert await claim(store, "w3", NOW + 50) == [failed.id]  # in flight and shelved: untouched
    assert await shelved(store, "w3", hook) == [shelved_row.id]


# -- hook stats (the console's hook list) ---------------------------------------------------------
async def test_hook_stats_count_a_hooks_recent_deliveries_by_status_in_its_domain_only(store: Store) -> None:
    hook, quiet, paused = hook_id(), hook_id(), hook_id()
    async with store.transaction() as tx:
        old = await seed_call(tx, hook, None, NOW - 7200)  # before the window
        ok = [await seed_call(tx, hook, None, NOW + i) for i in range(3)]
        bad = await seed_call(tx, hook, None, NOW + 5)
        newest = await seed_call(tx, hook, None, NOW + 9, next_at=NOW + 100)  # still pending, not yet due
        await seed_call(tx, paused, None, NOW, next_at=NOW + 600, leased_by=SHELVED)
        await seed_call(tx, hook, None, NOW + 20, domain=B, next_at=NOW + 100)  # same hook id in B: never A's
    assert len(await claim(store, "w1", NOW + 10)) == 5  # old, the three ok and bad: due; the rest not yet
    async with store.transaction() as tx:
        await tx.finish(
            [
                *(done(r.id, "delivered", 1) for r in ok),
                done(bad.id, "failed", 2, code=500),
                done(old.id, "expired", 1, code=None),
            ],
            "w1",
            NOW + 10,
        )
    async with store.transaction() as tx:
        stats = await tx.hook_stats(A, [hook, quiet, paused], NOW - 3600, 1000)
        capped = await tx.hook_stats(A, [hook], NOW - 3600, 2)
        of_b = await tx.hook_stats(B, [hook], NOW - 3600, 1000)
    mine, none, shelf = stats
    assert (mine.hook_id, mine.delivered, mine.failed, mine.pending, mine.sampled) == (hook, 3, 1, 1, 5)
    assert mine.last is not None and (mine.last.id, mine.last.status) == (newest.id, "pending")
    assert not mine.shelved
    assert (none.hook_id, none.sampled, none.last, none.shelved) == (quiet, 0, None, False)
    assert shelf.shelved and shelf.pending == 1
    # The cap counts the newest: the pending one and the failed one.
    assert (capped[0].sampled, capped[0].pending, capped[0].failed, capped[0].delivered) == (2, 1, 1, 0)
    assert of_b[0].sampled == 1 and of_b[0].last is not None and of_b[0].last.domain == B
