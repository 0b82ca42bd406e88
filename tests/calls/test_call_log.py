"""Calls through HTTP with a real receiver (issue 14, items 1, 2 and 4): a hook on several event keys, X-Call-Id on
every request for an event with a call, and the delivery log by call (`GET /api/v2/deliveries`)."""

from __future__ import annotations

from typing import Any

from tests.support.app import Harness
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

A, B = "calls-a.example.com", "calls-b.example.com"
KEYS = ["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"]


def channel(name: str, call: str | None, ts: int | None = None, seq: int | None = None, domain: str = A) -> Any:
    event = {"Event-Name": name, "variable_domain_name": domain}
    if call is not None:
        event["Channel-Call-UUID"] = call
    if ts is not None:
        event["Event-Date-Timestamp"] = str(ts)
    if seq is not None:
        event["Event-Sequence"] = str(seq)
    return event


def hook(receiver: Receiver, path: str, event: str | list[str] = KEYS) -> dict[str, Any]:
    return {"event": event, "enable": True, "action": {"type": "web", "method": "POST", "url": receiver.url(path)}}


async def log(app: Harness, domain: str = A, token: str | None = None, **params: Any) -> tuple[int, Any]:
    token = token or await app.domain_token(domain)
    response = await app.client.get(
        "/api/v2/deliveries", params={"domain": domain, **params}, headers={"X-Access-Token": token}
    )
    return response.status_code, response.json()


async def test_a_hook_on_several_keys_gets_events_of_every_key_and_reads_back_its_array(
    any_app: Harness, receiver: Receiver
) -> None:
    app = any_app
    token = await app.domain_token(A)
    hook_id = await app.create_hook(A, hook(receiver, "/keys"), token)
    got = await app.client.get(f"/api/v2/hooks/{hook_id}", params={"domain": A}, headers={"X-Access-Token": token})
    assert got.json()["data"]["event"] == KEYS  # stored and read back as given
    events = [channel(name, "call-1") for name in [*KEYS, "CHANNEL_BRIDGE"]]  # BRIDGE is not one of its keys
    assert (await app.post_events(events, token)).status_code == 202
    received = await receiver.wait_for(3, path="/keys")
    assert sorted(r.json()["action"] for r in received) == sorted(KEYS)
    # A later single-key hook's event arriving shows nothing more was coming for the first one.
    await app.create_hook(A, hook(receiver, "/marker", "CHANNEL_BRIDGE"), token)
    assert (await app.post_events([channel("CHANNEL_BRIDGE", "call-2")], token)).status_code == 202
    await receiver.wait_for(1, path="/marker")
    assert len(receiver.on("/keys")) == 3


async def test_an_invalid_event_array_is_a_400_and_a_key_cap_counts_every_key(
    any_app: Harness, receiver: Receiver
) -> None:
    app = any_app
    token = await app.domain_token(A)
    for event in ([], ["A", "A"], [f"K{i}" for i in range(65)], ["A", ""], ["A", 5]):
        response = await app.client.post(
            "/api/v2/hooks", params={"domain": A}, json=hook(receiver, "/x", event), headers={"X-Access-Token": token}
        )
        assert response.status_code == 400, (event, response.text)
    app.services.hooks.max_hooks_per_event_key = 2
    await app.create_hook(A, hook(receiver, "/x", ["CHANNEL_ANSWER", "CHANNEL_CREATE"]), token)
    await app.create_hook(A, hook(receiver, "/x", "CHANNEL_ANSWER"), token)
    response = await app.client.post(
        "/api/v2/hooks",
        params={"domain": A},
        json=hook(receiver, "/x", ["CHANNEL_HANGUP", "CHANNEL_ANSWER"]),  # CHANNEL_ANSWER has 2 already
        headers={"X-Access-Token": token},
    )
    assert response.status_code == 400 and "CHANNEL_ANSWER" in response.json()["info"]
    await app.create_hook(A, hook(receiver, "/x", ["CHANNEL_HANGUP", "CHANNEL_CREATE"]), token)  # room on both


