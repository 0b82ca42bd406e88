"""What the browser tests and the screenshot tool share: a real switchhook, a real receiver, a guarded Chromium.

The browser is Debian's Chromium (`/usr/bin/chromium`, installed by .ci/run), driven by Playwright for Python;
Playwright never downloads a browser here. Every request the page makes is routed through `Guard`: one to any
host but the switchhook under test is aborted and recorded, and the tests fail on it (issue 15: nothing from the
internet), as they do on any console error or uncaught exception of the page.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.app import ROOT_PASSWORD
from tests.support.process import ServerProcess

CHROMIUM = os.environ.get("SWITCHHOOK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "console-password-1"


def require_browser() -> None:
    """Skip locally, fail under CI=true (like a missing service, tests/support/services.py), without Playwright
    or Chromium."""
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "Playwright for Python is not installed (pip install -e '.[dev]')"
    if missing is None and not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        missing = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing}; CI=true requires it", pytrace=False)
    pytest.skip(missing)


# -- the receiver: a real HTTP endpoint on this machine, answering with the status the test sets --------------------


@dataclass
class Got:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ThreadReceiver:
    """An HTTP server in a thread (the sync Playwright tests have no event loop to run an aiohttp one on)."""

    status: int = 200
    requests: list[Got] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> ThreadReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                got = Got(self.command, self.path, dict(self.headers), self.rfile.read(size))
                body = b'{"received": true}' if receiver.status < 300 else b'{"error": "receiver told to fail"}'
                self.send_response(receiver.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with receiver.arrived:
                    receiver.requests.append(got)
                    receiver.arrived.notify_all()

            do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True, name="receiver").start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def wait_for(self, count: int, timeout_s: float = 15.0) -> list[Got]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout_s):
                raise AssertionError(f"expected {count} requests at the receiver, got {len(self.requests)}")
            return list(self.requests)


# -- the server: `switchhook serve` on SQLite with two domains and their admins ------------------------------------


@dataclass
class World:
    server: ServerProcess
    receiver: ThreadReceiver
    domain_a: str = "alpha.example"
    domain_b: str = "bravo.example"

    @property
    def url(self) -> str:
        return self.server.url

    def root_headers(self) -> dict[str, str]:
        body = self.server.request("POST", "/login", json={"username": "root", "password": ROOT_PASSWORD}).json()
        return {"X-Access-Token": body["token"], "X-Key": body["key"]}

    def admin_headers(self, domain: str) -> dict[str, str]:
        body = self.server.request("POST", "/login", json={"username": f"admin@{domain}", "password": PASSWORD}).json()
        return {"X-Access-Token": body["token"], "X-Key": body["key"]}


@contextmanager
def world(data_dir: Path) -> Iterator[World]:
    """A server with domains A and B, each with an account `admin@<domain>` (PASSWORD), and a receiver."""
    receiver = ThreadReceiver().start()
    server = ServerProcess(
        {
            "SWITCHHOOK_DATA_DIR": str(data_dir),
            "SWITCHHOOK_LOG_LEVEL": "WARNING",
            "SWITCHHOOK_BREAKER_FAILURES": "0",  # the test makes deliveries fail on purpose: never pause the hook
        },
        data_dir,
        name="console",
    ).start()
    try:
        result = World(server, receiver)
        root = result.root_headers()
        for domain in (result.domain_a, result.domain_b):
            assert server.request("POST", "/api/v2/domains", json={"name": domain}, headers=root).status_code == 200
            created = server.request(
                "POST",
                "/api/v2/accounts",
                params={"domain": domain},
                json={"username": "admin", "password": PASSWORD, "role": "admin"},
                headers=root,
            )
            assert created.status_code == 200, created.text
        yield result
    finally:
        server.stop()
        receiver.stop()
        log = server.log()
        assert "Traceback" not in log, log[-4000:]


# -- the browser: every request checked, every console error kept ---------------------------------------------------


@dataclass
class Guard:
    """Requests that left for another host (aborted), and the page's console errors and exceptions."""

    origin: str
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Chromium logs "Failed to load resource: ... status of 400" for every 4xx a fetch gets; a test that provokes
    #: one on purpose (a validation error) allows that status here. Every other console error fails the test.
    expected_statuses: set[int] = field(default_factory=set)

    def route(self, route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == self.origin or parts.scheme in ("data", "blob"):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def console(self, message: Any) -> None:
        if message.type != "error":
            return
        text = message.text
        if any(f"status of {status} " in text for status in self.expected_statuses):
            return
        self.errors.append(text)

    def check(self) -> None:
        assert not self.outside, f"requests left the server: {self.outside}"
        assert not self.errors, f"console errors: {self.errors}"


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@contextmanager
def guarded_page(browser: Any, origin: str, **context_options: Any) -> Iterator[tuple[Any, Guard]]:
    """A fresh context (its own sessionStorage) and page whose every request goes through a Guard."""
    guard = Guard(origin)
    context = browser.new_context(base_url=origin, service_workers="block", **context_options)
    context.route("**/*", guard.route)
    page = context.new_page()
    page.on("console", guard.console)
    page.on("pageerror", lambda error: guard.errors.append(f"uncaught: {error}"))
    page.set_default_timeout(15_000)
    try:
        yield page, guard
    finally:
        context.close()


def log_in(page: Any, username: str, password: str = PASSWORD, lands_on: str = "Hooks") -> None:
    """Log in through the form and wait for the screen it leads to (root's is the domain picker)."""
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name=lands_on).wait_for()


def log_in_as_root(page: Any) -> None:
    log_in(page, "root", ROOT_PASSWORD, lands_on="Pick a domain")
