"""End to end on the embedded default: events in over HTTP, real requests out to a real local receiver."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any
from urllib.parse import parse_qsl

from standardwebhooks.webhooks import Webhook

from tests.support.app import Harness
from tests.support.fixtures import fixture_bytes, load_fixture_event
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

DIALER_END = "esl-plain-decoded-CUSTOM-engine__dialer_member_end-webitel-docs-en.txt"
DOMAIN = "demo.webitel.com"


def web(url: str, method: str = "POST") -> dict[str, str]:
    return {"type": "web", "method": method, "url": url}


async def wait_status(app: Harness, delivery_id: str, status: str, timeout_s: float = 10.0) -> dict[str, Any]:
    seen: list[Any] = [None]

    async def reached() -> dict[str, Any] | None:
        seen[0] = view = await app.services.deliveries.get(ROOT, DOMAIN, delivery_id)
        return dict(view) if view is not None and view["status"] == status else None

    found: dict[str, Any] = await eventually(
        reached, f"delivery {delivery_id} to be {status}", timeout_s, lambda: f"it is {seen[0] and seen[0]['status']}"
    )
    return found


async def only_delivery(app: Harness, hook_id: str) -> str:
    rows = await app.services.deliveries.list_for_hook(ROOT, DOMAIN, hook_id, None, None, None)
    assert len(rows) == 1
    return str(rows[0]["id"])


from tests.support.app import ROOT  # noqa: E402


async def test_seed_raw_body_rendered_from_the_dialer_member_end_fixture(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    event = load_fixture_event(DIALER_END)
    await app.create_hook(
        DOMAIN,
        {
            "event": "CUSTOM->engine::dialer_member_end",
            "enable": True,
            "action": web(receiver.url()),
            "customBody": True,
            "headers": {"Content-Type": "application/json"},
            "rawBody": (
                '{ "dlr_id": "${dialerId}", "member_id": "${id}", "end_cause": "${endCause}", "gone": "${dlr_id}" }'
            ),
        },
        token,
    )

    response = await app.post_events(event, token)

    assert response.status_code == 202
    assert response.json() == {"status": "OK", "data": {"accepted": 1, "deliveries": 1, "dropped": 0}}
    (request,) = await receiver.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == (
        b'{ "dlr_id": "5971aea9a7775e000b8ec987", "member_id": "5971aeb9a7775e000b8ec98e", '
        b'"end_cause": "MAX_TRY_COUNT", "gone": "" }'
    )


async def test_default_envelope_with_fields_map_and_header_templates(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    hook_id = await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_CREATE",
            "enable": True,
            "action": web(receiver.url("/calls")),
            "fields": ["Unique-ID", "Caller-Caller-ID-Number", "variable_domain_name"],
            "map": {"Caller-Caller-ID-Number": "from"},
            "headers": {
                "X-Call": "${Unique-ID}",
                "Authorization": "Bearer static",
                "X-Domain": "${domain_name}",
            },
        },
        token,
    )
    event = {
        "Event-Name": "CHANNEL_CREATE",
        "Unique-ID": "u-1",
        "Caller-Caller-ID-Number": "100",
        "variable_domain_name": DOMAIN,
        "Other": "dropped",
    }

    assert (await app.post_events([event], token)).status_code == 202

    (request,) = await receiver.wait_for(1)
    delivery_id = await only_delivery(app, hook_id)
    assert request.json() == {
        "id": delivery_id,
        "action": "CHANNEL_CREATE",
        "data": {"Unique-ID": "u-1", "from": "100", "variable_domain_name": DOMAIN},
    }
    assert request.headers["X-Call"] == "u-1"
    assert request.headers["Authorization"] == "Bearer static"
    assert request.headers["X-Domain"] == DOMAIN
    assert request.headers["Content-Type"] == "application/json"
    delivered = await wait_status(app, delivery_id, "delivered")
    assert delivered["attempts"] == 1


async def test_caller_name_with_quotes_backslashes_and_newline_stays_valid_json(
    app: Harness, receiver: Receiver
) -> None:
    token = await app.domain_token(DOMAIN)
    await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_ANSWER",
            "enable": True,
            "action": web(receiver.url()),
            "customBody": True,
            "rawBody": '{"caller": "${Caller-Caller-ID-Name}", "n": "${Caller-Caller-ID-Number}"}',
        },
        token,
    )
    name = 'Bob "The Boss" O\\Neil\nsecond line'
    event = {
        "Event-Name": "CHANNEL_ANSWER",
        "Caller-Caller-ID-Name": name,
        "Caller-Caller-ID-Number": "7",
        "Channel-Presence-ID": f"7@{DOMAIN}",
    }

    await app.post_events(event, token)

    (request,) = await receiver.wait_for(1)
    assert request.json() == {"caller": name, "n": "7"}


async def test_get_sends_data_as_query_string_without_body(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    await app.create_hook(
        DOMAIN,
        {
            "event": "DTMF",
            "enable": True,
            "action": web(receiver.url("/dtmf?static=1"), "GET"),
            "fields": ["DTMF-Digit", "Unique-ID"],
        },
        token,
    )
    event = {"Event-Name": "DTMF", "DTMF-Digit": "#", "Unique-ID": "a b", "variable_domain_name": DOMAIN}

    await app.post_events(event, token)

    (request,) = await receiver.wait_for(1)
    assert request.method == "GET"
    assert request.body == b""
    assert parse_qsl(request.query) == [("static", "1"), ("DTMF-Digit", "#"), ("Unique-ID", "a b")]


async def test_text_event_plain_posted_as_freeswitch_sends_it(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token("192.0.2.2")
    await app.create_hook(
        "192.0.2.2",
        {
            "event": "CUSTOM->mod_audio_stream::play",
            "enable": True,
            "action": web(receiver.url()),
            "fields": ["Unique-ID", "Event-Date-Local", "_body"],
        },
        token,
    )
    raw = fixture_bytes("esl-plain-CUSTOM-mod_audio_stream__play-genesis.txt")

    response = await app.client.post(
        "/api/v2/events", content=raw, headers={"X-Access-Token": token, "Content-Type": "text/event-plain"}
    )

    assert response.status_code == 202, response.text
    (request,) = await receiver.wait_for(1)
    data = request.json()["data"]
    assert data["Unique-ID"] == "84e7dad0-dc1e-4234-8c56-5688e2069d99"
    assert data["Event-Date-Local"] == "2024-08-16 13:46:02"
    assert json.loads(data["_body"])["sampleRate"] == 16000


async def test_retries_until_success_and_logs_every_attempt(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    receiver.answer(500, 500, 200)
    hook_id = await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_HANGUP",
            "enable": True,
            "action": web(receiver.url()),
            "retries": 3,
            "delay": 0.2,
        },
        token,
    )

    await app.post_events({"Event-Name": "CHANNEL_HANGUP", "variable_domain_name": DOMAIN}, token)

    requests = await receiver.wait_for(3)
    delivery_id = await only_delivery(app, hook_id)
    view = await wait_status(app, delivery_id, "delivered")
    assert view["attempts"] == 3
    assert [a["statusCode"] for a in view["attempts_log"]] == [500, 500, 200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert all(gap >= 0.19 for gap in gaps), gaps  # fixed `delay` between attempts
    assert len({r.json()["id"] for r in requests}) == 1  # the message id is stable across retries
    listed = await app.client.get(f"/api/v2/hooks/{hook_id}/deliveries", headers={"X-Access-Token": token})
    assert listed.json()["data"][0]["status"] == "delivered"


async def test_gives_up_after_retries_are_spent(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    receiver.default = Reply(503, b"down")
    hook_id = await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_HANGUP",
            "enable": True,
            "action": web(receiver.url()),
            "retries": 1,
            "delay": 0.1,
        },
        token,
    )

    await app.post_events({"Event-Name": "CHANNEL_HANGUP", "variable_domain_name": DOMAIN}, token)

    await receiver.wait_for(2)
    view = await wait_status(app, await only_delivery(app, hook_id), "failed")
    assert view["attempts"] == 2
    assert "gave up after 2" in view["lastError"]
    assert view["attempts_log"][0]["response"] == "down"


async def test_retry_after_is_honoured(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    receiver.answer(Reply(429, headers={"Retry-After": "1"}), 200)
    await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_HANGUP",
            "enable": True,
            "action": web(receiver.url()),
            "retries": 2,
            "delay": 0.1,
        },
        token,
    )

    await app.post_events({"Event-Name": "CHANNEL_HANGUP", "variable_domain_name": DOMAIN}, token)

    first, second = await receiver.wait_for(2, timeout_s=5)
    assert second.at - first.at >= 0.95


async def test_410_gone_disables_the_hook_that_opts_in(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    receiver.answer(410)
    hook_id = await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_HANGUP",
            "enable": True,
            "action": web(receiver.url()),
            "retries": 5,
            "delay": 0.1,
            "disableOnGone": True,
        },
        token,
    )

    await app.post_events({"Event-Name": "CHANNEL_HANGUP", "variable_domain_name": DOMAIN}, token)

    await receiver.wait_for(1)
    await wait_status(app, await only_delivery(app, hook_id), "failed")
    hook = (await app.client.get(f"/api/v2/hooks/{hook_id}", headers={"X-Access-Token": token})).json()["data"]
    assert hook["enable"] is False
    assert "410" in hook["disabledReason"]
    # Disabled: the next event is not even stored.
    response = await app.post_events({"Event-Name": "CHANNEL_HANGUP", "variable_domain_name": DOMAIN}, token)
    assert response.json()["data"]["deliveries"] == 0
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 1


async def test_ttl_expires_an_undelivered_delivery(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    receiver.default = Reply(500)
    hook_id = await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_HANGUP",
            "enable": True,
            "action": web(receiver.url()),
            "retries": 50,
            "delay": 0.4,
            "ttl": 1,
        },
        token,
    )

    await app.post_events({"Event-Name": "CHANNEL_HANGUP", "variable_domain_name": DOMAIN}, token)

    view = await wait_status(app, await only_delivery(app, hook_id), "expired", timeout_s=5)
    assert "ttl" in view["lastError"]
    assert 2 <= len(receiver.requests) <= 3


async def test_signature_verifies_with_the_standard_webhooks_package(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_CREATE",
            "enable": True,
            "action": web(receiver.url()),
            "secret": secret,
        },
        token,
    )

    await app.post_events({"Event-Name": "CHANNEL_CREATE", "variable_domain_name": DOMAIN}, token)

    (request,) = await receiver.wait_for(1)
    headers = {k.lower(): v for k, v in request.headers.items()}
    verified = Webhook(secret).verify(request.body, headers)
    assert verified["action"] == "CHANNEL_CREATE"
    assert headers["webhook-id"] == verified["id"]
    tampered = request.body.replace(b"CHANNEL_CREATE", b"CHANNEL_DESTROY")
    try:
        Webhook(secret).verify(tampered, headers)
    except Exception:
        pass
    else:
        raise AssertionError("a tampered body verified")


async def test_nothing_is_sent_when_nothing_matches(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    other_token = await app.domain_token("other.example")
    await app.create_hook(DOMAIN, {"event": "CHANNEL_CREATE", "enable": True, "action": web(receiver.url("/a"))}, token)
    await app.create_hook(
        DOMAIN, {"event": "CHANNEL_ANSWER", "enable": False, "action": web(receiver.url("/b"))}, token
    )
    await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_HANGUP",
            "enable": True,
            "action": web(receiver.url("/c")),
            "filter": {"variable_billsec": {"operation": ">", "value": 10000}},
        },
        token,
    )
    await app.create_hook(
        "other.example",
        {
            "event": "CHANNEL_CREATE",
            "enable": True,
            "action": web(receiver.url("/d")),
        },
        other_token,
    )

    cases = [
        {"Event-Name": "DTMF", "variable_domain_name": DOMAIN},  # no hook for the key
        {"Event-Name": "CHANNEL_ANSWER", "variable_domain_name": DOMAIN},  # disabled hook
        {
            "Event-Name": "CHANNEL_HANGUP",
            "variable_domain_name": DOMAIN,
            "variable_billsec": "9999",
        },  # filter
        {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": "third.example"},  # another domain
        {"Event-Name": "CHANNEL_CREATE"},  # no domain at all
    ]
    root = await app.root_headers()
    response = await app.client.post("/api/v2/events", json=cases, headers=root)

    assert response.json()["data"] == {"accepted": 5, "deliveries": 0, "dropped": 1}
    # Control: a matching event does go out, so the silence above is not an accident.
    await app.post_events(
        {"Event-Name": "CHANNEL_HANGUP", "variable_domain_name": DOMAIN, "variable_billsec": "10001"}, token
    )
    (request,) = await receiver.wait_for(1)
    assert request.path == "/c"
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 1


async def test_domain_caller_cannot_inject_events_for_another_domain(app: Harness, receiver: Receiver) -> None:
    token_b = await app.domain_token("b.example")
    await app.create_hook(DOMAIN, {"event": "CHANNEL_CREATE", "enable": True, "action": web(receiver.url())})

    refused = await app.post_events({"Event-Name": "CHANNEL_CREATE", "variable_domain_name": DOMAIN}, token_b)
    # An event with no domain gets the caller's own domain, never another's.
    confined = await app.post_events({"Event-Name": "CHANNEL_CREATE"}, token_b)

    assert refused.status_code == 403
    assert DOMAIN not in refused.json()["info"]
    assert confined.json()["data"]["deliveries"] == 0
    await asyncio.sleep(0.2)
    assert receiver.requests == []


async def test_bad_events_are_400_and_store_nothing(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    await app.create_hook(DOMAIN, {"event": "CHANNEL_CREATE", "enable": True, "action": web(receiver.url())}, token)
    good = {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": DOMAIN}

    no_name = await app.post_events([good, {"variable_domain_name": DOMAIN}], token)
    not_object = await app.post_events([good, 5], token)
    garbage = await app.client.post("/api/v2/events", content=b"{nope", headers={"X-Access-Token": token})

    assert [r.status_code for r in (no_name, not_object, garbage)] == [400, 400, 400]
    assert "Event-Name" in no_name.json()["info"]
    await asyncio.sleep(0.2)
    assert receiver.requests == []


async def test_dry_run_reports_without_sending_and_send_true_sends(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    hook_id = await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_HANGUP",
            "enable": True,
            "action": web(receiver.url()),
            "filter": {"Hangup-Cause": {"operation": "==", "value": "NORMAL_CLEARING"}},
        },
        token,
    )
    event = {"Event-Name": "CHANNEL_HANGUP", "Hangup-Cause": "USER_BUSY"}
    headers = {"X-Access-Token": token}

    dry = await app.client.post(f"/api/v2/hooks/{hook_id}/test", json=event, headers=headers)
    sent = await app.client.post(f"/api/v2/hooks/{hook_id}/test?send=true", json=event, headers=headers)

    report = dry.json()["data"]
    assert report["filter"] == {"Hangup-Cause": False}
    assert report["filterPasses"] is False
    assert report["request"]["method"] == "POST"
    assert json.loads(report["request"]["body"])["data"] == event
    assert sent.json()["data"]["response"]["status"] == 200
    assert len(receiver.requests) == 1


async def test_manual_retry_requeues_a_failed_delivery(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    receiver.answer(500)
    hook_id = await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_HANGUP",
            "enable": True,
            "action": web(receiver.url()),
            "retries": 0,
        },
        token,
    )
    await app.post_events({"Event-Name": "CHANNEL_HANGUP", "variable_domain_name": DOMAIN}, token)
    delivery_id = await only_delivery(app, hook_id)
    await wait_status(app, delivery_id, "failed")

    response = await app.client.post(f"/api/v2/deliveries/{delivery_id}/retry", headers={"X-Access-Token": token})

    assert response.json() == {"status": "OK", "data": {"n": 1, "ok": 1}}
    await wait_status(app, delivery_id, "delivered")
    assert len(receiver.requests) == 2


async def test_an_event_that_arrives_twice_is_delivered_once_with_one_id(app: Harness, receiver: Receiver) -> None:
    """Broker redeliveries (and a FreeSWITCH event posted twice) never send twice: same ids, one delivery."""
    token = await app.domain_token("4f5549.sip.2600hz.com")
    await app.create_hook(
        "4f5549.sip.2600hz.com",
        {
            "event": "CHANNEL_CREATE",
            "enable": True,
            "action": web(receiver.url()),
        },
        token,
    )
    event = load_fixture_event("amqp-json-CHANNEL_CREATE-kageds-mod_amqp-trace.json")  # has Core-UUID + sequence

    first = await app.post_events(event, token)
    await receiver.wait_for(1)
    again = await app.post_events(event, token)
    redelivered = await app.services.events.accept([event], source="amqp")
    # Without Core-UUID/Event-Sequence an HTTP post is a new event every time; from a broker it is not.
    bare = {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": "4f5549.sip.2600hz.com"}
    bare_posts = [await app.post_events(bare, token) for _ in range(2)]
    bare_from_broker = [await app.services.events.accept([bare], source="amqp") for _ in range(2)]

    assert first.json()["data"]["deliveries"] == 1
    assert again.json()["data"] == {"accepted": 1, "deliveries": 0, "dropped": 0, "duplicates": 1}
    assert (redelivered.deliveries, redelivered.duplicates) == (0, 1)
    assert [p.json()["data"]["deliveries"] for p in bare_posts] == [1, 1]
    assert [(r.deliveries, r.duplicates) for r in bare_from_broker] == [(1, 0), (0, 1)]
    await receiver.wait_for(4)
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 4
