"""The worker's care for shelves (see store.base.SHELVED): a paused hook's shelf is pushed out on a timer whatever
its cooldown, and shelves no worker here knows of are looked for (at start; with a shared store, now and then)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from switchhook.delivery.worker import SHELF_CARE_S, DeliveryWorker
from switchhook.domain.breaker import Breakers, Health


class ShelfStore:
    """The deliveries service as the shelf care uses it, recording the calls."""

    def __init__(self, shelved: Sequence[str]) -> None:
        self.shelved = list(shelved)
        self.calls: list[tuple[str, Any]] = []

    async def shelved_hooks(self) -> list[str]:
        self.calls.append(("look", None))
        return self.shelved

    async def reshelve(self, hook_id: str, shelve_s: float) -> int:
        self.calls.append(("reshelve", hook_id))
        return 0


def worker(store: ShelfStore, breakers: Breakers, clock: list[float], shared: bool) -> DeliveryWorker:
    return DeliveryWorker(
        store,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]  # nothing is sent
        lease_s=90, max_in_flight=10, max_in_flight_per_hook=1, poll_interval_s=1, breakers=breakers,
        clock=lambda: clock[0], shared_store=shared,
    )  # fmt: skip


async def test_a_paused_hooks_shelf_is_pushed_out_on_a_timer_and_others_shelves_adopted() -> None:
    breakers = Breakers(1, 3600.0, 3600.0)  # a cooldown far past half a shelf's horizon: no reopening in time
    clock = [1000.0]
    store = ShelfStore(["paused", "left-by-another"])
    care = worker(store, breakers, clock, shared=True)
    breakers.record("paused", Health.UNHEALTHY, clock[0])

    await care._care_for_shelves(look_for_others=True)  # the first turn: adopts both
    assert store.calls == [("look", None)]
    assert set(care._shelved) == {"paused", "left-by-another"}

    clock[0] += SHELF_CARE_S / 2
    await care._care_for_shelves(look_for_others=True)
    assert store.calls == [("look", None)]  # not yet

    clock[0] += SHELF_CARE_S / 2
    await care._care_for_shelves(look_for_others=True)
    assert store.calls[1:] == [("reshelve", "paused"), ("look", None)]  # only the paused hook's shelf moves
