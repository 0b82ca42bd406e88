"""A tenant with many slow endpoints fills its own per-domain cap, never the others' capacity."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.app import make_settings, running
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually


async def test_per_domain_cap_bounds_one_tenant_and_leaves_room_for_another(receiver: Receiver, tmp_path: Path) -> None:
    held = asyncio.Event()  # the slow tenant's endpoints answer only when the test says so
    receiver.routes.update({f"/slow{n}": Reply(200, gate=held) for n in range(4)})
    settings = make_settings(tmp_path, max_in_flight_per_domain=2, max_in_flight_per_hook=8)
    async with running(settings) as app:
        worker = app.runtime.worker
        assert worker is not None
        token_a = await app.domain_token("many.example")
        token_b = await app.domain_token("other.example")
        for n in range(4):
            action = {"type": "web", "method": "POST", "url": receiver.url(f"/slow{n}")}
            await app.create_hook("many.example", {"event": "DTMF", "enable": True, "action": action}, token_a)
        action_b = {"type": "web", "method": "POST", "url": receiver.url("/fast")}
        await app.create_hook("other.example", {"event": "DTMF", "enable": True, "action": action_b}, token_b)

        await app.post_events({"Event-Name": "DTMF", "variable_domain_name": "many.example"}, token_a)
        await app.post_events({"Event-Name": "DTMF", "variable_domain_name": "other.example"}, token_b)

        # The other tenant is served while the slow one's two slots are still held: it did not wait behind.
        await receiver.wait_for(1, path="/fast")
        await eventually(
            lambda: slow(receiver) == 2,
            "two of the slow tenant's requests at once (its cap)",
            5,
            lambda: f"{slow(receiver)} arrived",
        )
        # The other two wait in the worker for a slot of their own domain, not on the wire.
        await eventually(lambda: (worker.in_flight, worker.queued) == (2, 2), "two in flight and two waiting")
        assert slow(receiver) == 2

        held.set()
        await eventually(lambda: slow(receiver) == 4, "the rest once slots free up")


def slow(receiver: Receiver) -> int:
    return sum(1 for r in receiver.requests if r.path.startswith("/slow"))
