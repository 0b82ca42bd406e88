"""A hook's in-memory backlog is bounded; what does not fit waits in the store, shelved (out of the due range
that claims walk), and is taken by hook as soon as the backlog drains, not at the next poll."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from switchhook.delivery.worker import PARKED_PER_SLOT
from switchhook.store.base import SHELVED
from tests.support.app import Harness, make_settings, running
from tests.support.receiver import Receiver, Reply

PER_HOOK = 2
BACKLOG = PER_HOOK * PARKED_PER_SLOT


async def left_in_store(app: Harness) -> int:
    """Pending deliveries no worker holds: the overflow of the fast path, shelved and not due for minutes."""
    async with app.runtime.store.transaction() as tx:
        unleased = await tx.fetchrow(  # type: ignore[attr-defined]
            "SELECT count(*) AS n FROM deliveries WHERE status = 'pending' AND lease_until IS NULL"
        )
        shelved = await tx.fetchrow(  # type: ignore[attr-defined]
            "SELECT count(*) AS n FROM deliveries WHERE status = 'pending' AND leased_by = ? AND next_at > ?",
            SHELVED,
            time.time() + 60,
        )
    assert unleased["n"] == shelved["n"], "every delivery left in the store is shelved, out of claims' way"
    return int(shelved["n"])


async def hook_to(app: Harness, url: str) -> None:
    token = await app.domain_token("busy.example")
    action = {"type": "web", "method": "POST", "url": url}
    await app.create_hook("busy.example", {"event": "DTMF", "enable": True, "action": action}, token)


def events(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {"Event-Name": "DTMF", "variable_domain_name": "busy.example", "n": str(n)} for n in range(first, first + count)
    ]


async def test_one_accept_never_parks_more_than_the_hooks_backlog_in_memory(receiver: Receiver, tmp_path: Path) -> None:
    receiver.routes["/slow"] = Reply(200, delay_s=0.5)
    settings = make_settings(tmp_path, max_in_flight_per_hook=PER_HOOK, poll_interval_s=30)
    async with running(settings) as app:
        await hook_to(app, receiver.url("/slow"))

        result = await app.services.events.accept(events(0, 100), source="http")

        assert result.deliveries == 100
        assert await left_in_store(app) == 100 - BACKLOG
        worker = app.runtime.worker
        assert worker is not None and worker.queued + worker.in_flight == BACKLOG


async def test_a_busy_hooks_overflow_is_sent_once_its_backlog_drains_not_at_the_next_poll(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.routes["/busy"] = Reply(200, delay_s=0.01)
    # Polls 30 s apart: without the wake-up when the backlog drains, the overflow would wait that long.
    settings = make_settings(tmp_path, max_in_flight_per_hook=PER_HOOK, poll_interval_s=30)
    async with running(settings) as app:
        await hook_to(app, receiver.url("/busy"))
        total = 0
        for batch in range(3):
            await app.services.events.accept(events(batch * 50, 50), source="http")
            total += 50
        assert await left_in_store(app) > 0  # the backlog did overflow into the store

        await receiver.wait_for(total, timeout_s=15)
        await asyncio.sleep(0.2)
    assert sorted(int(r.json()["data"]["n"]) for r in receiver.requests) == list(range(total))  # each once