async def test_every_request_for_an_event_with_a_call_carries_x_call_id(any_app: Harness, receiver: Receiver) -> None:
    app = any_app
    token = await app.domain_token(A)
    headers = {"X-Call-Id": "forged-by-the-hook"}  # switchhook's own header: the hook cannot set it
    await app.create_hook(A, {**hook(receiver, "/h", "CHANNEL_CREATE"), "headers": headers}, token)
    events = [
        channel("CHANNEL_CREATE", "call-7"),
        {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": A, "Unique-ID": "leg-9"},  # the fallback header
        channel("CHANNEL_CREATE", None),  # no call
    ]
    assert (await app.post_events(events, token)).status_code == 202
    received = await receiver.wait_for(3, path="/h")
    ids = sorted((r.headers.get("X-Call-Id") or "-") for r in received)
    assert ids == ["-", "call-7", "leg-9"]
    status, body = await log(app, token=token)
    assert status == 200 and sorted(d["callId"] or "-" for d in body["data"]) == ["-", "call-7", "leg-9"]


async def test_the_log_by_call_lists_both_hooks_deliveries_in_event_order(any_app: Harness, receiver: Receiver) -> None:
    app = any_app
    token = await app.domain_token(A)
    first = await app.create_hook(A, hook(receiver, "/one"), token)
    second = await app.create_hook(A, hook(receiver, "/two", "CHANNEL_HANGUP_COMPLETE"), token)
    ts = 1_700_000_000_000_000
    # Accepted out of order: the hangup first, then the create, the answer, and one event of another call.
    await app.post_events([channel("CHANNEL_HANGUP_COMPLETE", "call-x", ts + 300, 12)], token)
    await app.post_events([channel("CHANNEL_CREATE", "call-x", ts + 100, 10)], token)
    await app.post_events(
        [channel("CHANNEL_ANSWER", "call-x", ts + 100, 11), channel("CHANNEL_CREATE", "call-y")], token
    )
    await receiver.wait_for(5)

    async def listed() -> Any:
        status, body = await log(app, token=token, call="call-x")
        assert status == 200
        return body["data"] if len(body["data"]) == 4 else None

    rows = await eventually(listed, "the call's four deliveries")
    order = [(r["hookId"], r["eventKey"]) for r in rows]
    assert order[:2] == [(first, "CHANNEL_CREATE"), (first, "CHANNEL_ANSWER")]  # same timestamp: by Event-Sequence
    assert sorted(order[2:]) == sorted([(first, "CHANNEL_HANGUP_COMPLETE"), (second, "CHANNEL_HANGUP_COMPLETE")])
    assert {r["callId"] for r in rows} == {"call-x"}
    assert all(r["attempts"] >= 0 and "createdAt" in r and "status" in r for r in rows)
    # by hook, by status, paged, and an empty time window
    status, body = await log(app, token=token, call="call-x", hook=second)
    assert [r["hookId"] for r in body["data"]] == [second]
    status, body = await log(app, token=token, hook=first, limit="2", page="2")
    assert status == 200 and len(body["data"]) == 2  # 4 of the first hook, newest first: the oldest two
    status, body = await log(app, token=token, since="0", until="1")
    assert (status, body["data"]) == (200, [])


async def test_another_domains_caller_sees_none_of_a_call_and_bad_values_are_400(
    any_app: Harness, receiver: Receiver
) -> None:
    app = any_app
    token = await app.domain_token(A)
    hook_id = await app.create_hook(A, hook(receiver, "/a", "CHANNEL_CREATE"), token)
    await app.post_events([channel("CHANNEL_CREATE", "call-z")], token)
    await receiver.wait_for(1, path="/a")
    other = await app.domain_token(B)
    assert await log(app, B, other, call="call-z") == (200, {"status": "OK", "data": []})
    assert await log(app, B, other, hook=hook_id) == (200, {"status": "OK", "data": []})
    response = await app.client.get(  # a domain caller naming another domain is confined to its own, or refused
        "/api/v2/deliveries", params={"domain": A, "call": "call-z"}, headers={"X-Access-Token": other}
    )
    assert response.status_code == 403 or response.json()["data"] == []
    bad_values: list[dict[str, str]] = [
        {"since": "-1"},
        {"until": "x"},
        {"since": "5", "until": "4"},
        {"status": "lost"},
        {"hook": "nope"},
        {"limit": "0"},
        {"limit": "1001"},
        {"page": "0"},
        {"call": ""},
    ]
    for bad in bad_values:
        status, body = await log(app, token=token, **bad)
        assert status == 400, (bad, body)
