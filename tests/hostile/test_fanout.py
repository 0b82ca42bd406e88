"""Issue 13, item 6: one fan-out request stalled every tenant's ingest (200 hooks on one key, one POST of 5,000
events: 1,000,000 deliveries, 17.1 s in one transaction, and another domain's POST waited 17.2 s)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from switchhook.store.base import EventRow, NewDelivery, Tx
from tests.support.app import ROOT, Harness, make_settings, running
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

WEB = {"type": "web", "method": "POST", "url": "http://127.0.0.1:9/x"}


def hook_on(event: str) -> dict[str, Any]:
    return {"event": event, "enable": True, "action": WEB}


async def create(app: Harness, token: str, body: dict[str, Any]) -> Any:
    return await app.client.post("/api/v2/hooks", json=body, headers={"X-Access-Token": token})


async def test_hooks_per_event_key_and_per_domain_are_capped_saying_the_numbers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_hooks_per_domain=3, max_hooks_per_event_key=2)
    async with running(settings) as app:
        token = await app.domain_token("fan.example")
        assert (await create(app, token, hook_on("DTMF"))).status_code == 200
        assert (await create(app, token, hook_on("DTMF"))).status_code == 200
        on_key = await create(app, token, hook_on("DTMF"))
        assert on_key.status_code == 400, on_key.text
        assert "2 hooks on the event 'DTMF'" in on_key.json()["info"] and "(2)" in on_key.json()["info"]
        other = await create(app, token, hook_on("CHANNEL_CREATE"))
        assert other.status_code == 200
        other_id = other.json()["data"]["insertedIds"][0]
        in_all = await create(app, token, hook_on("CHANNEL_HANGUP"))
        assert in_all.status_code == 400, in_all.text
        assert "3 hooks" in in_all.json()["info"] and "(3)" in in_all.json()["info"]
        moved = await app.client.put(
            f"/api/v2/hooks/{other_id}", json=hook_on("DTMF"), headers={"X-Access-Token": token}
        )
        assert moved.status_code == 400, moved.text  # a replace onto a full key
        kept = await app.client.put(
            f"/api/v2/hooks/{other_id}", json={**hook_on("CHANNEL_CREATE"), "description": "x"},
            headers={"X-Access-Token": token},
        )  # fmt: skip
        assert kept.status_code == 200, kept.text  # a replace on its own key, the domain at its cap
        assert (await create(app, await app.domain_token("other.example"), hook_on("DTMF"))).status_code == 200


async def test_a_request_creating_more_deliveries_than_the_cap_is_a_413_and_stores_nothing(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with running(make_settings(tmp_path, max_deliveries_per_request=100)) as app:
        token = await app.domain_token("fan.example")
        action = {"type": "web", "method": "POST", "url": receiver.url()}
        hook_ids = [await app.create_hook("fan.example", {"event": "DTMF", "enable": True, "action": action}, token)]
        hook_ids.append(await app.create_hook("fan.example", {"event": "DTMF", "enable": True, "action": action}))
        event = {"Event-Name": "DTMF", "variable_domain_name": "fan.example"}

        over = await app.post_events([{**event, "n": str(n)} for n in range(51)], token)
        assert over.status_code == 413, over.text
        assert "match 102 deliveries, more than the 100" in over.json()["info"]
        for hook_id in hook_ids:
            assert await app.services.deliveries.list_for_hook(ROOT, "fan.example", hook_id, None, "100", None) == []

        fits = await app.post_events([{**event, "n": str(n)} for n in range(50)], token)
        assert fits.status_code == 202, fits.text
        await receiver.wait_for(100, timeout_s=15)


async def test_another_domains_accept_is_committed_between_a_large_accepts_chunks(tmp_path: Path) -> None:
    """A's accept of 1,000 deliveries, committed 100 at a time, holds its first chunk's transaction open (a gate);
    B posts meanwhile. B's events are committed right after that chunk and B is answered while A's accept still
    has nine chunks to go; committed in one transaction, B would wait for all of A's."""
    async with running(make_settings(tmp_path, poll_interval_s=30)) as app:
        app.services.events.commit_chunk = 100
        a, b = await app.domain_token("a.example"), await app.domain_token("b.example")
        for _ in range(2):
            await app.create_hook("a.example", hook_on("DTMF"), a)
        await app.create_hook("b.example", hook_on("DTMF"), b)
        gate, first_chunk = asyncio.Event(), asyncio.Event()
        chunks: list[int] = []
        store = app.runtime.store
        real_transaction = store.transaction

        @asynccontextmanager
        async def gated_transaction() -> AsyncIterator[Tx]:
            async with real_transaction() as tx:
                real_store_events = tx.store_events

                async def store_events(events: Sequence[EventRow], deliveries: Any) -> Any:
                    rows: list[NewDelivery] = [d for batch, _ in deliveries for d in batch]
                    if any(d.domain == "a.example" for d in rows):
                        chunks.append(len(rows))
                        if len(chunks) == 1:
                            first_chunk.set()
                            await gate.wait()
                    return await real_store_events(events, deliveries)

                tx.store_events = store_events  # type: ignore[method-assign]
                yield tx

        store.transaction = gated_transaction  # type: ignore[method-assign]
        answered: list[str] = []

        async def post(name: str, events: list[dict[str, str]], token: str) -> int:
            response = await app.post_events(events, token, timeout=60)
            answered.append(name)
            return response.status_code

        a_events = [{"Event-Name": "DTMF", "variable_domain_name": "a.example", "n": str(n)} for n in range(500)]
        a_post = asyncio.create_task(post("A", a_events, a))
        await eventually(first_chunk.is_set, "A's first chunk in its transaction", timeout_s=30)
        received = app.runtime.metrics.registry.get_sample_value
        before = received("switchhook_events_received_total", {"source": "http"})
        b_post = asyncio.create_task(post("B", [{"Event-Name": "DTMF", "variable_domain_name": "b.example"}], b))
        # B's accept is queued for the commit once it is counted (nothing awaits between the two).
        await eventually(lambda: received("switchhook_events_received_total", {"source": "http"}) == before + 1, "B")
        gate.set()
        assert await b_post == 202
        assert answered == ["B"], "B waited for all of A's accept"
        assert await a_post == 202
        assert chunks == [100] * 10
