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

from switchhook.core.errors import Unavailable
from switchhook.store.base import BEHIND_AT, AtCommit, EventRow, Finish, NewDelivery
from switchhook.store.migrations import migration_files
from switchhook.store.sql import (
    DELIVERIES_INSERT,
    EVENT_CHUNK,
    EVENT_ROW,
    EVENTS_INSERT,
    LET_THROUGH_AFTER,
    NEW_DELIVERY_ROW,
    ROWS_PER_STATEMENT,
    SET_BEHIND,
    Row,
    SqlTx,
    attempt_values,
    event_values,
    new_delivery_values,
)

T = TypeVar("T")
logger = logging.getLogger("switchhook.store.sqlite")
CHECKPOINT_EVERY_S = 0.5

# The write path's own statements (see SqliteTx). `column1`, `column2`, ... name the columns of a VALUES list.
_INSERT_ATTEMPTS_IF_LEASED = (
    "INSERT INTO attempts (delivery_id, n, started_at, duration_ms, status_code, error, response_excerpt, legs)"
    " SELECT * FROM (VALUES {values}) AS v WHERE EXISTS"
    " (SELECT 1 FROM deliveries WHERE id = v.column1 AND leased_by = ?) ON CONFLICT DO NOTHING"
)
_FINISH_UPDATE_FROM = (
    "UPDATE deliveries SET status = v.column2, attempts = v.column3, next_at = v.column4, last_status = v.column5,"
    " last_error = v.column6, lease_until = NULL, leased_by = NULL, updated_at = ? FROM (VALUES {values}) AS v"
    " WHERE deliveries.id = v.column1 AND deliveries.leased_by = ?"
)


def _id_set(rows: list[Row]) -> set[str]:
    return set((rows[0]["ids"] or "").split()) if rows else set()


