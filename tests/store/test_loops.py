"""The store's background loops (PostgreSQL's hook change listener, SQLite's checkpointer) keep running through
failures, and say which kind they met: an outage is one line of warning, anything else is a bug and is logged
with its traceback, so a bug never reads as an outage."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from switchhook.core.errors import Unavailable
from switchhook.store.postgres import PostgresStore
from switchhook.store.sqlite import SqliteStore
from tests.support.postgres import drop_schema, new_schema, require_postgres
from tests.support.waiting import eventually


def records(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno >= logging.WARNING]


def reads_as_outage(record: logging.LogRecord) -> bool:
    """One line of warning, no traceback."""
    return record.levelno == logging.WARNING and record.exc_info is None and "\n" not in record.getMessage()


def reads_as_bug(record: logging.LogRecord, error: type[BaseException]) -> bool:
    """An error with the exception's traceback."""
    return (
        record.levelno == logging.ERROR
        and record.exc_info is not None
        and isinstance(record.exc_info[1], error)
        and record.exc_info[2] is not None
    )


# -- PostgreSQL: the hook change listener --------------------------------------------------------------------------
@pytest.fixture
async def pg_store() -> AsyncIterator[PostgresStore]:
    dsn = await require_postgres()
    schema = new_schema()
    store = PostgresStore(dsn, schema, min_size=1, max_size=2)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()
        await drop_schema(dsn, schema)


def failing_once(failure: BaseException) -> tuple[Callable[[str, str], Any], list[tuple[str, str]]]:
    """A hook change callback whose first run (the listener's "reload everything" on connecting) raises."""
    calls: list[tuple[str, str]] = []

    async def callback(domain: str, hook_id: str) -> None:
        calls.append((domain, hook_id))
        if len(calls) == 1:
            raise failure

    return callback, calls


@pytest.mark.parametrize(
    ("failure", "outage"),
    [(Unavailable("database unavailable: ConnectionRefusedError"), True), (RuntimeError("a bug"), False)],
    ids=["outage", "bug"],
)
async def test_the_listener_logs_an_outage_in_one_line_and_a_bug_with_its_traceback_and_goes_on(
    pg_store: PostgresStore, caplog: pytest.LogCaptureFixture, failure: Exception, outage: bool
) -> None:
    callback, calls = failing_once(failure)
    with caplog.at_level(logging.WARNING, logger="switchhook.store.postgres"):
        await pg_store.listen_hook_changes(callback)
        # It reconnects and reloads again: the loop survived whichever failure it met.
        await eventually(lambda: len(calls) >= 2, "the listener to connect again after the failure")
    logged = records(caplog, "switchhook.store.postgres")
    assert len(logged) == 1, [r.getMessage() for r in logged]
    if outage:
        assert reads_as_outage(logged[0]), logged[0]
        assert "Unavailable" in logged[0].getMessage()
    else:
        assert reads_as_bug(logged[0], RuntimeError), logged[0]


# -- SQLite: the checkpointer --------------------------------------------------------------------------------------
class FailingCheckpoints(sqlite3.Connection):
    """A connection whose PASSIVE checkpoints raise `fault` (only the checkpointer runs those)."""

    fault: ClassVar[Exception | None] = None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.fault is not None and "wal_checkpoint(PASSIVE)" in sql:
            raise self.fault
        return super().execute(sql, *args)


@pytest.mark.parametrize(
    ("fault", "outage"),
    [(sqlite3.OperationalError("database is locked"), True), (RuntimeError("a bug"), False)],
    ids=["outage", "bug"],
)
async def test_the_checkpointer_logs_an_outage_in_one_line_and_a_bug_with_its_traceback_and_goes_on(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: Exception,
    outage: bool,
) -> None:
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return real_connect(*args, factory=FailingCheckpoints, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(FailingCheckpoints, "fault", fault)
    store = SqliteStore(tmp_path / "x.db")
    try:
        with caplog.at_level(logging.WARNING, logger="switchhook.store.sqlite"):
            await store.migrate()  # opens the database and starts the checkpointer
            logged = await eventually(
                lambda: (
                    len(records(caplog, "switchhook.store.sqlite")) >= 2 and records(caplog, "switchhook.store.sqlite")
                ),
                "two failed checkpoints (the loop goes on after the first)",
            )
        assert all(reads_as_outage(r) for r in logged) if outage else all(reads_as_bug(r, RuntimeError) for r in logged)
        assert await store.ping() is True
    finally:
        monkeypatch.setattr(FailingCheckpoints, "fault", None)
        await store.close()
