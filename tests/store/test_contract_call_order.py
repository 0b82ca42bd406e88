"""The store contract for ordered hooks (issue 14, item 3): X-Call-Sequence numbers per (hook, call), durable and
taken once per delivery, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

from switchhook.store.base import SHELVED, Fair, Finish, NewDelivery, Store
from switchhook.store.postgres import PostgresStore
from tests.store.test_contract import NOW, A, claim, done, event_row, hook_id, pg_store, store
from tests.support.waiting import eventually

__all__ = ["pg_store", "store"]  # the fixtures: `store` runs on both backends


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


async def call_line(
    store: Store, hook: str, call: str, order: list[int | None], leased_by: str | None = None, ordered: bool = True
) -> list[str]:
    """Deliveries of one call, one per event, with these Event-Date-Timestamps, inserted in the order given."""
    events = [event_row() for _ in order]
    rows = [
        NewDelivery(
            "msg_" + uuid.uuid4().hex,
            e.id,
            hook,
            A,
            NOW,
            None,
            leased_by,
            NOW + 30 if leased_by else None,
            call,
            ts,
            None,
            0 if ordered else None,
        )
        for e, ts in zip(events, order, strict=True)
    ]
    async with store.transaction() as tx:
        await tx.store_events(events, [(rows, NOW)])
    return [r.id for r in rows]


async def test_a_claim_takes_one_delivery_of_an_ordered_call_at_a_time_the_oldest_by_event_order(store: Store) -> None:
    hook, plain_hook = hook_id(), hook_id()
    late, first, none, middle = await call_line(store, hook, "c", [30, 10, None, 20])
    plain = await call_line(store, plain_hook, "c", [30, 10], ordered=False)  # unordered: as before, side by side
    (other_call,) = await call_line(store, hook, "other", [99])
    assert sorted(await claim(store, "w1", NOW + 1)) == sorted([first, *plain, other_call])
    assert await claim(store, "w2", NOW + 1) == []  # first is pending and unnumbered: the others wait behind it
    async with store.transaction() as tx:
        assert await tx.number_calls([(first, hook, "c")]) == {first: 1}
        await tx.finish([done(first, "pending", 1, 500, next_at=NOW + 5)], "w1", NOW + 1)  # a retry in 5 s
    assert await claim(store, "w2", NOW + 2) == []  # its head waits for its retry: nothing of the call goes
    assert await claim(store, "w2", NOW + 6) == [first]  # the head first, though a fresher one was due before
    async with store.transaction() as tx:
        await tx.finish([done(first, "delivered", 2)], "w2", NOW + 6)
    assert await claim(store, "w1", NOW + 7) == [middle]
    async with store.transaction() as tx:
        await tx.finish([done(middle, "failed", 1, 410)], "w1", NOW + 7)  # failed for good: the call goes on
    assert await claim(store, "w1", NOW + 8) == [late]
    async with store.transaction() as tx:
        await tx.finish([done(late, "expired", 0, None)], "w1", NOW + 8)
    assert await claim(store, "w1", NOW + 9) == [none]  # no timestamp: last


async def test_a_call_leased_to_one_worker_is_claimed_by_no_other(store: Store) -> None:
    hook = hook_id()
    (newer,) = await call_line(store, hook, "c", [20], leased_by="w1")  # the fast path leased it to w1
    (older,) = await call_line(store, hook, "c", [10])  # due, accepted later
    assert await claim(store, "w2", NOW + 1) == []
    assert await claim(store, "w1", NOW + 1) == [older]  # w1 holds the call: it may take the rest of it
    async with store.transaction() as tx:
        fair = await tx.claim_due("w2", NOW + 60, NOW + 90, 10, (), Fair(10, 10))  # w1's leases lapsed
    assert [c.delivery.id for c in fair] == [older]  # the fair claim keeps the gate too
    assert newer not in [c.delivery.id for c in fair]


async def test_ingest_lets_go_of_a_fresh_delivery_whose_call_has_others_not_leased_to_it(store: Store) -> None:
    hook = hook_id()
    (older,) = await call_line(store, hook, "waiting", [10])  # due in the store (a killed process's)
    (behind,) = await call_line(store, hook, "waiting", [20], leased_by="w1")
    await call_line(store, hook, "mine", [10], leased_by="w1")  # w1 holds the call: its fresh one stays
    (with_mine,) = await call_line(store, hook, "mine", [20], leased_by="w1")
    (alone,) = await call_line(store, hook, "alone", [20], leased_by="w1")
    (unordered,) = await call_line(store, hook, "waiting", [30], leased_by="w1", ordered=False)
    async with store.transaction() as tx:
        assert await tx.ungate_calls("w1", [behind, with_mine, alone, unordered]) == {behind}
    claimed = await claim(store, "w2", NOW + 1)
    assert older in claimed and behind not in claimed  # due again, behind the older one of its call


async def test_ingest_keeps_a_fresh_delivery_that_is_its_calls_first_with_the_call_leased_elsewhere_by_none(
    store: Store,
) -> None:
    """An event that arrives after a later one of its call (that one on the shelf) goes at once from the worker that
    leased it at ingest, rather than due, waiting for a poll; one whose call another worker holds is let go."""
    hook = hook_id()
    event = event_row()
    later = NewDelivery(
        "msg_" + uuid.uuid4().hex, event.id, hook, A, NOW + 600, None, SHELVED, None, "out", 20, None, 0
    )
    async with store.transaction() as tx:
        await tx.store_events([event], [([later], NOW)])
    (earlier,) = await call_line(store, hook, "out", [10], leased_by="w1")
    await call_line(store, hook, "held", [30], leased_by="w2")  # a later one, but another worker holds the call
    (first_here,) = await call_line(store, hook, "held", [10], leased_by="w1")
    async with store.transaction() as tx:
        assert await tx.ungate_calls("w1", [earlier, first_here]) == {first_here}
    async with store.transaction() as tx:  # the shelf's later one waits behind it (set behind by the take)
        assert await tx.claim_shelves("w3", [(hook, 5)], NOW, NOW + 30) == []


async def test_the_worker_that_settles_a_calls_delivery_takes_the_calls_next_and_no_other(store: Store) -> None:
    """claim_next_of, in the transaction that records a call's head: the call's first pending delivery, due (let
    through by this transaction, or let go at ingest) and not held by another worker, leased to the recording worker;
    no other call's, none on a shelf (its hook's room decides), none of a call another worker holds."""
    hook = hook_id()
    (head,) = await call_line(store, hook, "c", [10], leased_by="w1")
    second, third = await call_line(store, hook, "c", [20, 30])  # let go at ingest: due
    (other,) = await call_line(store, hook, "other", [5])
    (busy_head,) = await call_line(store, hook, "busy", [10], leased_by="w1")
    (busy_next,) = await call_line(store, hook, "busy", [20])
    await call_line(store, hook, "busy", [30], leased_by="w2")  # a later one held at another worker, at ingest
    (retried,) = await call_line(store, hook, "retried", [10], leased_by="w1")
    await call_line(store, hook, "retried", [20])
    assert await claim(store, "w3", NOW + 1) == [other]  # the calls' later ones set behind, out of every claim
    settled = [
        done(head, "delivered", 1),
        done(busy_head, "failed", 1, 410),
        done(retried, "pending", 1, 500, next_at=NOW + 100),
    ]
    async with store.transaction() as tx:
        await tx.finish(settled, "w1", NOW + 2)
        nexts = await tx.claim_next_of("w1", [head, busy_head, retried], NOW + 2, NOW + 32)
    assert [(c.delivery.id, c.payload != "{}") for c in nexts] == [(second, True)]  # with its event
    # w1 holds the call c (its third is behind); w2 holds the call busy: its next goes there, not to w1.
    assert await claim(store, "w2", NOW + 3) == [busy_next]
    async with store.transaction() as tx:
        await tx.finish([done(second, "delivered", 1)], "w1", NOW + 3)
        assert [c.delivery.id for c in await tx.claim_next_of("w1", [second], NOW + 3, NOW + 33)] == [third]
        assert await tx.claim_next_of("w1", [], NOW + 3, NOW + 33) == []


async def test_a_delivery_numbered_at_its_turn_that_expires_unsent_gives_its_number_back(store: Store) -> None:
    hook = hook_id()
    first, second, third = await call_line(store, hook, "c", [10, 20, 30], leased_by="w1")
    unsent = Finish(second, "expired", 0, NOW, None, "ttl expired before the attempt", None, return_number=True)
    async with store.transaction() as tx:
        assert await tx.number_calls([(first, hook, "c")]) == {first: 1}
        await tx.finish([done(first, "delivered", 1)], "w1", NOW)
        assert await tx.number_calls([(second, hook, "c")]) == {second: 2}  # its turn: numbered, waiting for a slot
        await tx.finish([unsent], "w1", NOW)  # its ttl passed before a slot came: never sent
        assert await tx.number_calls([(third, hook, "c")]) == {third: 2}  # no gap: the receiver sees 1, 2
        row = await tx.get_delivery(A, second)
        assert row is not None and (row.status, row.call_seq) == ("expired", 0)
        await tx.finish([done(third, "pending", 1, 500, next_at=NOW)], "w1", NOW)  # sent once, to be retried
    (fourth,) = await call_line(store, hook, "c", [40])
    assert await claim(store, "w1", NOW + 1) == [third]
    async with store.transaction() as tx:  # sent, then expired on its retry: the receiver saw 2, it keeps it
        await tx.finish([Finish(third, "expired", 1, NOW, None, "ttl expired before the attempt", None)], "w1", NOW)
        assert await tx.number_calls([(fourth, hook, "c")]) == {fourth: 3}
        await tx.finish([done(fourth, "delivered", 1)], None, NOW)
    (fifth,) = await call_line(store, hook, "c", [50])
    assert await claim(store, "w1", NOW + 2) == [fifth]
    async with store.transaction() as tx:  # numbered, then a crash before its result: it may have been sent
        assert await tx.number_calls([(fifth, hook, "c")]) == {fifth: 4}
    assert await claim(store, "w2", NOW + 60) == [fifth]  # its lease lapsed: claimed with its number
    async with store.transaction() as tx:  # expired before w2 sent it: w2 did not number it, the number stays
        await tx.finish([Finish(fifth, "expired", 0, NOW, None, "ttl expired before the attempt", None)], "w2", NOW)
        row = await tx.get_delivery(A, fifth)
        assert row is not None and row.call_seq == 4


async def test_a_short_take_from_a_shelf_tells_whether_the_gate_kept_some_there(store: Store) -> None:
    hook = hook_id()
    events = [event_row() for _ in range(2)]
    first, second = (
        NewDelivery("msg_" + uuid.uuid4().hex, e.id, hook, A, NOW + 600, None, SHELVED, None, "c", ts, None, 0)
        for e, ts in zip(events, [10, 20], strict=True)
    )
    async with store.transaction() as tx:
        await tx.store_events(events, [([first, second], NOW)])
    async with store.transaction() as tx:
        taken = await tx.claim_shelves("w1", [(hook, 5)], NOW, NOW + 30)
        assert [c.delivery.id for c in taken] == [first.id]  # the call's second waits for its first to settle
        # ... set behind it, off the shelf (BEHIND): no take and no claim looks at it again until then.
        assert await tx.still_shelved([hook, hook_id()]) == set()
        assert await tx.claim_due("w2", NOW + 1, NOW + 31, 10) == []
        await tx.finish([done(first.id, "delivered", 1)], "w1", NOW)  # ... which lets it through, due now
    async with store.transaction() as tx:
        assert [c.delivery.id for c in await tx.claim_due("w1", NOW, NOW + 30, 10)] == [second.id]
        assert await tx.still_shelved([hook]) == set()


async def test_a_short_take_keeps_a_shelf_known_while_its_calls_first_waits_for_another_worker(store: Store) -> None:
    """A call's first delivery kept back only because another of its call is leased elsewhere stays on the shelf
    (it is not set behind: the worker holding its call may take it); the take says the shelf is not empty."""
    hook = hook_id()
    events = [event_row() for _ in range(2)]
    held, shelved = (
        NewDelivery("msg_" + uuid.uuid4().hex, e.id, hook, A, at, None, by, until, "c", ts, None, 0)
        for e, ts, at, by, until in zip(
            events, [20, 10], [NOW, NOW + 600], ["w2", SHELVED], [NOW + 30, None], strict=True
        )
    )
    async with store.transaction() as tx:
        await tx.store_events(events, [([held, shelved], NOW)])
    async with store.transaction() as tx:
        assert await tx.claim_shelves("w1", [(hook, 5)], NOW, NOW + 30) == []
        assert await tx.still_shelved([hook]) == {hook}  # short, and not empty
    async with store.transaction() as tx:
        assert [c.delivery.id for c in await tx.claim_shelves("w2", [(hook, 5)], NOW, NOW + 30)] == [shelved.id]


async def test_a_delivery_set_behind_while_its_calls_head_settles_is_let_through(
    pg_store: tuple[PostgresStore, str, str],
) -> None:
    """PostgreSQL: a claim sets a call's second behind its head (still pending in the claim's snapshot) while the
    transaction settling the head has looked for deliveries to let through (the second not behind yet in its
    snapshot). Without the (hook, call) lock both miss each other and the call waits for good; with it, the claim
    waits for the settle to commit and lets the second through itself."""
    store = pg_store[0]
    hook = hook_id()
    (head,) = await call_line(store, hook, "c", [10], leased_by="w1")
    (second,) = await call_line(store, hook, "c", [20])
    async with store.transaction() as settling:
        await settling.finish([done(head, "delivered", 1)], "w1", NOW)
        claiming = asyncio.ensure_future(claim(store, "w2", NOW + 1))

        async def claim_done_or_waiting_for_the_call() -> bool:
            if claiming.done():
                return True
            async with store.transaction() as tx:
                rows = await tx.fetch(  # a 64-bit advisory key shows as classid (its high 32 bits) and objid
                    "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND (classid::bigint << 32 | objid::bigint) = hashtextextended(? || chr(31) || 'c', 14)",
                    hook,
                )
            return int(rows[0]["n"]) > 0

        await eventually(claim_done_or_waiting_for_the_call, "the claim to end or to wait for the call's lock")
    assert await claiming == [second]
