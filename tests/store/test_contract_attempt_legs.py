"""The store contract for a hook's fallback URL (issue 16 §1): an attempt's two legs, on SQLite and PostgreSQL."""

from __future__ import annotations

from switchhook.store.base import AttemptLeg, AttemptRow, Finish, Store
from tests.store.test_contract import NOW, claim, seed, store

__all__ = ["store"]  # the fixture, run on both backends

PRIMARY = AttemptLeg("primary", "http://user:********@primary.example/hook", None, 3.25, "ClientConnectorError: x")
FALLBACK = AttemptLeg("fallback", "http://fallback.example/hook", 200, 1.5, None, "refused")


async def test_an_attempts_legs_round_trip_through_both_write_paths(store: Store) -> None:
    """A worker's results (SQLite writes them with its own multi-row statement) and an unleased one (worker None)."""
    async with store.transaction() as tx:
        leased, unleased, plain = await seed(tx, 3)
    assert set(await claim(store, "w1", NOW)) == {leased.id, unleased.id, plain.id}
    two_legs = AttemptRow(leased.id, 1, NOW, 4.75, 200, None, "ok", (PRIMARY, FALLBACK))
    paused = AttemptRow(unleased.id, 1, NOW, 2.0, None, "primary paused; fallback: HTTP 404", None, (FALLBACK,))
    one_request = AttemptRow(plain.id, 1, NOW, 1.0, 200, None, "ok")
    async with store.transaction() as tx:
        await tx.finish(
            [
                Finish(leased.id, "delivered", 1, NOW, 200, None, two_legs),
                Finish(plain.id, "delivered", 1, NOW, 200, None, one_request),
            ],
            "w1",
            NOW,
        )
        await tx.finish([Finish(unleased.id, "pending", 1, NOW + 5, None, paused.error, paused)], None, NOW)
    async with store.transaction() as tx:
        assert await tx.list_attempts(leased.id) == [two_legs]
        assert await tx.list_attempts(unleased.id) == [paused]
        assert await tx.list_attempts(plain.id) == [one_request]  # no legs: the row is its one request
