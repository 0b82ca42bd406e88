"""Shared fixtures: a real receiver, running switchhooks on SQLite and PostgreSQL, real services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.app import Harness, make_settings, running, running_on
from tests.support.postgres import drop_schema, new_schema, require_postgres
from tests.support.receiver import Receiver
from tests.support.services import amqp_url  # noqa: F401 - re-exported fixture


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as server:
        yield server


@pytest.fixture
async def postgres_schema() -> AsyncIterator[tuple[str, str]]:
    dsn = await require_postgres()
    schema = new_schema()
    try:
        yield dsn, schema
    finally:
        await drop_schema(dsn, schema)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Harness]:
    """switchhook on the embedded default (SQLite in a temp dir)."""
    async with running(make_settings(tmp_path)) as harness:
        yield harness


@pytest.fixture(params=["sqlite", "postgres"])
async def any_app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """switchhook on each backend."""
    async with running_on(request.param, tmp_path) as harness:
        yield harness
