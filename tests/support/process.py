"""switchhook as a real OS process (for crash, restart and multi-process tests).

Async tests use the `*_async` methods: a blocking call (a sleep, a subprocess, a synchronous HTTP request)
inside an async test freezes its event loop, and with it the test's own receiver, which then answers
nothing while the servers under test try to deliver to it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.support.app import ROOT_PASSWORD
from tests.support.postgres import drop_schema, new_schema, require_postgres

TOKEN_SECRET = "process-tests-secret-" + "y" * 24


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`switchhook serve [--api|--worker]` with its own env; logs go to a file in `log_dir`."""

    def __init__(self, env: dict[str, str], log_dir: Path, *args: str, name: str = "server") -> None:
        self.port = free_port()
        self.args = args
        self.name = name
        self.env = {
            **os.environ,
            "SWITCHHOOK_PORT": str(self.port),
            "SWITCHHOOK_ROOT_PASSWORD": ROOT_PASSWORD,
            "SWITCHHOOK_TOKEN_SECRET": TOKEN_SECRET,
            "SWITCHHOOK_LOG_FORMAT": "text",
            "SWITCHHOOK_POLL_INTERVAL_S": "0.1",
            **env,
        }
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> ServerProcess:
        """Start and wait until /health answers (blocking: from async code use `start_async`)."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "switchhook", "serve", *self.args],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not come up:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown path runs, exactly like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A blocking request (sync tests and fixtures only; async tests use `request_async`)."""
        return httpx.request(method, self.url + path, timeout=30, **kwargs)

    # -- for async tests: never block the loop the test's receiver runs on --------------------------------

    async def start_async(self, timeout_s: float = 20.0) -> ServerProcess:
        return await asyncio.to_thread(self.start, timeout_s)

    async def kill_async(self) -> None:
        await asyncio.to_thread(self.kill)

    async def stop_async(self) -> None:
        await asyncio.to_thread(self.stop)

    async def request_async(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            return await client.request(method, path, **kwargs)

    async def create_hook_async(self, hook: dict[str, Any], headers: dict[str, str]) -> str:
        """POST `hook` as the caller of `headers`; the new hook's id (the creation must succeed)."""
        created = await self.request_async("POST", "/api/v2/hooks", json=hook, headers=headers)
        assert created.status_code == 200, created.text
        hook_id: str = created.json()["data"]["insertedIds"][0]
        return hook_id

    async def health(self) -> dict[str, Any]:
        report: dict[str, Any] = (await self.request_async("GET", "/health")).json()
        return report

    async def is_ours(self) -> bool:
        """Whether the server answering on our port is this process. free_port() only picks a port: a
        concurrent test run may bind it first and answer /health. A worker's id holds its pid; a process
        without a worker can only be checked for being alive."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        report = await self.health()
        if "--api" in self.args:
            return "worker" not in report
        return "worker" in report and report["worker"]["id"].split(":")[1] == str(self.proc.pid)


def domain_token(env: dict[str, str], domain: str) -> str:
    """Mint a domain token with the CLI, against the same store as the servers (blocking)."""
    full_env = {**os.environ, "SWITCHHOOK_TOKEN_SECRET": TOKEN_SECRET, **env}
    out = subprocess.run(
        [sys.executable, "-m", "switchhook", "token", "create", "--domain", domain, "--role", "admin"],
        env=full_env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


async def domain_token_async(env: dict[str, str], domain: str) -> str:
    """`domain_token` without blocking the event loop (it also migrates the store's schema)."""
    return await asyncio.to_thread(domain_token, env, domain)


# -- several processes on one PostgreSQL schema --------------------------------------------------------------


@asynccontextmanager
async def postgres_env(env: dict[str, str] | None = None) -> AsyncIterator[dict[str, str]]:
    """`env` plus a fresh PostgreSQL schema, for server processes (run one after another or side by side) to share;
    the schema is dropped afterwards."""
    dsn = await require_postgres()
    schema = new_schema()
    try:
        yield {"SWITCHHOOK_DATABASE_URL": dsn, "SWITCHHOOK_DATABASE_SCHEMA": schema, **(env or {})}
    finally:
        await drop_schema(dsn, schema)


@dataclass
class Cluster:
    """Server processes sharing one fresh PostgreSQL schema, and the domain admin's token."""

    env: dict[str, str]
    token: str
    processes: dict[str, ServerProcess]
    log_dir: Path

    def __getitem__(self, name: str) -> ServerProcess:
        return self.processes[name]

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Access-Token": self.token}

    def client(self, name: str) -> httpx.AsyncClient:
        """An HTTP client to one process, authenticated as the domain's admin."""
        return httpx.AsyncClient(base_url=self[name].url, headers=self.headers, timeout=30)

    async def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
        """Start one more process (`serve` with `args`), retrying on a port someone else took first."""
        for _ in range(3):
            process = ServerProcess({**self.env, **(env or {})}, self.log_dir, *args, name=name)
            self.processes[name] = process
            await process.start_async()
            if await process.is_ours():
                return process
            await process.kill_async()
        pytest.fail(f"{name} never got a port of its own:\n{self.logs()}")

    def logs(self, tail_chars: int = 3000) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-tail_chars:]}" for p in self.processes.values())


@asynccontextmanager
async def postgres_cluster(
    log_dir: Path, domain: str, roles: dict[str, tuple[str, ...]], env: dict[str, str] | None = None
) -> AsyncIterator[Cluster]:
    """A fresh PostgreSQL schema and one process per `roles` entry (name -> `serve` args), started in
    parallel; all stopped and the schema dropped afterwards."""
    dsn = await require_postgres()
    schema = new_schema()
    full_env = {
        "SWITCHHOOK_DATABASE_URL": dsn,
        "SWITCHHOOK_DATABASE_SCHEMA": schema,
        "SWITCHHOOK_DATA_DIR": str(log_dir / "data"),
        **(env or {}),
    }
    cluster = Cluster(full_env, "", {}, log_dir)
    try:
        cluster.token = await domain_token_async(full_env, domain)  # also migrates the schema
        await asyncio.gather(*(cluster.start(name, *args) for name, args in roles.items()))
        yield cluster
    finally:
        await asyncio.gather(*(p.stop_async() for p in cluster.processes.values()))
        await drop_schema(dsn, schema)
