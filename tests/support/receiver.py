"""A real HTTP receiver for tests: records every request and answers from a script (svix TestReceiver)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def url(self) -> str:
        return self.path + ("?" + self.query if self.query else "")

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    gate: asyncio.Event | None = None  # when given, the answer waits until the test opens it


class Receiver:
    """`script` answers requests in order (ints are statuses); after it runs out, `default` answers."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[Reply | int] = []
        self.default = Reply()
        self.routes: dict[str, Reply] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._arrived = asyncio.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return self.base_url + path

    def answer(self, *replies: Reply | int) -> None:
        self.script.extend(replies)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Received(request.method, request.path, request.query_string, dict(request.headers), body, time.time())
        )
        self._arrived.set()
        reply = self.routes.get(request.path) or (self.script.pop(0) if self.script else self.default)
        if isinstance(reply, int):
            reply = Reply(reply)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.gate is not None:
            await reply.gate.wait()
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, count: int, timeout_s: float = 10.0, path: str | None = None) -> Sequence[Received]:
        """Wait until `count` requests (to `path`, when given) have arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.on(path) if path else self.requests
            if len(got) >= count:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"expected {count} requests, got {len(got)}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.2))
