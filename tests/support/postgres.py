"""The real PostgreSQL for tests: a fresh schema per test, dropped afterwards."""

from __future__ import annotations

import os
import uuid

import asyncpg

from tests.support.services import _service_down

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_dsn() -> str:
    return os.environ.get("SWITCHHOOK_TEST_DATABASE_URL", DEFAULT_DSN)


async def require_postgres() -> str:
    dsn = postgres_dsn()
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        _service_down("PostgreSQL", f"{type(exc).__name__}: {exc}")
    await conn.close()
    return dsn


def new_schema() -> str:
    return "t_" + uuid.uuid4().hex[:12]


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
