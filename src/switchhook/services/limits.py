"""Abuse limits: the per-domain ingest rate (a token bucket). The login slow-down is services/login_guard.py."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from switchhook.core.errors import RateLimited


class RateLimiter:
    """A token bucket per key: `rate_per_s` sustained, bursts up to `burst` (default twice the rate). rate 0 =
    unlimited.

    Every event costs one token, in a batch too: a batch cost `min(n, burst)` once, and batches of 5,000 got
    ~230 times the rate in (RELIABILITY.md, hostile tenants). A batch over what is left is refused whole, with
    the seconds until it would fit; one larger than the burst never fits and says so.
    """

    def __init__(self, rate_per_s: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        self._rate = rate_per_s
        self._burst = burst if burst is not None else max(1.0, rate_per_s * 2)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, amount: float = 1.0) -> None:
        """Consume `amount` or raise RateLimited with the seconds until it would fit (nothing consumed)."""
        if self._rate <= 0:
            return
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < amount:
            self._buckets[key] = (tokens, now)
            if amount > self._burst:
                wait = math.ceil((self._burst - tokens) / self._rate)
                raise RateLimited(
                    f"Too many events for domain {key}: a batch of {amount:g} events is more than the "
                    f"{self._burst:g} it may send at once; send smaller batches.",
                    max(1, wait),
                )
            wait = math.ceil((amount - tokens) / self._rate)
            raise RateLimited(f"Too many events for domain {key}: retry later.", max(1, wait))
        self._buckets[key] = (tokens - amount, now)
        if len(self._buckets) > 100_000:  # forget idle keys rather than grow forever
            self._buckets.clear()
