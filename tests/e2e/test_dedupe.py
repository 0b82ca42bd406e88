"""Idempotent ingest under load and concurrency: large fan-out batches, and one event accepted twice at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.app import ROOT, Harness, make_settings, running
from tests.support.postgres import drop_schema, new_schema, require_postgres
from tests.support.receiver import Receiver
from tests.support.waiting import eventually


async def all_recorded(app: Harness, domain: str, hook_id: str, count: int) -> None:
    """Until the hook's `count` deliveries are all recorded delivered: after that, none can go out again."""

    async def done() -> bool:
        rows = await app.services.deliveries.list_for_hook(ROOT, domain, hook_id, None, "1000", None)
        return len(rows) == count and all(r["status"] == "delivered" for r in rows)

    await eventually(done, f"{count} deliveries recorded as delivered", 10)


async def test_a_broker_batch_fanning_out_to_over_10000_deliveries_is_stored(any_app: Harness) -> None:
    action = {"type": "web", "method": "POST", "url": "http://127.0.0.1:9/unused"}
    for _ in range(40):
        await any_app.services.hooks.create(ROOT, "fan.example", {"event": "CHANNEL_CREATE", "action": action})
    # Stored disabled hooks never match: enable them by replacing, as a client would.
    for hook in await any_app.services.hooks.list(ROOT, "fan.example", "100", None, None):
        doc = {k: v for k, v in hook.items() if k not in ("_id", "domain")}
        await any_app.services.hooks.replace(ROOT, "fan.example", hook["_id"], {**doc, "enable": True})
    any_app.services.events.fast_path = None  # store only: nobody sends to the unused endpoint
    events = [
        {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": "fan.example", "Unique-ID": str(n)} for n in range(260)
    ]

    first = await any_app.services.events.accept(events, source="amqp")
    again = await any_app.services.events.accept(events + events[:5], source="amqp")

    assert first.deliveries == 260 * 40
    assert (again.deliveries, again.duplicates) == (0, 265)


async def test_the_same_event_accepted_by_two_processes_at_once_is_sent_once(
    receiver: Receiver, tmp_path: Path
) -> None:
    dsn = await require_postgres()
    schema = new_schema()
    settings = make_settings(tmp_path, database_url=dsn, database_schema=schema)
    try:
        async with running(settings) as one, running(settings) as two:
            hook = {"event": "CHANNEL_CREATE", "enable": True,
                    "action": {"type": "web", "method": "POST", "url": receiver.url()}}  # fmt: skip
            created = await one.services.hooks.create(ROOT, "race.example", hook)
            hook_id = created["ops"][0]["_id"]
            # The second process learns of the hook as it would in production (the store's change notice).
            await eventually(lambda: two.services.index.get(hook_id) is not None, "the hook known to both")
            events = [
                {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": "race.example", "Unique-ID": str(n)}
                for n in range(50)
            ]
            results = await asyncio.gather(
                one.services.events.accept(events, source="amqp"), two.services.events.accept(events, source="amqp")
            )
            assert sum(r.deliveries for r in results) == 50
            assert sum(r.duplicates for r in results) == 50
            await receiver.wait_for(50)
            await all_recorded(one, "race.example", hook_id, 50)  # nothing left that could still go out
            assert len(receiver.requests) == 50
    finally:
        await drop_schema(dsn, schema)


async def test_accepts_sharing_one_transaction_store_a_shared_event_once(any_app: Harness, receiver: Receiver) -> None:
    """Concurrent accepts are written by one group commit: an event in two of them is stored and sent once,
    and the accept that came second reports it as a duplicate."""
    hook = {
        "event": "CHANNEL_CREATE",
        "enable": True,
        "action": {"type": "web", "method": "POST", "url": receiver.url()},
    }
    hook_id = (await any_app.services.hooks.create(ROOT, "group.example", hook))["ops"][0]["_id"]

    def fs_event(n: int) -> dict[str, str]:
        return {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": "group.example",
                "Core-UUID": "917c114b-eaf1-40f2-8407-4d2cd97687a1", "Event-Sequence": str(n)}  # fmt: skip

    accept = any_app.services.events.accept
    results = await asyncio.gather(
        accept([fs_event(1), fs_event(2)], source="http"),
        accept([fs_event(2), fs_event(3)], source="http"),
        accept([fs_event(3)], source="http"),
    )

    assert [(r.deliveries, r.duplicates) for r in results] == [(2, 0), (1, 1), (0, 1)]
    await receiver.wait_for(3)
    await all_recorded(any_app, "group.example", hook_id, 3)  # nothing left that could still go out
    assert sorted(r.json()["data"]["Event-Sequence"] for r in receiver.requests) == ["1", "2", "3"]


async def test_a_claim_decodes_a_fanned_out_event_once(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path), worker=False) as app:  # no worker: the claim below gets them all
        action = {"type": "web", "method": "POST", "url": "http://127.0.0.1:9/unused"}
        for _ in range(3):
            await app.services.hooks.create(ROOT, "fan.example", {"event": "DTMF", "enable": True, "action": action})
        event = {"Event-Name": "DTMF", "variable_domain_name": "fan.example", "Unique-ID": "u1"}
        assert (await app.services.events.accept([event], source="http")).deliveries == 3

        jobs = await app.services.deliveries.claim("claimer", 10, 30)

    assert len(jobs) == 3 and len({j.hook.id for j in jobs}) == 3
    assert jobs[0].event == event and all(j.event is jobs[0].event for j in jobs)  # one dict, shared
