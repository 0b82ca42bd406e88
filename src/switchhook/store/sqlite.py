"""SQLite backend (the embedded default): one connection on one thread, WAL, batched commits, one writer."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from switchhook.domain.errors import Unavailable
from switchhook.store.base import AtCommit
from switchhook.store.migrations import migration_files
from switchhook.store.sql import Row, SqlTx

T = TypeVar("T")
logger = logging.getLogger("switchhook.store.sqlite")
CHECKPOINT_EVERY_S = 0.5


class SqliteTx(SqlTx):
    """Statements whose result nobody reads are queued and run with the next one that is read (or COMMIT):
    a write-only transaction costs one hop to the database thread instead of one per statement."""

    serialized_writes = True
    multirow_writes = True

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        # (sql, parameter rows, None) for writes; (sql, [args], deliver) for reads whose result waits (see
        # fetch_at_commit). Run in order at the next trip to the database thread.
        self._queued: list[tuple[str, Sequence[Sequence[Any]], Callable[[list[Row]], None] | None]] = [
            ("BEGIN IMMEDIATE", [()], None)
        ]

    def _drain(self, conn: sqlite3.Connection) -> None:
        queued, self._queued = self._queued, []
        for sql, rows, deliver in queued:
            if deliver is not None:
                deliver(conn.execute(sql, rows[0]).fetchall())
            elif len(rows) == 1:
                conn.execute(sql, rows[0])
            else:
                conn.executemany(sql, rows)

    async def fetch_at_commit(self, convert: Callable[[list[Row]], T], sql: str, *args: Any) -> AtCommit[T]:
        result: AtCommit[T] = AtCommit()
        self._queued.append((sql, [args], lambda rows: result.set(convert(rows))))
        return result

    async def execute(self, sql: str, *args: Any) -> int:
        def run(conn: sqlite3.Connection) -> int:
            self._drain(conn)
            return conn.execute(sql, args).rowcount

        return await self._store.call(run)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._queued.append((sql, rows, None))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        def run(conn: sqlite3.Connection) -> list[Row]:
            self._drain(conn)
            return conn.execute(sql, args).fetchall()

        return await self._store.call(run)

    async def commit(self) -> None:
        def run(conn: sqlite3.Connection) -> None:
            try:
                self._drain(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT (disk full, I/O error) must not wedge the connection
                    conn.execute("ROLLBACK")
                raise

        await self._store.call(run)

    async def rollback(self) -> None:
        self._queued = []
        await self._store.call(lambda c: c.execute("ROLLBACK") if c.in_transaction else None)


# Result codes that say the file cannot take writes now (busy, locked, unopenable, disk full or failing, read-only),
# not that a statement or its data is wrong: callers answer 503 / nack and try again later.
_UNAVAILABLE_CODES = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_READONLY",
)


def _unavailable(exc: sqlite3.OperationalError) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(_UNAVAILABLE_CODES) or "locked" in str(exc) or "unable to open" in str(exc)


class SqliteStore:
    """Transactions are serialised by an asyncio lock: SQLite has one writer anyway."""

    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._stopping = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._lock = asyncio.Lock()
        self._conn: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        conn.execute("PRAGMA busy_timeout=5000")
        # The writer never checkpoints: a checkpoint inside a commit stalls every transaction queued behind
        # it (tens of ms). A separate connection on its own thread does them (see _checkpoint_loop).
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA journal_size_limit=67108864")
        conn.execute("PRAGMA cache_size=-16384")  # 16 MiB: the OS page cache holds the rest
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA foreign_keys=ON")
        # Scratch space of store_events: which of a batch's events were not stored before.
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS fresh_events (id TEXT PRIMARY KEY)")
        return conn

    def _checkpoint_loop(self) -> None:
        """PASSIVE checkpoints never block the writer; run often enough that the WAL stays small."""
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            while not self._stopping.wait(CHECKPOINT_EVERY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    logger.warning("checkpoint failed: %s", exc)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            logger.warning("checkpointer stopped: %s", exc)
        finally:
            conn.close()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        if self._conn is None:
            self._conn = await loop.run_in_executor(self._executor, self._open)
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True)
            self._checkpointer.start()
        conn = self._conn
        try:
            return await loop.run_in_executor(self._executor, fn, conn)
        except sqlite3.OperationalError as exc:
            if _unavailable(exc):
                raise Unavailable(f"database unavailable: {exc}") from exc
            raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTx]:
        async with self._lock:
            tx = SqliteTx(self)
            try:
                yield tx
            except BaseException:
                await tx.rollback()
                raise
            await tx.commit()

    async def migrate(self) -> list[str]:
        def apply(conn: sqlite3.Connection) -> list[str]:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at REAL)")
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            applied = []
            for version, sql in migration_files("sqlite"):
                if version in done:
                    continue
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in sql.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations VALUES (?, strftime('%s','now'))", (version,))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                applied.append(version)
            return applied

        async with self._lock:
            return await self.call(apply)

    async def ping(self) -> bool:
        try:
            await self.call(lambda c: c.execute("SELECT 1").fetchone())
        except Exception:
            return False
        return True

    async def listen_hook_changes(
        self,
        callback: Callable[[str, str], Awaitable[None]],
        on_new_deliveries: Callable[[], None] | None = None,
        on_token_changed: Callable[[str, str], None] | None = None,
    ) -> None:
        """Single process: the in-process index is updated directly by the hooks service."""

    async def close(self) -> None:
        self._stopping.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join, 5)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)
