"""The login guard: the per-name slow-down of password guessing and the process-wide bound on password checks.

Why both, and why neither waits (RELIABILITY.md, hostile tenants):

- A password check (argon2) costs ~190 ms of CPU by design. Held open with a sleep, the old slow-down let
  30 concurrent guesses for one name all run after the same 4 s wait; and a flood of checks for many names
  (165 in 15 s) took the CPU that other tenants' ingest needed (its p99 went to 3.25 s).
- `LoginThrottle` counts a name's attempts including those still in flight, so concurrency buys a guesser
  nothing: after `free_failures` tries within `window_s`, the next try is allowed only 1 s after the last one
  began, then 2 s, 4 s ... (at most `max_delay_s`); a try before that is refused at once with the seconds to
  wait (429 + Retry-After), without a password check.
- `PasswordChecks` runs checks on its own `concurrency` threads, so at most that many argon2 computations run
  in the process whatever arrives, and at most `queue` more wait for one; a check beyond that is refused at
  once (429 + Retry-After) instead of queueing without bound. A cancelled request (the client went away)
  keeps its thread until the check ends, so disconnecting never frees a slot early.

What fails whom: while a name is slowed down its owner waits too (a slow-down, never a lockout; success
resets the name). While checks are saturated, logins of every name are refused for a second; the API's
other routes and ingest never wait for a password check.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from switchhook.core.errors import RateLimited

T = TypeVar("T")

_MAX_NAMES = 100_000  # forget settled names rather than grow forever


@dataclass(slots=True)
class _Name:
    failures: int = 0
    in_flight: int = 0
    window_start: float = 0.0
    last_try: float = 0.0


class LoginThrottle:
    """Per-name count of failed and in-flight login attempts, and when the next may begin. Pure state: the
    caller passes nothing but names, the clock is injected.

        begin(name) -> 0: a try may run now (it is in flight until `end`)
                    -> n: refused; the next try is allowed in n seconds (never less than 1)
        end(name, succeeded): a success forgets the name's failures; a failure counts one more;
                              `succeeded=None` (the check never ran) counts nothing
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        free_failures: int = 5,
        window_s: float = 900,
        max_delay_s: float = 30.0,
    ) -> None:
        self._clock = clock
        self._free = free_failures
        self._window_s = window_s
        self._max_delay_s = max_delay_s
        self._names: dict[str, _Name] = {}

    def begin(self, name: str) -> int:
        now = self._clock()
        state = self._names.get(name)
        if state is None:
            if len(self._names) >= _MAX_NAMES:
                self._forget_settled()
            state = self._names[name] = _Name(window_start=now)
        elif state.in_flight == 0 and now - state.window_start > self._window_s:
            state.failures, state.window_start = 0, now  # the window passed: the name starts afresh
        extra = state.failures + state.in_flight - self._free
        if extra >= 0:
            allowed_at = state.last_try + min(self._max_delay_s, 2.0**extra)
            if now < allowed_at:
                return max(1, math.ceil(allowed_at - now))
        state.in_flight += 1
        state.last_try = now
        return 0

    def end(self, name: str, succeeded: bool | None) -> None:
        state = self._names.get(name)
        if state is None:  # forgotten while in flight (the table overflowed): nothing to count against
            return
        state.in_flight = max(0, state.in_flight - 1)
        if succeeded:
            state.failures = 0
        elif succeeded is False:
            state.failures += 1
        if state.failures == 0 and state.in_flight == 0:
            del self._names[name]

    def _forget_settled(self) -> None:
        for name in [n for n, s in self._names.items() if s.in_flight == 0]:
            del self._names[name]


class PasswordChecks:
    """Password hashing and checking on `concurrency` threads of their own, at most `queue` more waiting;
    counts what ran and what was refused for /metrics (it is a Prometheus collector)."""

    def __init__(self, concurrency: int = 2, queue: int = 16) -> None:
        self._concurrency = concurrency
        self._limit = concurrency + queue
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="password-check")
        self._lock = threading.Lock()
        self._pending = 0  # submitted and not finished: running + waiting
        self._running = 0
        self.peak_running = 0  # the most checks that ever ran at once
        self.checks = 0
        self.refused: dict[str, int] = {"slow_down": 0, "busy": 0}

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on a check thread; RateLimited at once when `concurrency + queue` are already taken."""
        with self._lock:
            if self._pending >= self._limit:
                self.refused["busy"] += 1
                raise RateLimited("Too many logins at once: retry later.", 1)
            self._pending += 1
        future: Future[T] = self._executor.submit(self._timed, fn, *args)
        future.add_done_callback(self._finished)  # when the thread is done, not when the caller gives up
        return await asyncio.wrap_future(future)

    def _timed(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            self._running += 1
            self.peak_running = max(self.peak_running, self._running)
            self.checks += 1
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._running -= 1

    def _finished(self, _future: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def collect(self) -> Iterator[Any]:
        checks = CounterMetricFamily("switchhook_password_checks", "Password hashes computed or checked")
        checks.add_metric([], self.checks)
        running = GaugeMetricFamily("switchhook_password_checks_running", "Password checks running now")
        running.add_metric([], self._running)
        peak = GaugeMetricFamily(
            "switchhook_password_checks_running_max",
            f"The most password checks that ran at once since start (bound: {self._concurrency})",
        )
        peak.add_metric([], self.peak_running)
        refused = CounterMetricFamily(
            "switchhook_logins_refused",
            "Logins answered 429 without a check: the name slowed down, or checks saturated",
            labels=["reason"],
        )
        for reason, count in sorted(self.refused.items()):
            refused.add_metric([reason], count)
        yield from (checks, running, peak, refused)
