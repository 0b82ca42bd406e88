"""Live FreeSWITCH 1.10.12 captures through the whole runtime: both mod_amqp layouts, and ESL + AMQP together.

The captures (shared fixtures `freeswitch-1.10.12/`, read its README) are replayed through the real RabbitMQ
exactly as mod_amqp published them (exchange, routing key, properties, body bytes) and through a scripted
Event Socket peer; a local receiver records what switchhook sends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aio_pika.exceptions import PublishError

from switchhook.core.events import event_domain, event_key
from switchhook.ingest.routing import STOCK_FORMAT_FIELDS, WEBITEL_CC_FORMAT_FIELDS, WEBITEL_FORMAT_FIELDS
from tests.support.app import Harness
from tests.support.esl_peer import EslPeer, event_json_frame
from tests.support.receiver import Receiver
from tests.support.tap import CAPTURES_DIR, Capture, Tap, captures, ingesting, load_capture, own_tap
from tests.support.waiting import eventually

pytestmark = pytest.mark.rabbitmq

DOMAIN = "demo.webitel.com"  # the calls' domain_name / presence_id in the captures
CALLCENTER = "CUSTOM->callcenter::info"
CALLCENTER_CAPTURE = "amqp-default-162-CUSTOM-callcenter_info.json"


def hook(event: str, url: str) -> dict[str, Any]:
    return {"event": event, "enable": True, "action": {"type": "web", "method": "POST", "url": url}}


@pytest.fixture
async def tap() -> AsyncIterator[Tap]:
    async with own_tap() as tap:
        yield tap


async def health(app: Harness) -> dict[str, Any]:
    report: dict[str, Any] = (await app.client.get("/health")).json()
    return report


async def deliveries_of(app: Harness, hook_id: str) -> list[dict[str, Any]]:
    token = await app.domain_token(DOMAIN)
    response = await app.client.get(
        f"/api/v2/hooks/{hook_id}/deliveries",
        params={"domain": DOMAIN, "limit": "1000"},
        headers={"X-Access-Token": token},
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


async def replay(tap: Tap, messages: list[Capture]) -> list[Capture]:
    """Publish every capture as captured; the ones the broker routed to our queue."""
    routed = []
    for message in messages:
        try:
            await tap.publish_capture(message)
        except PublishError:
            continue
        routed.append(message)
    return routed


def sequences(requests: Any) -> list[str]:
    return sorted(r.json()["data"]["Event-Sequence"] for r in requests)


@pytest.mark.parametrize(
    ("profile", "overrides", "layouts"),
    [
        # FreeSWITCH's shipped amqp.conf.xml, and switchhook's defaults: nothing to configure.
        ("default", {}, {"TAP.Events": STOCK_FORMAT_FIELDS}),
        (
            "webitel",
            {"amqp_format_fields": "webitel"},
            {"TAP.Events": WEBITEL_FORMAT_FIELDS, "TAP.CC-Events": WEBITEL_CC_FORMAT_FIELDS},
        ),
    ],
    ids=["stock", "webitel"],
)
async def test_both_mod_amqp_layouts_deliver_the_captured_events(
    tap: Tap,
    tmp_path: Path,
    receiver: Receiver,
    profile: str,
    overrides: dict[str, Any],
    layouts: dict[str, str],
) -> None:
    """The stock layout once delivered 0 of 60 events (switchhook bound Webitel's): now both profiles' captures,
    replayed as published, reach the hooks of their keys and nothing else does."""
    messages = captures(profile)
    wanted = [m for m in messages if event_key(m.event) in ("CHANNEL_CREATE", CALLCENTER)]
    assert {event_domain(m.event) for m in wanted} == {DOMAIN}
    async with ingesting(tap, tmp_path, **overrides) as app:
        create_id = await app.create_hook(DOMAIN, hook("CHANNEL_CREATE", receiver.url("/create")))
        callcenter_id = await app.create_hook(DOMAIN, hook(CALLCENTER, receiver.url("/callcenter")))
        # Webitel's layouts bind the callcenter key on both exchanges.
        await eventually(lambda: _bound(app, 3 if profile == "webitel" else 2), "the hooks' bindings", 10)
        report = await health(app)
        assert report["amqp"]["layouts"] == {tap.exchange_of(name): text for name, text in layouts.items()}

        routed = await replay(tap, messages)
        assert [m.name for m in routed] == [m.name for m in wanted]
        await receiver.wait_for(len(wanted))
        bound = {(b["exchange"], b["key"]) for b in (await health(app))["amqp"]["bindings"]}
        creates = [m for m in wanted if event_key(m.event) == "CHANNEL_CREATE"]
        # Every stored delivery has arrived: none was made twice, none is still to come.
        await eventually(
            lambda: _delivered(app, create_id, len(creates)), "the CHANNEL_CREATE deliveries to be recorded"
        )
        assert len(await deliveries_of(app, callcenter_id)) == 1
        assert sequences(receiver.on("/create")) == sorted(m.event["Event-Sequence"] for m in creates)
        (callcenter,) = receiver.on("/callcenter")
        assert callcenter.json()["data"]["CC-Queue"] == "q1@demo.webitel.com"
    if profile == "default":
        assert bound == {
            (tap.events_exchange, "*.*.CHANNEL_CREATE.*.*"),
            (tap.events_exchange, "*.*.CUSTOM.callcenter%3A%3Ainfo.*"),
        }
    else:
        assert bound == {
            (tap.events_exchange, "*.CHANNEL_CREATE.*.*.*"),
            (tap.events_exchange, "*.CUSTOM.callcenter%3A%3Ainfo.*.*"),
            (tap.cc_exchange, "*.callcenter%3A%3Ainfo.*.*.*"),
        }


async def _bound(app: Harness, count: int) -> bool:
    return len((await health(app))["amqp"]["bindings"]) == count


async def _delivered(app: Harness, hook_id: str, count: int) -> bool:
    rows = await deliveries_of(app, hook_id)
    return len(rows) == count and all(row.get("status") == "delivered" for row in rows)


async def test_one_event_over_esl_and_amqp_is_delivered_once(tmp_path: Path, receiver: Receiver) -> None:
    """ESL and AMQP side by side for redundancy: the same FreeSWITCH event (same Core-UUID and Event-Sequence)
    arrives over both, in the CUSTOM case with its headers in another order, and is sent once."""
    callcenter = load_capture(CALLCENTER_CAPTURE)
    create_over_amqp = load_capture("amqp-default-008-CHANNEL_CREATE.json")
    create_over_esl = (CAPTURES_DIR / "esl" / "esl-default-001-CHANNEL_CREATE.json").read_bytes()
    assert create_over_esl == create_over_amqp.body_raw  # the same event, byte for byte, on both paths
    reordered = dict(reversed(list(callcenter.event.items())))
    assert json.dumps(reordered).encode() != callcenter.body_raw
    # Markers, one per path, each behind the duplicates on its own path (each source hands over in order).
    esl_marker = load_capture("amqp-default-010-CHANNEL_CREATE.json")
    amqp_marker = load_capture("amqp-default-040-CHANNEL_CREATE.json")

    async with own_tap() as tap, EslPeer() as peer, ingesting(tap, tmp_path, esl_url=peer.url()) as app:
        create_id = await app.create_hook(DOMAIN, hook("CHANNEL_CREATE", receiver.url("/create")))
        callcenter_id = await app.create_hook(DOMAIN, hook(CALLCENTER, receiver.url("/callcenter")))
        await eventually(lambda: _bound(app, 2), "the hooks' bindings", 10)
        conn = await peer.wait_subscribed()
        await eventually(
            lambda: {"CHANNEL_CREATE", CALLCENTER} <= conn.subscription, "the ESL subscription to both keys"
        )

        await peer.send(
            event_json_frame(reordered),
            b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(create_over_esl) + create_over_esl,
            event_json_frame(esl_marker.event),
        )
        for message in (callcenter, create_over_amqp, amqp_marker):
            await tap.publish_capture(message)

        await receiver.wait_for(4)
        await eventually(lambda: _delivered(app, create_id, 3), "three CHANNEL_CREATE deliveries recorded")
        await eventually(lambda: _delivered(app, callcenter_id, 1), "one callcenter::info delivery recorded")
        sources = {name: app.source(name).counters()["received"] for name in ("esl", "amqp")}
    assert sources == {"esl": 3, "amqp": 3}
    assert len(receiver.on("/callcenter")) == 1
    assert sequences(receiver.on("/create")) == sorted(
        m.event["Event-Sequence"] for m in (create_over_amqp, esl_marker, amqp_marker)
    )
