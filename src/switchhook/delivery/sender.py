"""Outgoing HTTP: a connection pool per domain, explicit timeouts, GET-only redirects, guarded egress."""

from __future__ import annotations

import asyncio
import errno
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from switchhook.core.hooks import is_connection_header
from switchhook.delivery.egress import EgressPolicy, EgressRefused, GuardedResolver, refused_reason

MAX_RESPONSE_BYTES = 4096
#: Redirects a GET follows. Webitel's `request` client followed up to 10, for GET only (request/lib/redirect.js).
MAX_REDIRECTS = 5
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
#: Not sent on to another host after a redirect (request/lib/redirect.js dropped `authorization` the same way).
_CREDENTIALS = frozenset(("authorization", "cookie", "proxy-authorization"))
_RESET_ERRNOS = frozenset((errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED))
#: Connection pools kept open at once (one per domain); past this the least recently used idle one is closed.
MAX_POOLS = 256


@dataclass(slots=True)
class HttpResult:
    """What one HTTP exchange produced; `terminal` errors are never retried (egress refusal, bad URL)."""

    status: int | None
    raw_headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive for real responses
    body: bytes = b""
    error: str | None = None
    terminal: bool = False
    duration_ms: float = 0.0
    #: No HTTP answer, and why (core/failover.py NO_ANSWER_REASONS): `timeout`, `refused`, `reset`, `unreachable`.
    no_answer: str | None = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(str(k), v) for k, v in self.raw_headers.items()]

    def header(self, name: str) -> str | None:
        return self.raw_headers.get(name)


@dataclass(slots=True)
class _Pool:
    """One domain's session: its own keep-alive connections, never handed to another domain's request."""

    session: aiohttp.ClientSession
    in_flight: int = 0


