"""RabbitMQ to receiver through the whole runtime: mod_amqp fixtures in, rendered requests out, faults."""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aio_pika.exceptions import PublishError

from switchhook.core.events import Event
from switchhook.ingest.amqp import routing_key_for
from tests.support.app import Harness
from tests.support.fixtures import load_fixture_event
from tests.support.receiver import Receiver
from tests.support.services import need_rabbitmqctl, rabbitmqctl, wait_until_broker_answers
from tests.support.tap import Tap, ingesting, own_tap
from tests.support.waiting import eventually as wait_until

pytestmark = pytest.mark.rabbitmq

CREATE = "amqp-json-CHANNEL_CREATE-kageds-mod_amqp-trace.json"
CALLSTATE = "json-CHANNEL_CALLSTATE-webitel-switch-test-server.json"
DIALER_END = "esl-plain-decoded-CUSTOM-engine__dialer_member_end-webitel-docs-en.txt"
CREATE_DOMAIN = "4f5549.sip.2600hz.com"  # from Channel-Presence-ID 1000@4f5549.sip.2600hz.com
CALLSTATE_DOMAIN = "10.10.10.144"  # from Channel-Presence-ID 102@10.10.10.144
DIALER_DOMAIN = "demo.webitel.com"  # Event-Domain


def web(url: str, method: str = "POST") -> dict[str, str]:
    return {"type": "web", "method": method, "url": url}


def with_id(event: Event, unique_id: str) -> Event:
    """Another event like this one: its own Unique-ID and, as FreeSWITCH numbers every event, its own sequence."""
    return {**event, "Unique-ID": unique_id, "Event-Sequence": str(zlib.crc32(unique_id.encode()))}


@pytest.fixture
async def tap() -> AsyncIterator[Tap]:
    async with own_tap() as tap:
        yield tap


async def eventually(predicate: Callable[[], Any], what: str, timeout_s: float = 10.0) -> None:
    await wait_until(predicate, what, timeout_s)


async def health(app: Harness) -> tuple[int, dict[str, Any]]:
    response = await app.client.get("/health")
    return response.status_code, response.json()


async def amqp_connected(app: Harness) -> bool:
    status, report = await health(app)
    return status == 200 and report["amqp"]["state"] == "connected"


