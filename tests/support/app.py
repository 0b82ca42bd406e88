"""A running switchhook (runtime + ASGI client) for API and end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from switchhook.config import Settings
from switchhook.ingest.source import EventSource
from switchhook.runtime import Runtime
from switchhook.services.access import Caller
from tests.support.postgres import drop_schema, new_schema, require_postgres

ROOT_PASSWORD = "root-password-for-tests"


class Harness:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.client = client

    @property
    def services(self) -> Any:
        return self.runtime.services

    def source(self, name: str) -> EventSource:
        """The running source called `name` (`amqp`, `esl`)."""
        (source,) = (source for source in self.runtime.sources if source.name == name)
        return source

    async def domain_token(self, domain: str, role: str = "admin", lifetime_s: float = 3600) -> str:
        token: str = await self.services.domains.issue_domain_token(domain, role, lifetime_s, "tests")
        return token

    async def root_headers(self) -> dict[str, str]:
        response = await self.client.post("/login", json={"username": "root", "password": ROOT_PASSWORD})
        assert response.status_code == 200, response.text
        body = response.json()
        return {"X-Access-Token": body["token"], "X-Key": body["key"]}

    async def create_hook(self, domain: str, hook: dict[str, Any], token: str | None = None) -> str:
        token = token or await self.domain_token(domain)
        response = await self.client.post(
            "/api/v2/hooks", params={"domain": domain}, json=hook, headers={"X-Access-Token": token}
        )
        assert response.status_code == 200, response.text
        hook_id: str = response.json()["data"]["insertedIds"][0]
        return hook_id

    async def post_events(self, events: Any, token: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post("/api/v2/events", json=events, headers={"X-Access-Token": token}, **kwargs)


ROOT = Caller("root", "root", None, "root", "root")


def make_settings(tmp_path: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "root_password": ROOT_PASSWORD,
        "token_secret": "test-secret-" + "x" * 32,
        "poll_interval_s": 0.05,
        "log_format": "text",
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running(settings: Settings, *, api: bool = True, worker: bool = True) -> AsyncIterator[Harness]:
    runtime = Runtime(settings, api=api, worker=worker)
    await runtime.start()
    app = runtime.app()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://switchhook.test") as client:
            yield Harness(runtime, client)
    finally:
        await runtime.stop()


#: Runs a test once per store backend (its `backend` argument); the PostgreSQL run is marked `postgres`.
BACKENDS = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


@asynccontextmanager
async def store_settings(backend: str) -> AsyncIterator[dict[str, str]]:
    """The settings that put switchhook on `backend`: none for "sqlite" (the embedded default, in the data dir), a
    fresh PostgreSQL schema for "postgres", dropped afterwards. Several runs inside it share one store."""
    if backend == "sqlite":
        yield {}
        return
    dsn, schema = await require_postgres(), new_schema()
    try:
        yield {"database_url": dsn, "database_schema": schema}
    finally:
        await drop_schema(dsn, schema)


@asynccontextmanager
async def running_on(backend: str, tmp_path: Any, **overrides: Any) -> AsyncIterator[Harness]:
    """switchhook with `overrides` on `backend` ("sqlite" or "postgres", see `store_settings`)."""
    async with store_settings(backend) as store, running(make_settings(tmp_path, **store, **overrides)) as app:
        yield app