class Sender:
    """Sends each request on its domain's own connection pool.

    A keep-alive connection is never shared between domains: when one tenant's request left a connection out
    of step (a framing header, a server that misreads a body), the next request on it would be read as part of
    the first, and with another tenant's credentials and signature (RELIABILITY.md, hostile tenants). Up to
    `max_pools` pools stay open; past that the least recently used idle one is closed.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        connect_timeout_s: float,
        max_connections: int,
        user_agent: str,
        max_pools: int = MAX_POOLS,
    ) -> None:
        self._policy = policy
        self._connect_timeout_s = connect_timeout_s
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._max_pools = max_pools
        self._pools: OrderedDict[str, _Pool] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()
        # Per-request parsing is a measurable share of a delivery's CPU: hooks reuse a few URLs and timeouts.
        self._targets: dict[str, URL] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _pool(self, name: str) -> _Pool:
        pool = self._pools.get(name)
        if pool is not None:
            self._pools.move_to_end(name)
            return pool
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            resolver=GuardedResolver(self._policy),
            ttl_dns_cache=30,
            enable_cleanup_closed=True,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            headers={"User-Agent": self._user_agent},
            skip_auto_headers=("Content-Type",),
        )
        pool = self._pools[name] = _Pool(session)
        if len(self._pools) > self._max_pools:
            idle = next((key for key, p in self._pools.items() if p.in_flight == 0 and key != name), None)
            if idle is not None:
                task = asyncio.create_task(self._pools.pop(idle).session.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        return pool

    def pools(self) -> int:
        """How many connection pools are open (one per recently sending domain)."""
        return len(self._pools)

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout_s: float,
        params: dict[str, str] | None = None,
        max_body_bytes: int | None = None,
        pool: str = "",
    ) -> HttpResult:
        """One request on `pool`'s connections (the hook's domain); never raises for network trouble, returns
        it as an HttpResult.

        The response body is a 4 KiB excerpt, or with `max_body_bytes` all of it (more is an error: status None).
        A GET follows up to MAX_REDIRECTS redirects, every hop through the egress guard; other methods never do.
        Framing and hop-by-hop headers are never sent from `headers`: aiohttp frames the request itself.
        """
        started = time.perf_counter()
        if any(is_connection_header(name) for name in headers):
            headers = {k: v for k, v in headers.items() if not is_connection_header(k)}
        connections = self._pool(pool)
        connections.in_flight += 1
        try:
            return await self._send(
                connections.session, method, url, headers, body, timeout_s, params, max_body_bytes, started
            )
        finally:
            connections.in_flight -= 1

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout_s: float,
        params: dict[str, str] | None,
        max_body_bytes: int | None,
        started: float,
    ) -> HttpResult:
        try:
            target = self._targets.get(url)
            if target is None:
                target = URL(url, encoded=True)
                if target.host is None or target.scheme not in ("http", "https"):
                    return HttpResult(None, error=f"invalid destination URL {url!r}", terminal=True)
                self._policy.check_literal(target.host)
                if len(self._targets) > 10_000:
                    self._targets.clear()
                self._targets[url] = target
            timeout = self._timeouts.get(timeout_s)
            if timeout is None:
                timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(self._connect_timeout_s, timeout_s))
                self._timeouts[timeout_s] = timeout
            hops = 0
            while True:
                async with session.request(
                    method,
                    target,
                    headers=headers,
                    data=body,
                    params=params,
                    allow_redirects=False,
                    timeout=timeout,
                ) as response:
                    location = response.headers.get("Location") if method == "GET" else None
                    if location is None or response.status not in _REDIRECTS:
                        return await _result(response, started, max_body_bytes)
                if hops == MAX_REDIRECTS:
                    return _failed(started, f"more than {MAX_REDIRECTS} redirects (the last to {location[:200]!r})")
                hops += 1
                target, headers = self._redirect(target, location, headers)
                params = None  # the Location carries its own query
                left_s = timeout_s - (time.perf_counter() - started)
                if left_s <= 0:
                    raise TimeoutError
                timeout = aiohttp.ClientTimeout(total=left_s, sock_connect=min(self._connect_timeout_s, left_s))
        except EgressRefused as exc:
            return _failed(started, f"egress refused: {exc}", terminal=True)
        except _BadRedirect as exc:
            return _failed(started, str(exc), terminal=True)
        except TimeoutError:
            return _failed(started, f"timeout after {timeout_s:g} s", no_answer="timeout")
        except aiohttp.ClientError as exc:
            reason = refused_reason(exc)
            if reason:
                return _failed(started, f"egress refused: {reason}", terminal=True)
            return _failed(started, f"{type(exc).__name__}: {exc}"[:500], no_answer=_no_answer(exc))
        except (OSError, ValueError) as exc:
            return _failed(started, f"{type(exc).__name__}: {exc}"[:500], no_answer=_no_answer(exc))

    def _redirect(self, current: URL, location: str, headers: dict[str, str]) -> tuple[URL, dict[str, str]]:
        """The next hop of a redirect: resolved against the current URL, checked like a hook's own URL."""
        try:
            target = current.join(URL(location))
        except (ValueError, TypeError):
            raise _BadRedirect(f"redirect to an invalid URL {location[:200]!r}") from None
        if target.host is None or target.scheme not in ("http", "https"):
            raise _BadRedirect(f"redirect to a non-http(s) URL {location[:200]!r}")
        self._policy.check_literal(target.host)
        if target.host != current.host:
            headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIALS}
        return target, headers

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.session.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class _BadRedirect(Exception):
    """A Location a GET cannot follow; a terminal failure, like an invalid hook URL."""


async def _result(response: aiohttp.ClientResponse, started: float, max_body_bytes: int | None) -> HttpResult:
    if max_body_bytes is None:
        body = await response.content.read(MAX_RESPONSE_BYTES)
    else:
        whole = await _read_whole(response, max_body_bytes)
        if whole is None:
            return _failed(started, f"response body larger than {max_body_bytes} bytes (HTTP {response.status})")
        body = whole
    return HttpResult(response.status, response.headers, body, duration_ms=(time.perf_counter() - started) * 1000)


async def _read_whole(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body, or None when it is larger than `limit` bytes (stops reading there)."""
    if response.content_length is not None and response.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(65_536):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _failed(started: float, error: str, terminal: bool = False, no_answer: str | None = None) -> HttpResult:
    duration_ms = (time.perf_counter() - started) * 1000
    return HttpResult(None, error=error, terminal=terminal, duration_ms=duration_ms, no_answer=no_answer)


def _no_answer(exc: BaseException) -> str | None:
    """Why a request got no answer (a hook's X-Failover-Reason), or None for a failure that is not the network's."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "refused" if isinstance(exc.os_error, ConnectionRefusedError) else "unreachable"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | ConnectionResetError):
        return "reset"
    if isinstance(exc, aiohttp.ClientOSError | OSError):
        return "reset" if getattr(exc, "errno", None) in _RESET_ERRNOS else "unreachable"
    return None