def metric(text: str, name: str, labels: str) -> float:
    """A sample's value from Prometheus text; `labels` as `a="x",b="y"`, in any order."""
    wanted = set(labels.split(","))
    for match in re.finditer(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", text, re.MULTILINE):
        if set(match.group(1).split(",")) == wanted:
            return float(match.group(2))
    raise AssertionError(f"{name}{{{labels}}} not in /metrics:\n{text}")


# -- real fixtures in, rendered requests out ------------------------------------------------------------


async def test_mod_amqp_fixtures_are_delivered_as_rendered_requests(
    tap: Tap, tmp_path: Path, receiver: Receiver
) -> None:
    create, callstate = load_fixture_event(CREATE), load_fixture_event(CALLSTATE)
    # Webitel's dialer event as mod_amqp would carry it: the decoded dump re-encoded as one JSON object.
    dialer = json.loads(json.dumps(load_fixture_event(DIALER_END)))
    async with ingesting(tap, tmp_path) as app:
        await app.create_hook(
            CREATE_DOMAIN, {"event": "CHANNEL_CREATE", "enable": True, "action": web(receiver.url("/create"))}
        )
        await app.create_hook(
            CALLSTATE_DOMAIN,
            {
                "event": "CHANNEL_CALLSTATE",
                "enable": True,
                "action": web(receiver.url("/callstate"), "GET"),
                "fields": ["Unique-ID", "Channel-Call-State", "Caller-Caller-ID-Number"],
                "map": {"Unique-ID": "call_id"},
            },
        )
        await app.create_hook(
            DIALER_DOMAIN,
            {
                "event": "CUSTOM->engine::dialer_member_end",
                "enable": True,
                "action": web(receiver.url("/dialer"), "PUT"),
                "customBody": True,
                "headers": {"Content-Type": "application/json", "X-Dialer": "${dialerName}"},
                "rawBody": '{"member": "${name}", "number": "${currentNumber}", "end_cause": "${endCause}"}',
            },
        )
        for event in (create, callstate, dialer):
            await tap.wait_routed(routing_key_for(event))

        for event in (create, callstate, dialer):
            await tap.publish(event)
        await receiver.wait_for(3)

        (created,) = receiver.on("/create")
        assert created.method == "POST"
        body = created.json()
        assert body["action"] == "CHANNEL_CREATE"
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", body["id"])
        assert body["data"] == create

        (called,) = receiver.on("/callstate")
        assert called.method == "GET"
        assert called.body == b""
        assert dict(parse_qsl(called.query)) == {
            "call_id": "0746074f-861e-4470-abda-e83062d4ee13",
            "Channel-Call-State": "EARLY",
            "Caller-Caller-ID-Number": callstate["Caller-Caller-ID-Number"],
        }

        (ended,) = receiver.on("/dialer")
        assert ended.method == "PUT"
        assert ended.headers["X-Dialer"] == "TEST Dialer"
        assert ended.headers["Content-Type"] == "application/json"
        assert ended.json() == {
            "member": "Customer 1",
            "number": "+380443322112",
            "end_cause": "MAX_TRY_COUNT",
        }

        status, report = await health(app)
        assert status == 200
        assert report["status"] == "ok"
        assert report["amqp"]["state"] == "connected"
        received = report["amqp"]["received"]
        assert received >= 3  # the three events, plus the probes that proved the bindings
        text = (await app.client.get("/metrics")).text
        assert metric(text, "switchhook_events_received_total", 'source="amqp"') == received
        assert metric(text, "switchhook_source_connected", 'source="amqp"') in (0.0, 1.0)


async def test_a_hook_created_later_gets_its_binding_without_restart(
    tap: Tap, tmp_path: Path, receiver: Receiver
) -> None:
    callstate = with_id(load_fixture_event(CALLSTATE), "after-hook")
    key = routing_key_for(callstate)
    async with ingesting(tap, tmp_path) as app:
        await app.create_hook(
            CREATE_DOMAIN, {"event": "CHANNEL_CREATE", "enable": True, "action": web(receiver.url("/create"))}
        )
        await tap.wait_routed(routing_key_for(load_fixture_event(CREATE)))

        # No hook uses CHANNEL_CALLSTATE yet: the broker has nowhere to route it.
        with pytest.raises(PublishError):
            await tap.publish(with_id(callstate, "before-hook"))

        hook_id = await app.create_hook(
            CALLSTATE_DOMAIN,
            {"event": "CHANNEL_CALLSTATE", "enable": True, "action": web(receiver.url("/callstate"))},
        )
        await tap.wait_routed(key)
        await tap.publish(callstate)
        (request,) = await receiver.wait_for(1, path="/callstate")
        assert request.json()["data"]["Unique-ID"] == "after-hook"

        # Deleting the last hook of the key unbinds it again.
        token = await app.domain_token(CALLSTATE_DOMAIN)
        deleted = await app.client.delete(f"/api/v2/hooks/{hook_id}", headers={"X-Access-Token": token})
        assert deleted.status_code == 200, deleted.text
        await tap.wait_unrouted(key)
        assert [r.json()["data"]["Unique-ID"] for r in receiver.requests] == ["after-hook"]


async def test_poison_messages_never_block_the_queue(tap: Tap, tmp_path: Path, receiver: Receiver) -> None:
    create = load_fixture_event(CREATE)
    key = routing_key_for(create)
    async with ingesting(tap, tmp_path) as app:
        await app.create_hook(
            CREATE_DOMAIN, {"event": "CHANNEL_CREATE", "enable": True, "action": web(receiver.url("/create"))}
        )
        await tap.wait_routed(key)
        source = app.source("amqp")
        # The one probe that got routed is consumed (and matches no hook); the others were returned.
        await eventually(lambda: source.counters()["received"] == 1, "the probe to be consumed")

        await tap.publish(b"this is {not JSON", key, persistent=True)
        await tap.publish(json.dumps([with_id(create, "in-an-array")]).encode(), key, persistent=True)
        await tap.publish(json.dumps({"Unique-ID": "no-event-name", "Channel-Presence-ID": "1@x"}).encode(), key)
        await tap.publish(with_id(create, "after-the-poison"))

        (request,) = await receiver.wait_for(1)
        assert request.json()["data"]["Unique-ID"] == "after-the-poison"
        await eventually(lambda: source.counters()["rejected"] == 3, "three rejected messages")
        # Rejected without requeue: nothing is left behind to be redelivered forever.
        await eventually(lambda: _is_zero(tap), "an empty queue")
        status, report = await health(app)
        assert (status, report["amqp"]["state"]) == (200, "connected")
        assert report["amqp"]["received"] == 2  # the probe and the real event: poison is not an event
        # Dropped, and counted as such per source (docs/freeswitch.md).
        text = (await app.client.get("/metrics")).text
        dropped = "switchhook_events_dropped_total"
        assert metric(text, dropped, 'source="amqp",reason="undecodable"') == 2
        assert metric(text, dropped, 'source="amqp",reason="no_event_name"') == 1
        await asyncio.sleep(0.2)  # nothing else is on its way
        assert len(receiver.requests) == 1


async def _is_zero(tap: Tap) -> bool:
    return await tap.ready_count() == 0


# -- broker restart ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_consumer_resumes_after_a_broker_restart_and_loses_no_stored_event(
    tap: Tap, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_rabbitmqctl()
    create = load_fixture_event(CREATE)
    async with ingesting(tap, tmp_path) as app:
        await app.create_hook(
            CREATE_DOMAIN, {"event": "CHANNEL_CREATE", "enable": True, "action": web(receiver.url("/create"))}
        )
        await tap.wait_routed(routing_key_for(create))
        for n in range(5):
            await tap.publish(with_id(create, f"pre-{n}"), persistent=True)
        await receiver.wait_for(5)

        # The batch holding the "held" events is in the sink when the broker goes away, so its ack is lost.
        events = app.services.events
        accept = events.accept
        gate, holding = asyncio.Event(), asyncio.Event()

        async def held_accept(batch: list[Event], **kwargs: Any) -> Any:
            if not gate.is_set() and any(str(e.get("Unique-ID")).startswith("held-") for e in batch):
                holding.set()
                await gate.wait()
            return await accept(batch, **kwargs)

        monkeypatch.setattr(events, "accept", held_accept)
        for n in range(5):
            await tap.publish(with_id(create, f"held-{n}"), persistent=True)
        await asyncio.wait_for(holding.wait(), 10)

        await rabbitmqctl("stop_app")
        try:
            await eventually(lambda: _degraded(app), "/health to report the lost broker")
            gate.set()  # the held batch is stored; its ack cannot reach the broker, which redelivers it
        finally:
            await rabbitmqctl("start_app")
        connection = await wait_until_broker_answers(tap.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            for n in range(5):
                await tap.publish(with_id(create, f"post-{n}"), persistent=True, channel=channel)

        wanted = {f"{stage}-{n}" for stage in ("pre", "held", "post") for n in range(5)}

        def seen() -> Counter[str]:
            return Counter(r.json()["data"]["Unique-ID"] for r in receiver.requests)

        await eventually(lambda: set(seen()) >= wanted, "every event across the restart", 30)
        await eventually(lambda: amqp_connected(app), "/health to report the broker back")
        counts = seen()
        assert set(counts) == wanted
        counters = app.source("amqp").counters()
        # The broker redelivered the held batch whose ack was lost (1 probe + 15 events, plus those again)...
        assert counters["received"] > 16
        # ...and idempotent ingest recognised it: stored once, sent once.
        duplicated = {uid: n for uid, n in counts.items() if n > 1}
        assert not duplicated, f"sent more than once: {duplicated}"
        assert counters["reconnects"] >= 1


async def _degraded(app: Harness) -> bool:
    status, report = await health(app)
    return status == 503 and report["status"] == "degraded" and report["amqp"]["state"] != "connected"
