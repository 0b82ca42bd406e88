"""An event is accepted (HTTP 202, AMQP ack) only once its deliveries are committed: a store fault under
`POST /api/v2/events` answers an error and under the AMQP consumer leaves the message in the queue, and in
neither case is anything sent (RELIABILITY.md, "An accepted event is delivered or visibly failed").

The faults are real, injected into the database the running switchhook uses, never by patching its code:

- `sqlite-refuses`: a trigger on the events table raises (SQLite `RAISE(ABORT)`): an error of no known kind;
- `sqlite-locked`: another connection holds the write lock past the store's busy timeout (5 s): unavailable;
- `postgres-connection-dies`: a trigger on the test schema's events table terminates its own backend, as
  `pg_terminate_backend` or a fast shutdown would, in the middle of the INSERT: unavailable.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from switchhook.config import Settings
from switchhook.ingest.amqp import routing_key_for
from tests.support.app import Harness, make_settings, running
from tests.support.postgres import drop_schema, new_schema, require_postgres
from tests.support.receiver import Receiver
from tests.support.services import need_rabbitmqctl
from tests.support.tap import Tap, own_tap
from tests.support.waiting import eventually

DOMAIN = "faults.example"

Fault = Callable[[], AbstractAsyncContextManager[None]]


# -- the faults -------------------------------------------------------------------------------------------


def run_sqlite(path: Path, sql: str) -> None:
    """One statement on a connection of its own (from a thread: it may wait for the store's write lock)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(sql)
    finally:
        conn.close()


def sqlite_refuses(settings: Settings) -> Fault:
    @asynccontextmanager
    async def active() -> AsyncIterator[None]:
        trigger = "CREATE TRIGGER test_fault BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'injected'); END"
        await asyncio.to_thread(run_sqlite, settings.sqlite_path, trigger)
        try:
            yield
        finally:
            await asyncio.to_thread(run_sqlite, settings.sqlite_path, "DROP TRIGGER test_fault")

    return active


def sqlite_locked(settings: Settings) -> Fault:
    @asynccontextmanager
    async def active() -> AsyncIterator[None]:
        conn = sqlite3.connect(settings.sqlite_path, isolation_level=None, check_same_thread=False)
        await asyncio.to_thread(conn.execute, "BEGIN EXCLUSIVE")  # the one writer's lock, held until the end
        try:
            yield
        finally:
            await asyncio.to_thread(conn.execute, "ROLLBACK")
            conn.close()

    return active


def postgres_connection_dies(dsn: str, schema: str) -> Fault:
    @asynccontextmanager
    async def active() -> AsyncIterator[None]:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            await conn.execute(
                "CREATE FUNCTION test_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NULL; END $$"
            )
            await conn.execute(
                "CREATE TRIGGER test_fault BEFORE INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION test_fault()"
            )
            try:
                yield
            finally:
                await conn.execute("DROP TRIGGER test_fault ON events; DROP FUNCTION test_fault()")
        finally:
            await conn.close()

    return active


@asynccontextmanager
async def switchhook_with_fault(kind: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[Harness, Fault]]:
    """A running switchhook on the backend `kind` needs, and the fault to inject into its store."""
    if kind.startswith("sqlite"):
        settings = make_settings(tmp_path, **overrides)
        async with running(settings) as app:
            yield app, (sqlite_refuses if kind == "sqlite-refuses" else sqlite_locked)(settings)
        return
    dsn = await require_postgres()
    schema = new_schema()
    try:
        async with running(make_settings(tmp_path, database_url=dsn, database_schema=schema, **overrides)) as app:
            yield app, postgres_connection_dies(dsn, schema)
    finally:
        await drop_schema(dsn, schema)


def event(unique_id: str) -> dict[str, str]:
    return {"Event-Name": "CHANNEL_CREATE", "Unique-ID": unique_id, "variable_domain_name": DOMAIN}


async def hook_to(app: Harness, url: str) -> tuple[str, str]:
    """(hook id, domain token) of a CHANNEL_CREATE hook sending to `url`."""
    token = await app.domain_token(DOMAIN)
    action = {"type": "web", "method": "POST", "url": url}
    return await app.create_hook(DOMAIN, {"event": "CHANNEL_CREATE", "enable": True, "action": action}, token), token


async def logged_deliveries(app: Harness, hook_id: str, token: str) -> list[dict[str, Any]]:
    listed = await app.client.get(f"/api/v2/hooks/{hook_id}/deliveries", headers={"X-Access-Token": token})
    assert listed.status_code == 200, listed.text
    rows: list[dict[str, Any]] = listed.json()["data"]
    return rows


def sent_ids(receiver: Receiver) -> list[str]:
    return [r.json()["data"]["Unique-ID"] for r in receiver.requests]


# -- HTTP ---------------------------------------------------------------------------------------------------

HTTP_CASES = [
    pytest.param("sqlite-refuses", 500, id="sqlite-refuses"),
    pytest.param("sqlite-locked", 503, id="sqlite-locked"),
    pytest.param("postgres-connection-dies", 503, id="postgres-connection-dies", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize(("kind", "status"), HTTP_CASES)
async def test_http_ingest_whose_commit_fails_is_refused_and_nothing_is_sent(
    kind: str, status: int, tmp_path: Path, receiver: Receiver
) -> None:
    async with switchhook_with_fault(kind, tmp_path) as (app, fault):
        hook_id, token = await hook_to(app, receiver.url())
        # As a real server answers: an unexpected error becomes a 500, not an exception in the client.
        transport = httpx.ASGITransport(app=app.runtime.app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://switchhook.test") as client, fault():
            refused = await client.post(
                "/api/v2/events", json=event("during-the-fault"), headers={"X-Access-Token": token}
            )
        assert refused.status_code == status, refused.text
        assert refused.json()["status"] == "error"

        # Behind the refused event, one accepted after the fault: once it is delivered and recorded, the
        # refused one would have been too, had anything of it been stored or handed to the worker.
        accepted = await app.post_events(event("after-the-fault"), token)
        assert accepted.status_code == 202 and accepted.json()["data"]["deliveries"] == 1, accepted.text
        rows: list[dict[str, Any]] = []

        async def recorded() -> bool:
            rows[:] = await logged_deliveries(app, hook_id, token)
            return any(r["status"] == "delivered" for r in rows)

        await eventually(recorded, "the later event's delivery recorded", 10, lambda: str(rows))
        assert len(rows) == 1, rows
        assert sent_ids(receiver) == ["after-the-fault"]


# -- AMQP ---------------------------------------------------------------------------------------------------

AMQP_CASES = [
    pytest.param("sqlite-refuses", id="sqlite-refuses"),
    pytest.param("postgres-connection-dies", id="postgres-connection-dies", marks=pytest.mark.postgres),
]


@pytest.fixture
async def tap() -> AsyncIterator[Tap]:
    async with own_tap() as tap:
        yield tap


async def amqp_state(app: Harness) -> dict[str, Any]:
    report: dict[str, Any] = (await app.client.get("/health")).json()["amqp"]
    return report


@pytest.mark.rabbitmq
@pytest.mark.parametrize("kind", AMQP_CASES)
async def test_amqp_message_whose_commit_fails_stays_queued_and_nothing_is_sent(
    kind: str, tap: Tap, tmp_path: Path, receiver: Receiver
) -> None:
    need_rabbitmqctl()  # to read the queue's counts
    amqp = {
        "amqp_url": tap.url,
        "amqp_queue": tap.queue,
        "amqp_events_exchange": tap.events_exchange,
        "amqp_cc_exchange": tap.cc_exchange,
    }
    message = event("through-the-fault")
    async with switchhook_with_fault(kind, tmp_path, **amqp) as (app, fault):
        await eventually(lambda: _connected(app), "the AMQP source to connect", 10)
        hook_id, token = await hook_to(app, receiver.url())
        await tap.wait_routed(routing_key_for(message))  # bound for the hook's event
        await eventually(lambda: queue_holds(tap, 0), "the routing probes consumed and acked", 10)
        received_before = (await amqp_state(app))["received"]

        async with fault():
            await tap.publish(message, persistent=True)

            async def handed_over_again() -> bool:
                return bool((await amqp_state(app))["received"] >= received_before + 2)

            # A second hand-over of the one message: the failed batch was requeued, not acked and lost.
            await eventually(handed_over_again, "the message redelivered after a failed commit", 10)
            assert await queue_holds(tap, 1), "the message left the queue though its commit failed"
            assert receiver.requests == []
            assert await logged_deliveries(app, hook_id, token) == []

        (request,) = await receiver.wait_for(1)  # the fault gone, the requeued message goes through
        assert request.json()["data"]["Unique-ID"] == "through-the-fault"
        rows: list[dict[str, Any]] = []

        async def recorded() -> bool:
            rows[:] = await logged_deliveries(app, hook_id, token)
            return [r["status"] for r in rows] == ["delivered"]

        await eventually(recorded, "one delivery, recorded as delivered", 10, lambda: str(rows))
        assert sent_ids(receiver) == ["through-the-fault"]
        await eventually(lambda: queue_holds(tap, 0), "the message acked once stored", 10)


async def queue_holds(tap: Tap, count: int) -> bool:
    """Whether the queue holds `count` messages, ready or delivered and not yet acked."""
    ready, unacked = await tap.counts()
    return ready + unacked == count


async def _connected(app: Harness) -> bool:
    return bool((await amqp_state(app)).get("state") == "connected")
