"""PostgreSQL backend (production): asyncpg pool, plain SQL, SKIP LOCKED claims, LISTEN/NOTIFY for hook changes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from switchhook.core.errors import Unavailable, ValidationFailed
from switchhook.store.migrations import migration_files
from switchhook.store.sql import Row, SqlTx

logger = logging.getLogger("switchhook.store.postgres")

HOOKS_CHANNEL = "switchhook_hooks"
DELIVERIES_CHANNEL = "switchhook_deliveries"
TOKENS_CHANNEL = "switchhook_tokens"
_MIGRATION_LOCK = 0x5357484B  # pg_advisory_xact_lock key: one migrator at a time across processes
# Errors that say the database cannot take writes now, not that a statement or its data is wrong: callers answer
# 503 / nack and try again later. Besides lost connections: a failover left us on a read-only standby (25006), the
# server is out of disk, memory or connections (class 53), or an operator is shutting it down (class 57).
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)
# What the hook change listener reports as an outage, in one line: the above, or the store (its callback reloads the
# hook index) saying it is unavailable. Anything else is a bug and is logged with its traceback.
_LISTENER_OUTAGE = (*_UNAVAILABLE, Unavailable)


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`?` placeholders to PostgreSQL's `$1, $2, ...` (no `?` ever appears inside our literals)."""
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


class PostgresTx(SqlTx):
    claim_lock_clause = "FOR UPDATE SKIP LOCKED"  # concurrent claims pass each other by
    row_lock_clause = "FOR UPDATE"  # a claim skips what a finishing worker holds
    # Serialises setting a call's deliveries behind with letting them through (see SqlTx.call_line_lock): a
    # transaction-level advisory lock on a 64-bit hash of the (hook, call), released at commit.
    call_line_lock = "SELECT pg_advisory_xact_lock(hashtextextended(? || chr(31) || ?, 14))"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        with _client_data_errors():
            status = await self._conn.execute(numbered(sql), *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with _client_data_errors():
                await self._conn.executemany(numbered(sql), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with _client_data_errors():
            return list(await self._conn.fetch(numbered(sql), *args))

    async def notify_hook_changed(self, domain: str, hook_id: str) -> None:
        # Delivered at commit, to every process LISTENing, including this one.
        await self._conn.execute("SELECT pg_notify($1, $2)", HOOKS_CHANNEL, f"{domain}\n{hook_id}")

    async def notify_token_changed(self, domain: str, token_id: str) -> None:
        await self._conn.execute("SELECT pg_notify($1, $2)", TOKENS_CHANNEL, f"{domain}\n{token_id}")

    async def notify_new_deliveries(self) -> None:
        await self._conn.execute("SELECT pg_notify($1, '')", DELIVERIES_CHANNEL)


class PostgresStore:
    backend = "postgres"

    def __init__(self, dsn: str, schema: str = "", min_size: int = 2, max_size: int = 10) -> None:
        self._dsn = dsn
        self._schema = schema
        self._min_size, self._max_size = min_size, max_size
        self._pool: Any = None
        self._listener_task: asyncio.Task[None] | None = None
        self._callbacks: set[asyncio.Future[None]] = set()  # strong refs: the loop keeps only weak ones

    def _server_settings(self) -> dict[str, str]:
        return {"search_path": self._schema} if self._schema else {}

    async def _get_pool(self) -> Any:
        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    server_settings=self._server_settings(),
                    command_timeout=30,
                )
            except _UNAVAILABLE as exc:
                raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTx]:
        pool = await self._get_pool()
        try:
            async with pool.acquire() as conn, conn.transaction():
                yield PostgresTx(conn)
        except _UNAVAILABLE as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc

    async def migrate(self) -> list[str]:
        conn = await asyncpg.connect(self._dsn)
        applied = []
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                if self._schema:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
                    await conn.execute(f'SET LOCAL search_path TO "{self._schema}"')
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ)"
                )
                done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for version, sql in migration_files("postgres"):
                    if version not in done:
                        await conn.execute(sql)
                        await conn.execute("INSERT INTO schema_migrations VALUES ($1, now())", version)
                        applied.append(version)
        finally:
            await conn.close()
        return applied

    async def ping(self) -> bool:
        try:
            pool = await self._get_pool()
            async with pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
        except Exception:
            return False
        return True

    async def listen_hook_changes(
        self,
        callback: Callable[[str, str], Awaitable[None]],
        on_new_deliveries: Callable[[], None] | None = None,
        on_token_changed: Callable[[str, str], None] | None = None,
    ) -> None:
        """Run `callback(domain, hook_id)` for every change any process commits; ("*", "*") after a reconnect.

        `on_new_deliveries()` runs when another process stored deliveries it did not hand to a worker;
        `on_token_changed(domain, token_id)` when a domain token was revoked or disabled ("*" for all).
        """
        self._listener_task = asyncio.create_task(
            self._listen(callback, on_new_deliveries, on_token_changed), name="pg-listen"
        )

    async def _listen(
        self,
        callback: Callable[[str, str], Awaitable[None]],
        on_new_deliveries: Callable[[], None] | None,
        on_token_changed: Callable[[str, str], None] | None,
    ) -> None:
        backoff = 0.5
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, server_settings=self._server_settings())
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())

                def on_notify(_c: Any, _pid: int, _channel: str, payload: str) -> None:
                    domain, _, hook_id = payload.partition("\n")
                    running = asyncio.ensure_future(callback(domain, hook_id))
                    self._callbacks.add(running)
                    running.add_done_callback(self._callbacks.discard)

                await conn.add_listener(HOOKS_CHANNEL, on_notify)
                if on_new_deliveries is not None:
                    await conn.add_listener(DELIVERIES_CHANNEL, lambda *_args, wake=on_new_deliveries: wake())
                if on_token_changed is not None:
                    await conn.add_listener(TOKENS_CHANNEL, _token_listener(on_token_changed))
                    on_token_changed("*", "*")  # whatever changed while we were not listening
                await callback("*", "*")  # changes may have been missed while disconnected
                backoff = 0.5
                while not lost.is_set():
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel (stop would hang)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5):
                            await lost.wait()
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1")  # notices a dead server even without a FIN
            except asyncio.CancelledError:
                raise
            except _LISTENER_OUTAGE as exc:
                logger.warning("hook change listener lost its connection (%s); retrying", type(exc).__name__)
            except Exception:
                logger.exception("hook change listener failed; retrying")
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)

    async def close(self) -> None:
        if self._listener_task is not None:
            self._listener_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener_task
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


def _token_listener(forget: Callable[[str, str], None]) -> Callable[[Any, int, str, str], None]:
    def on_token(_c: Any, _pid: int, _channel: str, payload: str) -> None:
        domain, _, token_id = payload.partition("\n")
        forget(domain, token_id)

    return on_token


@contextlib.contextmanager
def _client_data_errors() -> Iterator[None]:
    """Text PostgreSQL cannot store (a NUL character in an id or name a client sent) is bad input, not a 5xx."""
    try:
        yield
    except (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError) as exc:
        raise ValidationFailed("Bad request: text contains a character that cannot be stored (NUL).") from exc
