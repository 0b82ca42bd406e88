"""What a worker has no room for waits on a shelf in the store: out of the due range that every claim walks
(so a long outage's backlog never makes claims slower), taken by hook once there is room, and due on its own
should the worker that shelved it be gone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from switchhook.store.base import SHELVED
from tests.support.app import Harness, make_settings, running
from tests.support.receiver import Receiver, Reply

DOMAIN = "shelf.example"


async def hook_to(app: Harness, url: str, **extra: Any) -> None:
    token = await app.domain_token(DOMAIN)
    action = {"type": "web", "method": "POST", "url": url}
    await app.create_hook(DOMAIN, {"event": "DTMF", "enable": True, "action": action, **extra}, token)


def events(count: int) -> list[dict[str, Any]]:
    return [{"Event-Name": "DTMF", "variable_domain_name": DOMAIN, "n": str(n)} for n in range(count)]


async def counts(app: Harness) -> tuple[int, int]:
    """(shelved, backlog due and unleased): the second is what claims would walk past while the hook is paused.
    Retries of the few attempts made (before the pause, and failed probes) are due on their schedule: not counted."""
    now = time.time()
    async with app.runtime.store.transaction() as tx:
        shelf = await tx.fetchrow(  # type: ignore[attr-defined]
            "SELECT count(*) AS n FROM deliveries WHERE status = 'pending' AND leased_by = ?", SHELVED
        )
        due = await tx.fetchrow(  # type: ignore[attr-defined]
            "SELECT count(*) AS n FROM deliveries WHERE status = 'pending' AND attempts = 0 AND next_at <= ?"
            " AND (lease_until IS NULL OR lease_until < ?)",
            now,
            now,
        )
    return int(shelf["n"]), int(due["n"])


async def test_a_long_outage_keeps_its_backlog_out_of_the_due_range_then_delivers_it(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.routes["/down"] = Reply(503)
    settings = make_settings(
        tmp_path, max_in_flight_per_hook=2, breaker_failures=2, breaker_cooldown_s=0.2, breaker_max_cooldown_s=0.2
    )
    async with running(settings) as app:
        worker = app.runtime.worker
        assert worker is not None
        worker.shelve_s = 1.0  # an outage of several shelf horizons in a few seconds
        await hook_to(app, receiver.url("/down"), retries=10, delay=1)
        assert (await app.services.events.accept(events(40), source="http")).deliveries == 40

        for _ in range(12):  # probes fail every 0.2 s; each reopening pushes out what would fall due
            await asyncio.sleep(0.25)
            shelf, due = await counts(app)
            assert due == 0, "a paused hook's backlog fell into the due range"
        assert shelf >= 20  # the rest went out as probes (and wait for their retries)

        failed = len(receiver.requests)  # every one of them answered 503
        receiver.routes["/down"] = Reply(200)
        await receiver.wait_for(failed + 40, timeout_s=15)
        await asyncio.sleep(0.3)
        assert await counts(app) == (0, 0)
    delivered = [int(r.json()["data"]["n"]) for r in receiver.requests[failed:]]
    assert sorted(delivered) == list(range(40)), "each event once, the failed ones by their retries"


async def test_a_restart_takes_the_shelf_left_by_the_last_run_at_once(receiver: Receiver, tmp_path: Path) -> None:
    receiver.routes["/slow"] = Reply(200, delay_s=0.1)
    # Polls 30 s apart and shelves 10 minutes off: only taking shelves at start gets these out in time.
    settings = make_settings(tmp_path, max_in_flight_per_hook=1, poll_interval_s=30)
    async with running(settings) as app:
        await hook_to(app, receiver.url("/slow"))
        assert (await app.services.events.accept(events(60), source="http")).deliveries == 60
        shelf, _ = await counts(app)
        assert shelf == 60 - 16  # a backlog of 16 x cap 1 in memory, the rest shelved
        await receiver.wait_for(12, timeout_s=10)  # the backlog drained to half: some were taken off the shelf
        shelf, _ = await counts(app)
        assert shelf < 60 - 16  # those taken are in memory when this run stops: due again, not 10 minutes off

    receiver.routes["/slow"] = Reply(200)
    async with running(settings) as app:
        await receiver.wait_for(60, timeout_s=10)
        await asyncio.sleep(0.2)
        assert (await counts(app))[0] == 0
    assert sorted(int(r.json()["data"]["n"]) for r in receiver.requests) == list(range(60))  # each once


async def test_a_probe_that_says_nothing_of_the_endpoint_is_followed_by_another(
    receiver: Receiver, tmp_path: Path
) -> None:
    """The oldest shelved delivery (the first probe) has expired: its attempt proves nothing, so the next one goes,
    and fresh deliveries shelved meanwhile are not left waiting for the shelf's horizon."""
    receiver.routes["/back"] = Reply(503)
    settings = make_settings(
        tmp_path, max_in_flight_per_hook=2, breaker_failures=2, breaker_cooldown_s=1.2, breaker_max_cooldown_s=1.2
    )
    async with running(settings) as app:
        await hook_to(app, receiver.url("/back"), retries=5, delay=60, ttl=1)
        await app.services.events.accept(events(20), source="http")
        await asyncio.sleep(0.3)  # two failures: paused, the rest shelved
        receiver.routes["/back"] = Reply(200)
        await asyncio.sleep(1.2)  # the cooldown ends after every shelved delivery's ttl
        fresh = [{"Event-Name": "DTMF", "variable_domain_name": DOMAIN, "n": str(n)} for n in range(100, 105)]
        await app.services.events.accept(fresh, source="http")
        got = await receiver.wait_for(2 + 5, timeout_s=5)
    assert sorted(int(r.json()["data"]["n"]) for r in got[2:]) == list(range(100, 105))
