"""A worker whose in-memory index has not heard of a hook yet asks the store before failing its deliveries."""

from __future__ import annotations

from tests.support.app import ROOT, Harness
from tests.support.receiver import Receiver
from tests.support.waiting import eventually


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

    async def delivered() -> bool:
        rows = await app.services.deliveries.list_for_hook(ROOT, "stale.example", hook_id, None, None, None)
        return bool(rows[0]["status"] == "delivered")

    await eventually(delivered, "the delivery recorded as delivered")
    assert app.services.index.get(hook_id) is not None