class SqliteTx(SqlTx):
    """Statements whose result nobody reads are queued and run with the next one that is read (or COMMIT):
    a write-only transaction costs one hop to the database thread instead of one per statement.

    The write path has its own statements here, for two reasons the portable ones in `sql.py` do not know:
    - Many rows per statement rather than one statement per row: the driver lets go of the GIL around every
      statement step and must take it back from the event loop's thread, which under load waits up to the
      interpreter's switch interval each time; a hundred rows as one statement is one such wait, not a hundred.
    - One write transaction at a time: "is it new", "is it still leased to me" can be asked inside the writing
      statement instead of read (and locked) first, so the hot path makes no read before COMMIT.
    """

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

    async def fetch_at_commit(self, convert: Callable[[list[Row]], T], sql: str, *args: Any) -> AtCommit[T]:
        """A read whose result (`convert`ed) is needed only after the commit: it runs just before COMMIT."""
        result: AtCommit[T] = AtCommit()
        self._queued.append((sql, [args], lambda rows: result.set(convert(rows))))
        return result

    # -- notifications: one process, nobody else to tell (the services update this one directly) --------------
    async def notify_hook_changed(self, domain: str, hook_id: str) -> None:
        return None

    async def notify_new_deliveries(self) -> None:
        return None

    async def notify_token_changed(self, domain: str, token_id: str) -> None:
        return None

    # -- the write path (see the class docstring) ----------------------------------------------------------------
    async def write_rows(self, head: str, row: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        """`{head} VALUES {row}, {row}, ... {tail}`: up to ROWS_PER_STATEMENT rows per statement."""
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            values = ", ".join(row for _ in chunk)
            await self.executemany(f"{head} VALUES {values}{tail}", [[v for r in chunk for v in r]])

    async def insert_events(self, rows: Sequence[EventRow]) -> set[str]:
        """Ask which ids are stored already (one row per duplicate, usually none, where RETURNING costs a
        statement step per inserted row), then insert the rest with the next statement."""
        stored: set[str] = set()
        for start in range(0, len(rows), EVENT_CHUNK):
            chunk = rows[start : start + EVENT_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            sql = f"SELECT id FROM events WHERE id IN ({marks})"  # noqa: S608 - placeholders only
            stored.update(r["id"] for r in await self.fetch(sql, *(r.id for r in chunk)))
        fresh = [r for r in rows if r.id not in stored]
        await self.write_rows(EVENTS_INSERT, EVENT_ROW, [event_values(r) for r in fresh], " ON CONFLICT DO NOTHING")
        return {r.id for r in fresh}

    async def store_events(
        self, events: Sequence[EventRow], deliveries: Sequence[tuple[Sequence[NewDelivery], float]]
    ) -> AtCommit[set[str]]:
        """All writes, no reads until the commit: which events are new is noted in a temp table by SQL and
        read right before COMMIT, so a whole ingest costs one trip to the database thread."""
        await self.executemany("DELETE FROM temp.fresh_events", [()])
        await self.write_rows(
            "INSERT OR IGNORE INTO temp.fresh_events (id) SELECT column1 FROM (",
            "(?)",
            [(e.id,) for e in events],
            ") AS v WHERE NOT EXISTS (SELECT 1 FROM events WHERE events.id = v.column1)",
        )
        await self.write_rows(EVENTS_INSERT, EVENT_ROW, [event_values(e) for e in events], " ON CONFLICT DO NOTHING")
        for rows, now in deliveries:
            await self.write_rows(
                f"{DELIVERIES_INSERT} SELECT * FROM (",  # noqa: S608 - fixed text and placeholders only
                NEW_DELIVERY_ROW,
                [new_delivery_values(r, now) for r in rows],
                ") AS v WHERE v.column2 IN (SELECT id FROM temp.fresh_events) ON CONFLICT DO NOTHING",
            )
        # One row (ids never hold a space): a row per id would cost the database thread a GIL trip each.
        return await self.fetch_at_commit(_id_set, "SELECT group_concat(id, ' ') AS ids FROM temp.fresh_events")

    async def finish(self, results: Sequence[Finish], worker_id: str | None, now: float) -> None:
        """As `SqlTx.finish`; a worker's results check "still leased to me" in the statements that write them."""
        if worker_id is None:
            await super().finish(results, worker_id, now)
            return
        await self.give_back_numbers(results, worker_id)
        for start in range(0, len(results), ROWS_PER_STATEMENT):
            chunk = results[start : start + ROWS_PER_STATEMENT]
            attempts = [attempt_values(r.attempt) for r in chunk if r.attempt is not None]
            if attempts:
                values = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?)" for _ in attempts)
                await self.executemany(
                    _INSERT_ATTEMPTS_IF_LEASED.format(values=values), [[*(v for a in attempts for v in a), worker_id]]
                )
            values = ", ".join("(?, ?, ?, ?, ?, ?)" for _ in chunk)
            params = [
                v for r in chunk for v in (r.delivery_id, r.status, r.attempts, r.next_at, r.last_status, r.last_error)
            ]
            await self.executemany(_FINISH_UPDATE_FROM.format(values=values), [[now, *params, worker_id]])
        await self.let_through_after([r.delivery_id for r in results], now)

    async def _set_behind(self, window: str, window_args: Sequence[Any], now: float) -> None:
        """As `SqlTx._set_behind`, queued with the claim's own statement: one transaction at a time, so no result
        is recorded meanwhile, and a delivery set behind (never its call's first) needs no letting through."""
        await self.executemany(SET_BEHIND.format(window=window), [[BEHIND_AT, *window_args]])

    async def let_through_after(self, delivery_ids: Sequence[str], now: float) -> None:
        """As `SqlTx.let_through_after`, without reading the calls first (no lock to take): queued statements."""
        ids = sorted(set(delivery_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            await self.executemany(LET_THROUGH_AFTER.format(marks=marks), [[now, *chunk]])

    async def store_call_numbers(self, numbers: Sequence[tuple[int, str]]) -> None:
        """As `SqlTx.store_call_numbers`, many rows per statement."""
        for start in range(0, len(numbers), ROWS_PER_STATEMENT):
            chunk = numbers[start : start + ROWS_PER_STATEMENT]
            values = ", ".join("(?, ?)" for _ in chunk)
            await self.executemany(
                f"UPDATE deliveries SET call_seq = v.column1 FROM (VALUES {values}) AS v"  # noqa: S608 - placeholders
                " WHERE deliveries.id = v.column2",
                [[v for row in chunk for v in row]],
            )

    async def extend_leases(self, worker_id: str, delivery_ids: Sequence[str], lease_until: float) -> None:
        """As `SqlTx.extend_leases`, with no lock order to keep: one statement per chunk, not one per row."""
        for start in range(0, len(delivery_ids), 500):
            chunk = delivery_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            await self.executemany(
                "UPDATE deliveries SET lease_until = ? WHERE leased_by = ? AND status = 'pending'"  # noqa: S608
                f" AND id IN ({marks})",
                [[lease_until, worker_id, *chunk]],
            )


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


def _log_failure(what: str, exc: Exception) -> None:
    """A background loop's failure: an outage in one line, anything else with its traceback (a bug must not
    read as an outage)."""
    if isinstance(exc, sqlite3.OperationalError) and _unavailable(exc):
        logger.warning("%s: %s", what, exc)
    else:
        logger.error("%s", what, exc_info=exc)


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
        """PASSIVE checkpoints never block the writer; run often enough that the WAL stays small.

        A file that cannot take writes now (see _unavailable) is one line of warning; anything else is a bug
        and is logged with its traceback. The loop goes on either way: a missed checkpoint only grows the WAL."""
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            while not self._stopping.wait(CHECKPOINT_EVERY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except Exception as exc:
                    _log_failure("checkpoint failed", exc)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception as exc:
            _log_failure("checkpointer stopped", exc)
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
