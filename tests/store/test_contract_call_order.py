"""The store contract for ordered hooks (issue 14, item 3): X-Call-Sequence numbers per (hook, call), durable and
taken once per delivery, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

from switchhook.store.base import NewDelivery, Store
from tests.store.test_contract import NOW, A, event_row, hook_id, store

__all__ = ["store"]  # the fixture, run on both backends


async def deliveries_of(store: Store, hook: str, call: str, count: int) -> list[str]:
    events = [event_row() for _ in range(count)]
    rows = [
        NewDelivery("msg_" + uuid.uuid4().hex, e.id, hook, A, NOW, None, None, None, call, n, None)
        for n, e in enumerate(events)
    ]
    async with store.transaction() as tx:
        await tx.store_events(events, [(rows, NOW)])
    return [r.id for r in rows]


async def test_numbers_run_1_2_3_per_hook_and_call_and_a_numbered_delivery_keeps_its_own(store: Store) -> None:
    hook, other_hook = hook_id(), hook_id()
    a1, a2, a3 = await deliveries_of(store, hook, "call-a", 3)
    (b1,) = await deliveries_of(store, hook, "call-b", 1)
    (c1,) = await deliveries_of(store, other_hook, "call-a", 1)
    async with store.transaction() as tx:
        assert await tx.number_calls([(a2, hook, "call-a"), (b1, hook, "call-b")]) == {a2: 1, b1: 1}
    async with store.transaction() as tx:  # a retry of a2 asks again: same number, the counter does not move
        assert await tx.number_calls([(a2, hook, "call-a"), (a1, hook, "call-a")]) == {a2: 1, a1: 2}
    async with store.transaction() as tx:
        assert await tx.number_calls([(a3, hook, "call-a"), (c1, other_hook, "call-a")]) == {a3: 3, c1: 1}
        assert await tx.number_calls([]) == {}


async def test_concurrent_numbering_of_one_call_never_hands_out_a_number_twice(store: Store) -> None:
    hook = hook_id()
    ids = await deliveries_of(store, hook, "call", 8)

    async def number(delivery_id: str) -> int:
        async with store.transaction() as tx:
            return (await tx.number_calls([(delivery_id, hook, "call")]))[delivery_id]

    numbers = await asyncio.gather(*(number(i) for i in ids + ids))
    assert sorted(set(numbers)) == list(range(1, 9))
    assert numbers[:8] == numbers[8:]  # each delivery got one number, whoever asked
