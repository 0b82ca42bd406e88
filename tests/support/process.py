"""switchhook as a real OS process (for crash, restart and multi-process tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

from tests.support.app import ROOT_PASSWORD

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
        return httpx.request(method, self.url + path, timeout=30, **kwargs)


def domain_token(env: dict[str, str], domain: str) -> str:
    """Mint a domain token with the CLI, against the same store as the servers."""
    full_env = {**os.environ, "SWITCHHOOK_TOKEN_SECRET": TOKEN_SECRET, **env}
    out = subprocess.run(
        [sys.executable, "-m", "switchhook", "token", "create", "--domain", domain, "--role", "admin"],
        env=full_env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]
