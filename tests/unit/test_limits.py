"""Abuse limits as pure logic: the per-domain ingest token bucket (the login slow-down: test_login_guard.py)."""

from __future__ import annotations

import pytest

from switchhook.core.errors import RateLimited
from switchhook.services.limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_zero_rate_means_unlimited() -> None:
    limiter = RateLimiter(0)
    for _ in range(10_000):
        limiter.take("d", 100)


def test_bucket_allows_a_burst_then_refuses_with_the_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(10, burst=20, clock=clock)
    limiter.take("d", 20)
    with pytest.raises(RateLimited) as refused:
        limiter.take("d", 5)
    assert refused.value.retry_after_s == 1  # 5 tokens at 10/s
    clock.now += 0.5
    limiter.take("d", 5)  # refilled
    limiter.take("other", 20)  # domains have their own buckets


def test_a_batch_costs_every_event_and_one_larger_than_the_burst_is_refused_whole() -> None:
    """A batch used to cost min(n, burst): batches of 5,000 at 10/s got 2,325 events/s in (issue 13, item 7)."""
    clock = Clock()
    limiter = RateLimiter(10, burst=20, clock=clock)
    with pytest.raises(RateLimited) as refused:
        limiter.take("d", 500)  # never fits: refused, and says why
    assert "more than the 20" in refused.value.message
    limiter.take("d", 20)  # nothing was consumed by the refused batch
    clock.now += 1.0  # 10 tokens back
    with pytest.raises(RateLimited) as over:
        limiter.take("d", 15)
    assert over.value.retry_after_s == 1  # 5 more tokens at 10/s
    limiter.take("d", 10)
    with pytest.raises(RateLimited):
        limiter.take("d", 1)
