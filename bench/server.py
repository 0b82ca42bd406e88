"""Owns switchhook under test: `switchhook serve` as a subprocess, its tokens and hooks, PG/AMQP cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson

ROOT_PASSWORD = "bench-root-password"
TOKEN_SECRET = "bench-token-secret-" + "b" * 32
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
API_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env() -> dict[str, str]:
    """The bench's own environment without any SWITCHHOOK_* a developer may have exported."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SWITCHHOOK_")}


class Switchhook:
    """One `switchhook serve` process with its own data dir, port and settings; logs go to a file."""

    def __init__(self, workdir: Path, settings: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.env = {
            **base_env(), "SWITCHHOOK_DATA_DIR": str(workdir / "data"), "SWITCHHOOK_HOST": "127.0.0.1",
            "SWITCHHOOK_PORT": str(self.port), "SWITCHHOOK_ROOT_PASSWORD": ROOT_PASSWORD,
            "SWITCHHOOK_TOKEN_SECRET": TOKEN_SECRET, "SWITCHHOOK_LOG_LEVEL": "WARNING",
            "SWITCHHOOK_LOG_FORMAT": "text", **(settings or {}),
        }  # fmt: skip
        self.log_path = workdir / "switchhook.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def token(self, domain: str) -> str:
        """A domain admin token minted by the CLI against the same store (the domain is created)."""
        out = subprocess.run(
            [sys.executable, "-m", "switchhook", "token", "create", "--domain", domain, "--role", "admin"],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"switchhook token create failed:\n{out.stderr[-2000:]}")
        return out.stdout.strip().splitlines()[-1]

    async def start(self, timeout_s: float = 60.0) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "switchhook", "serve"], env=self.env, stdout=self._log,
            stderr=subprocess.STDOUT, cwd=self.workdir,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"switchhook exited at start:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.url + "/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status in (200, 503):
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"switchhook did not come up in {timeout_s:g} s:\n{self.log_tail()}")

    async def health(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.get(self.url + "/health", timeout=API_TIMEOUT) as response:
            report: dict[str, Any] = orjson.loads(await response.read())
            return report

    def peak_rss_mb(self) -> float | None:
        """VmHWM of the serve process (its peak resident set since start), in MB."""
        return _proc_status_kb(self.pid, "VmHWM")

    def cpu_s(self) -> float:
        """User + system CPU seconds the serve process has used so far (0 once it is gone)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float | None:
        return _proc_status_kb(self.pid, "VmRSS")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (the graceful path), then SIGKILL if it does not exit in `timeout_s`."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


def _proc_status_kb(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def web_action(url: str) -> dict[str, str]:
    return {"type": "web", "method": "POST", "url": url}


async def create_hook(
    session: aiohttp.ClientSession, base_url: str, headers: dict[str, str], hook: dict[str, Any],
    domain: str | None = None,
) -> str:  # fmt: skip
    params = {"domain": domain} if domain else None
    async with session.post(
        base_url + "/api/v2/hooks", data=orjson.dumps(hook), params=params, timeout=API_TIMEOUT,
        headers={**headers, "Content-Type": "application/json"},
    ) as response:  # fmt: skip
        text = await response.read()
    if response.status != 200:
        raise RuntimeError(f"POST /api/v2/hooks answered {response.status}: {text[:300]!r}")
    hook_id: str = orjson.loads(text)["data"]["insertedIds"][0]
    return hook_id


async def root_headers(session: aiohttp.ClientSession, base_url: str) -> dict[str, str]:
    body = orjson.dumps({"username": "root", "password": ROOT_PASSWORD})
    async with session.post(
        base_url + "/login", data=body, headers={"Content-Type": "application/json"}, timeout=API_TIMEOUT
    ) as response:
        text = await response.read()
    if response.status != 200:
        raise RuntimeError(f"root login answered {response.status}: {text[:300]!r}")
    session_info = orjson.loads(text)
    return {"X-Access-Token": session_info["token"], "X-Key": session_info["key"]}


# -- PostgreSQL and RabbitMQ: unique names per run, removed afterwards ----------------------------------


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def delete_amqp(url: str, queue: str, exchanges: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue, if_unused=False, if_empty=False)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()
