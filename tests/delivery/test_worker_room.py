"""The worker's in-memory room: per hook 16 x its in-flight cap, and all hooks' backlogs together at most half
of the worker's queue, so slow hooks cannot take the room the others' fresh deliveries need."""

from __future__ import annotations

import asyncio
from typing import Any

from switchhook.delivery.worker import PARKED_PER_SLOT, DeliveryWorker
from switchhook.domain.breaker import Breakers, Health
from switchhook.domain.hooks import Hook
from switchhook.services.events import Job


class Hanging:
    """A pipeline whose requests never finish: what is started stays in flight, the rest parks."""

    async def attempt(self, job: Job) -> Any:
        await asyncio.Event().wait()


def jobs(hook_id: str, count: int) -> list[Job]:
    hook = Hook.compile(hook_id, "d.example", {"event": "DTMF", "enable": True, "action": {"url": "http://x.test/"}})
    return [Job(f"{hook_id}-{n}", f"e{n}", hook, {}, "DTMF", 0, 0.0, None) for n in range(count)]


async def test_hook_room_is_per_hook_and_bounded_for_all_hooks_together() -> None:
    worker = DeliveryWorker(
        None,  # type: ignore[arg-type]  # hook_room and dispatch never touch the store
        Hanging(),  # type: ignore[arg-type]
        lease_s=90, max_in_flight=100, max_in_flight_per_hook=1, poll_interval_s=1, max_queued=40,
    )  # fmt: skip
    backlog = PARKED_PER_SLOT  # cap 1
    try:
        assert worker.hook_room("h1") == backlog
        worker.submit(jobs("h1", backlog + 1))  # one in flight, the rest parked
        assert (worker.in_flight, worker.hook_room("h1"), worker.hook_room("h2")) == (1, 0, backlog)
        worker.submit(jobs("h2", 5))  # 16 + 4 parked: half of max_queued
        assert worker.hook_room("h2") == 0 and worker.hook_room("h3") == 0  # the rest is kept for others
    finally:
        for task in list(worker._sends):
            task.cancel()
        await asyncio.gather(*worker._sends, return_exceptions=True)


async def test_only_a_paused_hook_or_one_with_its_own_backlog_full_is_shelved() -> None:
    """Room taken by other hooks' backlogs is not a hook's doing: its deliveries stay due (claimed as soon as there
    is room), never shelved for minutes behind someone else's slow endpoint."""
    breakers = Breakers(1, 60.0, 60.0)
    worker = DeliveryWorker(
        None,  # type: ignore[arg-type]  # the decisions never touch the store
        Hanging(),  # type: ignore[arg-type]
        lease_s=90, max_in_flight=100, max_in_flight_per_hook=1, poll_interval_s=1, max_queued=40, breakers=breakers,
    )  # fmt: skip
    try:
        worker.submit(jobs("h1", PARKED_PER_SLOT + 1))  # its own backlog full
        assert worker.hook_room("h1") == 0 and worker.shelves("h1")
        worker.submit(jobs("h2", 5))  # all backlogs together: half of max_queued
        assert worker.hook_room("h3") == 0 and not worker.shelves("h3")
        breakers.record("h4", Health.UNHEALTHY, 0.0)  # its endpoint paused
        assert worker.hook_room("h4") == 0 and worker.shelves("h4")
    finally:
        for task in list(worker._sends):
            task.cancel()
        await asyncio.gather(*worker._sends, return_exceptions=True)
