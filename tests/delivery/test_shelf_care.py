"""The worker's care for shelves (see store.base.SHELVED): a paused hook's shelf is pushed out on a timer whatever
its cooldown, and shelves no worker here knows of are looked for (at start; with a shared store, now and then)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from switchhook.core.breaker import Breakers, Health
from switchhook.core.hooks import Hook
from switchhook.delivery.pipeline import AttemptReport
from switchhook.delivery.worker import SHELF_CARE_S, DeliveryWorker
from switchhook.services.events import Job
from switchhook.store.base import Fair, Finish
from tests.support.fake_store import TakesShelvesOneByOne
from tests.support.waiting import eventually


class ShelfStore(TakesShelvesOneByOne):
    """The deliveries service as the poll loop uses it, recording the calls; nothing is ever due or on a shelf."""

    def __init__(self, shelved: Sequence[str]) -> None:
        self.shelved = list(shelved)
        self.calls: list[tuple[str, Any]] = []

    async def shelved_hooks(self) -> list[str]:
        self.calls.append(("look", None))
        return self.shelved

    async def reshelve(self, hook_id: str, shelve_s: float) -> int:
        self.calls.append(("reshelve", hook_id))
        return 0

    async def claim_shelved(self, worker_id: str, hook_id: str, limit: int, lease_s: float) -> tuple[list[Job], int]:
        self.calls.append(("take", hook_id))
        return [], 0

    async def claim(
        self, worker_id: str, limit: int, lease_s: float, skip_hooks: Sequence[str] = (), fair: Fair | None = None
    ) -> list[Job]:
        self.calls.append(("claim", list(skip_hooks)))
        return []

    async def shelve(self, worker_id: str, delivery_ids: Sequence[str], shelve_s: float) -> None: ...
    async def record(self, results: Sequence[Finish], worker_id: str | None) -> None: ...
    async def extend(self, worker_id: str, delivery_ids: Sequence[str], lease_s: float) -> None: ...
    async def release(self, worker_id: str | None) -> int:
        return 0

    async def disable_hook(self, hook: Hook, reason: str) -> None: ...

    def turns(self) -> int:
        return sum(1 for call, _ in self.calls if call == "claim")


class NothingSent:
    async def attempt(self, job: Job) -> AttemptReport:
        raise AssertionError("nothing is leased, so nothing is sent")


async def test_a_paused_hooks_shelf_is_pushed_out_on_a_timer_and_others_shelves_adopted() -> None:
    breakers = Breakers(1, 3600.0, 3600.0)  # a cooldown far past half a shelf's horizon: no reopening in time
    clock = [1000.0]
    store = ShelfStore(["paused", "left-by-another"])
    care = DeliveryWorker(
        store, NothingSent(),
        lease_s=90, max_in_flight=10, max_in_flight_per_hook=1, poll_interval_s=3600, breakers=breakers,
        clock=lambda: clock[0], shared_store=True,
    )  # fmt: skip
    breakers.record("paused", Health.UNHEALTHY, clock[0])
    care.start()
    try:
        await eventually(lambda: store.turns() == 1, "the poll loop's first turn")
        # The first turn adopts both shelves: the paused hook's is left alone (no room), the other's is taken.
        assert store.calls == [("look", None), ("take", "left-by-another"), ("claim", ["paused"])]
        assert care.admission.shelves_known() == ["paused"]  # the other's came back empty: forgotten

        clock[0] += SHELF_CARE_S / 2
        care.poke()
        await eventually(lambda: store.turns() == 2, "the second turn")
        assert store.calls[3:] == [("claim", ["paused"])]  # no care yet

        clock[0] += SHELF_CARE_S / 2
        care.poke()
        await eventually(lambda: store.turns() == 3, "the third turn")
        # Only the paused hook's shelf moves; the look for others' shelves finds the other one again.
        assert store.calls[4:] == [
            ("reshelve", "paused"),
            ("look", None),
            ("take", "left-by-another"),
            ("claim", ["paused"]),
        ]
    finally:
        await care.stop(grace_s=1)
