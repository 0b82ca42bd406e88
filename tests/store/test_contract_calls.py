"""The store contract for calls (issue 14): a delivery's call id and event order key, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from switchhook.store.base import NewDelivery, Store
from tests.store.test_contract import NOW, A, claim, event_row, hook_id, store

__all__ = ["store"]  # the fixture, run on both backends

TS = 1_700_000_000_123_456  # Event-Date-Timestamp: microseconds since the epoch, past 2**32


def with_call(event_id: str, hook: str, call_id: str | None, ts: int | None, seq: int | None) -> NewDelivery:
    return NewDelivery("msg_" + uuid.uuid4().hex, event_id, hook, A, NOW, None, None, None, call_id, ts, seq)


async def test_a_delivery_keeps_its_call_and_event_order_key_through_every_write_path(store: Store) -> None:
    hook = hook_id()
    first, second, plain = event_row(), event_row(), event_row()
    inserted = with_call(first.id, hook, "call-1", TS, 2**40)
    stored = with_call(second.id, hook, "call-1", TS + 1, 7)
    callless = with_call(plain.id, hook, None, None, None)
    async with store.transaction() as tx:
        await tx.insert_events([first])
        await tx.insert_deliveries([inserted], NOW)
        await tx.store_events([second, plain], [([stored, callless], NOW)])  # SQLite's own write path
    async with store.transaction() as tx:
        rows = {d.id: await tx.get_delivery(A, d.id) for d in (inserted, stored, callless)}
    found = {i: (r.call_id, r.event_ts, r.event_seq) for i, r in rows.items() if r is not None}
    assert found == {
        inserted.id: ("call-1", TS, 2**40),
        stored.id: ("call-1", TS + 1, 7),
        callless.id: (None, None, None),
    }
    async with store.transaction() as tx:
        claimed = await tx.claim_due("w1", NOW, NOW + 30, 10)
    assert {(c.delivery.id, c.delivery.call_id, c.delivery.event_ts) for c in claimed} == {
        (inserted.id, "call-1", TS),
        (stored.id, "call-1", TS + 1),
        (callless.id, None, None),
    }


async def test_deliveries_written_without_a_call_have_none(store: Store) -> None:
    hook = hook_id()
    event = event_row()
    row = NewDelivery("msg_" + uuid.uuid4().hex, event.id, hook, A, NOW, None, None, None)
    async with store.transaction() as tx:
        await tx.store_events([event], [([row], NOW)])
    assert await claim(store, "w1", NOW) == [row.id]
    async with store.transaction() as tx:
        got = await tx.get_delivery(A, row.id)
    assert got is not None and (got.call_id, got.event_ts, got.event_seq) == (None, None, None)
