"""A paused hook's probe schedule belongs to one timer per hook, and every cooldown ends in a probe: also when the
loop's timer fires before the breaker's clock says the cooldown is over, and when the store could not hand out
the probe. (tests/e2e/test_breaker.py repeats the whole scenario on uvloop, where the first happens by itself.)"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import pytest

from switchhook.core.breaker import Breakers
from switchhook.core.errors import Unavailable
from switchhook.core.hooks import Hook
from switchhook.core.retry import Retry
from switchhook.delivery import worker as worker_module
from switchhook.delivery.pipeline import AttemptReport
from switchhook.delivery.sender import HttpResult
from switchhook.delivery.worker import DeliveryWorker
from switchhook.services.events import Job
from switchhook.store.base import AttemptRow, Fair, Finish
from tests.support.fake_store import TakesShelvesOneByOne
from tests.support.waiting import eventually

HOOK = Hook.compile("h", "d.example", {"event": "DTMF", "enable": True, "action": {"url": "http://x.test/"}})


def job(n: int) -> Job:
    return Job(f"d{n}", f"e{n}", HOOK, {}, "DTMF", 0, 0.0, None)


class Down:
    """A pipeline whose endpoint answers every attempt with a 503 (retry in a minute)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.attempts: list[str] = []

    async def attempt(self, job: Job) -> AttemptReport:
        now = self.clock()
        self.attempts.append(job.delivery_id)
        row = AttemptRow(job.delivery_id, job.attempts + 1, now, 1.0, 503, None, None)
        finish = Finish(job.delivery_id, "pending", job.attempts + 1, now + 60, 503, None, row)
        return AttemptReport(finish, Retry(now + 60, "HTTP 503"), None, HttpResult(503))


class Shelf(TakesShelvesOneByOne):
    """The deliveries service as a worker with a paused hook uses it: its shelf hands out one job per claim
    (after `failures` failed claims); nothing else is due."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.claims = 0

    async def claim_shelved(self, worker_id: str, hook_id: str, limit: int, lease_s: float) -> tuple[list[Job], int]:
        self.claims += 1
        if self.failures:
            self.failures -= 1
            raise Unavailable("the database is down")
        return [job(1000 + self.claims)], 1

    async def claim(
        self, worker_id: str, limit: int, lease_s: float, skip_hooks: Sequence[str] = (), fair: Fair | None = None
    ) -> list[Job]:
        return []

    async def shelved_hooks(self) -> list[str]:
        return []

    async def reshelve(self, hook_id: str, shelve_s: float) -> int:
        return 0

    async def shelve(self, worker_id: str, delivery_ids: Sequence[str], shelve_s: float) -> None: ...
    async def record(self, results: Sequence[Finish], worker_id: str | None) -> None: ...
    async def extend(self, worker_id: str, delivery_ids: Sequence[str], lease_s: float) -> None: ...
    async def release(self, worker_id: str | None) -> int:
        return 0

    async def disable_hook(self, hook: Hook, reason: str) -> None: ...


@asynccontextmanager
async def started(shelf: Shelf, pipeline: Down, clock: Callable[[], float]) -> AsyncIterator[DeliveryWorker]:
    worker = DeliveryWorker(
        shelf,
        pipeline,
        lease_s=90, max_in_flight=10, max_in_flight_per_hook=1, poll_interval_s=1,
        breakers=Breakers(2, 0.05, 0.1), clock=clock,
    )  # fmt: skip
    worker.start()
    try:
        yield worker
    finally:
        await worker.stop(grace_s=1)


async def test_a_timer_firing_before_the_breakers_clock_ends_the_cooldown_still_ends_in_a_probe() -> None:
    """The worker's clock runs at half the loop's speed: every cooldown timer fires when, by the breaker's clock,
    half the cooldown is left (uvloop's timers fire up to a millisecond early in the same way). Each must still
    end in a probe, not in "still cooling down" and nothing."""
    start_s, loop_start = time.time(), time.monotonic()

    def clock() -> float:
        return start_s + (time.monotonic() - loop_start) / 2

    pipeline, shelf = Down(clock), Shelf()
    async with started(shelf, pipeline, clock) as worker:
        worker.submit([job(1), job(2), job(3)])  # two failures pause the hook; the third waits as its first probe
        await eventually(
            lambda: len(pipeline.attempts) >= 2 + 4,  # four probes: 0.05 + 3 x 0.1 s of the breaker's clock
            "a probe at the end of each cooldown",
            details=lambda: f"attempts: {pipeline.attempts}",
        )
    assert pipeline.attempts[:3] == ["d1", "d2", "d3"]
    assert shelf.claims >= 3  # the later probes came from the hook's shelf


async def test_a_probe_the_store_could_not_hand_out_is_asked_for_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "PROBE_RETRY_S", 0.05)
    """The shelf claim that should bring the probe fails (the database is down a moment): the timer tries again,
    rather than leaving the hook paused until its shelf's horizon."""
    pipeline, shelf = Down(time.time), Shelf(failures=1)
    async with started(shelf, pipeline, time.time) as worker:
        worker.submit([job(1), job(2)])  # both fail: the hook is paused with no probe in memory
        await eventually(
            lambda: len(pipeline.attempts) >= 3,
            "a probe from the shelf after the failed claim",
            details=lambda: f"attempts: {pipeline.attempts}, claims: {shelf.claims}",
        )
    assert shelf.claims >= 2  # the first claim failed, the next one brought the probe
