"""A worker whose in-memory index has not heard of a hook yet asks the store before failing its deliveries."""

from __future__ import annotations

import asyncio

from tests.support.app import ROOT, Harness
from tests.support.receiver import Receiver


async def test_claim_reads_the_store_when_the_index_is_stale(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token("stale.example")
    hook_id = await app.create_hook(
        "stale.example",
        {
            "event": "CHANNEL_CREATE",
            "enable": True,
            "action": {"type": "web", "method": "POST", "url": receiver.url()},
        },
        token,
    )
    worker = app.runtime.worker
    assert worker is not None
    app.services.events.fast_path = None  # leave the delivery to the poller
    await app.post_events({"Event-Name": "CHANNEL_CREATE", "variable_domain_name": "stale.example"}, token)
    app.services.index.remove(hook_id)  # as if the NOTIFY of its creation had not arrived yet

    (request,) = await receiver.wait_for(1)

    assert request.path == "/hook"
    for _ in range(50):
        rows = await app.services.deliveries.list_for_hook(ROOT, "stale.example", hook_id, None, None, None)
        if rows[0]["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
    assert rows[0]["status"] == "delivered"
    assert app.services.index.get(hook_id) is not None
