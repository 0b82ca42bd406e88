"""The HTTP client of deliveries: one aiohttp session, explicit timeouts, no redirects, guarded egress."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from switchhook.delivery.egress import EgressPolicy, EgressRefused, GuardedResolver, refused_reason

MAX_RESPONSE_BYTES = 4096


@dataclass(slots=True)
class HttpResult:
    """What one HTTP exchange produced; `terminal` errors are never retried (egress refusal, bad URL)."""

    status: int | None
    raw_headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive for real responses
    body: bytes = b""
    error: str | None = None
    terminal: bool = False
    duration_ms: float = 0.0

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(str(k), v) for k, v in self.raw_headers.items()]

    def header(self, name: str) -> str | None:
        return self.raw_headers.get(name)


class Sender:
    def __init__(
        self, policy: EgressPolicy, *, connect_timeout_s: float, max_connections: int, user_agent: str
    ) -> None:
        self._policy = policy
        self._connect_timeout_s = connect_timeout_s
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        # Per-request parsing is a measurable share of a delivery's CPU: hooks reuse a few URLs and timeouts.
        self._targets: dict[str, URL] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                resolver=GuardedResolver(self._policy),
                ttl_dns_cache=30,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                headers={"User-Agent": self._user_agent},
                skip_auto_headers=("Content-Type",),
            )
        return self._session

    async def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout_s: float,
        params: dict[str, str] | None = None,
    ) -> HttpResult:
        """One request; never raises for network trouble, returns it as an HttpResult."""
        started = time.perf_counter()
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
            async with self._client().request(
                method,
                target,
                headers=headers,
                data=body,
                params=params,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                excerpt = await response.content.read(MAX_RESPONSE_BYTES)
                return HttpResult(
                    response.status,
                    response.headers,
                    excerpt,
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
        except EgressRefused as exc:
            return _failed(started, f"egress refused: {exc}", terminal=True)
        except TimeoutError:
            return _failed(started, f"timeout after {timeout_s:g} s")
        except aiohttp.ClientError as exc:
            reason = refused_reason(exc)
            if reason:
                return _failed(started, f"egress refused: {reason}", terminal=True)
            return _failed(started, f"{type(exc).__name__}: {exc}"[:500])
        except (OSError, ValueError) as exc:
            return _failed(started, f"{type(exc).__name__}: {exc}"[:500])

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _failed(started: float, error: str, terminal: bool = False) -> HttpResult:
    return HttpResult(None, error=error, terminal=terminal, duration_ms=(time.perf_counter() - started) * 1000)
