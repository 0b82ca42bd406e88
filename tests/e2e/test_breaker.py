"""A hook whose endpoint is down is paused, probed, and resumed when it answers; nothing is lost meanwhile."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from switchhook.store.base import SHELVED
from tests.support.app import make_settings, running
from tests.support.receiver import Receiver, Reply


async def test_a_failing_endpoint_is_paused_then_probed_then_resumed(receiver: Receiver, tmp_path: Path) -> None:
    receiver.answer(503, 503, 503, 503)  # three failures open the circuit; the first probe fails too
    settings = make_settings(
        tmp_path,
        max_in_flight_per_hook=1,  # one at a time: the order of attempts is the order of answers
        breaker_failures=3,
        breaker_cooldown_s=0.5,
        breaker_max_cooldown_s=5,
    )
    async with running(settings) as app:
        token = await app.domain_token("down.example")
        action = {"type": "web", "method": "POST", "url": receiver.url("/down")}
        hook = {"event": "DTMF", "enable": True, "retries": 5, "delay": 1, "action": action}
        await app.create_hook("down.example", hook, token)
        events = [{"Event-Name": "DTMF", "variable_domain_name": "down.example", "n": str(n)} for n in range(10)]
        response = await app.post_events(events, token)
        assert response.status_code == 202

        requests = await receiver.wait_for(14, timeout_s=15)  # 10 events + 4 failed attempts retried

    at = [r.at for r in requests]
    assert at[3] - at[2] >= 0.45  # open: nothing sent for the first cooldown, then one probe
    assert at[4] - at[3] >= 0.95  # the probe failed: twice the cooldown
    assert at[5] - at[4] < 0.5  # the second probe succeeded: the backlog flows again
    delivered = sorted(int(r.json()["data"]["n"]) for r in requests[4:])
    assert delivered == list(range(10))  # each event once after the outage, the failed ones by their retries


async def test_a_paused_hook_keeps_one_delivery_in_memory_and_hands_the_rest_back(
    receiver: Receiver, tmp_path: Path
) -> None:
    """A dead endpoint's backlog must not hold the worker's room for the whole outage: many dead hooks would
    otherwise fill it and starve the healthy ones."""
    receiver.routes["/dead"] = Reply(503)
    settings = make_settings(
        tmp_path, max_in_flight_per_hook=2, breaker_failures=2, breaker_cooldown_s=30, breaker_max_cooldown_s=30
    )
    async with running(settings) as app:
        token = await app.domain_token("dead.example")
        action = {"type": "web", "method": "POST", "url": receiver.url("/dead")}
        await app.create_hook("dead.example", {"event": "DTMF", "enable": True, "action": action}, token)
        events = [{"Event-Name": "DTMF", "variable_domain_name": "dead.example", "n": str(n)} for n in range(30)]
        assert (await app.services.events.accept(events, source="http")).deliveries == 30

        worker = app.runtime.worker
        assert worker is not None
        deadline = asyncio.get_running_loop().time() + 5
        while worker.queued + worker.in_flight > 1 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert worker.queued + worker.in_flight == 1  # the next probe, nothing else
        await asyncio.sleep(0.3)
        async with app.runtime.store.transaction() as tx:
            row = await tx.fetchrow(  # type: ignore[attr-defined]
                "SELECT count(*) AS n FROM deliveries WHERE status = 'pending' AND leased_by = ?"
                " AND lease_until IS NULL AND next_at > ?",
                SHELVED,
                time.time() + 60,
            )
        # Handed back to the store, shelved: out of the due range claims walk (a long outage's backlog must not
        # cost every claim), taken by hook once the hook may be tried again.
        assert int(row["n"]) == 27
        assert len(receiver.on("/dead")) == 2  # paused: nothing more was sent
