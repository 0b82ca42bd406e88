"""A hook's fallback URL (issue 16 §1, docs/fallback.md), end to end: real receivers, a dead port, a server that
resets, a primary that never answers; the attempt log's legs through the API; the primary's pause and probe."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.app import ROOT, Harness, make_settings, running
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

DOMAIN = "fallback.example"


@pytest.fixture
async def fallback() -> AsyncIterator[Receiver]:
    """The fallback receiver (the `receiver` fixture is the primary)."""
    async with Receiver() as server:
        yield server


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A URL whose port refuses connections: bound for the whole test, never listening (no other test takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/dead"


@pytest.fixture
async def resetting_url() -> AsyncIterator[str]:
    """A server that reads the request and drops the connection without an answer."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/reset"
    finally:
        server.close()
        await server.wait_closed()


def hook(url: str, fallback_url: str | None, **extra: Any) -> dict[str, Any]:
    action = {"type": "web", "method": "POST", "url": url}
    if fallback_url is not None:
        action["fallbackUrl"] = fallback_url
    return {"event": "DTMF", "enable": True, "retries": 3, "delay": 60, "action": action, **extra}


def dtmf(n: int = 0, **headers: str) -> dict[str, str]:
    return {"Event-Name": "DTMF", "variable_domain_name": DOMAIN, "n": str(n), **headers}


async def send(app: Harness, *events: dict[str, str]) -> None:
    assert (await app.services.events.accept(list(events), source="http")).deliveries == len(events)


async def delivery_of(app: Harness, hook_id: str, status: str) -> dict[str, Any]:
    """The hook's only delivery once an attempt left it with `status`, read through the API (with its attempts)."""

    async def reached() -> dict[str, Any] | None:
        rows = await app.services.deliveries.list_for_hook(ROOT, DOMAIN, hook_id, None, None, None)
        if len(rows) != 1 or rows[0]["status"] != status or not rows[0]["attempts"]:
            return None
        token = await app.domain_token(DOMAIN)
        response = await app.client.get(f"/api/v2/deliveries/{rows[0]['id']}", headers={"X-Access-Token": token})
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()["data"]
        return view

    found: dict[str, Any] = await eventually(reached, f"the delivery of hook {hook_id} to be {status}", 10)
    return found


async def test_no_answer_from_the_primary_fails_over_with_the_same_request_and_both_legs_logged(
    any_app: Harness, fallback: Receiver, dead_url: str
) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    primary = dead_url.replace("http://", "http://user:pa55@")
    hook_id = await any_app.create_hook(
        DOMAIN,
        hook(primary, fallback.url("/fb"), secret=secret, headers={"X-Tenant": "t1", "x-failover-reason": "mine"}),
    )
    await send(any_app, dtmf(7, **{"Unique-ID": "call-1"}))

    (request,) = await fallback.wait_for(1)
    view = await delivery_of(any_app, hook_id, "delivered")

    headers = request.headers
    assert request.method == "POST" and request.path == "/fb" and request.json()["data"]["n"] == "7"
    assert headers["X-Original-Url"] == dead_url.replace("http://", "http://user:********@")  # password masked
    assert headers["X-Failover-Reason"] == "refused"  # switchhook's own: the hook's header of that name is replaced
    assert [name for name in headers if name.lower() == "x-failover-reason"] == ["X-Failover-Reason"]
    assert headers["X-Tenant"] == "t1" and headers["X-Call-Id"] == "call-1"
    verified = Webhook(secret).verify(request.body, headers)  # the primary's signature, valid for the same body
    assert headers["webhook-id"] == verified["id"] == view["id"]

    (attempt,) = view["attempts_log"]
    assert attempt["statusCode"] == 200 and attempt["error"] is None
    primary_leg, fallback_leg = attempt["legs"]
    assert primary_leg["leg"] == "primary" and primary_leg["url"] == headers["X-Original-Url"]
    assert primary_leg["statusCode"] is None and "Connect" in primary_leg["error"] and primary_leg["reason"] is None
    assert fallback_leg == {
        "leg": "fallback",
        "url": fallback.url("/fb"),
        "statusCode": 200,
        "durationMs": fallback_leg["durationMs"],
        "error": None,
        "reason": "refused",
    }
    metrics = any_app.runtime.metrics.render().decode()
    assert 'switchhook_failovers_total{outcome="delivered",trigger="primary_failed"} 1.0' in metrics


async def test_a_primary_that_never_answers_fails_over_on_its_timeout(
    app: Harness, receiver: Receiver, fallback: Receiver
) -> None:
    never = asyncio.Event()
    receiver.routes["/slow"] = Reply(gate=never)
    try:
        hook_id = await app.create_hook(DOMAIN, hook(receiver.url("/slow"), fallback.url("/fb"), timeout=0.3))
        await send(app, dtmf())
        (request,) = await fallback.wait_for(1)
        view = await delivery_of(app, hook_id, "delivered")
    finally:
        never.set()
    assert request.headers["X-Failover-Reason"] == "timeout"
    assert [leg["error"] for leg in view["attempts_log"][0]["legs"]] == ["timeout after 0.3 s", None]


async def test_a_reset_connection_fails_over(app: Harness, fallback: Receiver, resetting_url: str) -> None:
    await app.create_hook(DOMAIN, hook(resetting_url, fallback.url("/fb")))
    await send(app, dtmf())
    (request,) = await fallback.wait_for(1)
    assert request.headers["X-Failover-Reason"] == "reset"


async def test_a_5xx_fails_over_and_a_failed_fallback_leaves_the_primarys_retry(
    any_app: Harness, receiver: Receiver, fallback: Receiver
) -> None:
    receiver.routes["/p"] = Reply(503, headers={"Retry-After": "120"})
    fallback.routes["/fb"] = Reply(500, body=b"fallback down")
    hook_id = await any_app.create_hook(DOMAIN, hook(receiver.url("/p"), fallback.url("/fb")))
    await send(any_app, dtmf())

    (request,) = await fallback.wait_for(1)
    view = await delivery_of(any_app, hook_id, "pending")
    assert request.headers["X-Failover-Reason"] == "http 503"
    # The primary's failure decides: its status, its Retry-After; the fallback's answer is said after it.
    assert view["lastStatus"] == 503 and view["lastError"] == "HTTP 503; fallback: HTTP 500"
    assert view["nextAttemptAt"] - view["updatedAt"] > 100  # Retry-After: 120 s, not the 60 s delay
    (attempt,) = view["attempts_log"]
    assert [(leg["leg"], leg["statusCode"], leg["reason"]) for leg in attempt["legs"]] == [
        ("primary", 503, None),
        ("fallback", 500, "http 503"),
    ]
    metrics = any_app.runtime.metrics.render().decode()
    assert 'switchhook_failovers_total{outcome="answered",trigger="primary_failed"} 1.0' in metrics


async def test_a_4xx_from_the_primary_is_an_answer_and_never_fails_over(
    app: Harness, receiver: Receiver, fallback: Receiver
) -> None:
    receiver.routes["/p"] = Reply(404)
    hook_id = await app.create_hook(DOMAIN, hook(receiver.url("/p"), fallback.url("/fb")))
    await send(app, dtmf())
    view = await delivery_of(app, hook_id, "pending")  # recorded: the attempt is over
    assert fallback.requests == []
    assert view["lastStatus"] == 404 and "legs" not in view["attempts_log"][0]


async def test_the_egress_guard_refuses_a_private_fallback_and_is_never_a_way_around_it(
    tmp_path: Path, receiver: Receiver, fallback: Receiver
) -> None:
    receiver.routes["/p"] = Reply(503)
    async with running(make_settings(tmp_path, egress_deny="10.0.0.0/8")) as app:
        failing = await app.create_hook(DOMAIN, hook(receiver.url("/p"), "http://10.1.2.3/private"))
        await send(app, dtmf())
        view = await delivery_of(app, failing, "pending")
        primary_leg, fallback_leg = view["attempts_log"][0]["legs"]
        assert primary_leg["statusCode"] == 503
        assert fallback_leg["statusCode"] is None and fallback_leg["error"].startswith("egress refused")
        await app.services.hooks.delete(ROOT, DOMAIN, failing)

        # A primary the guard refuses is switchhook's refusal, not the endpoint's failure: no failover.
        refused = await app.create_hook(DOMAIN, hook("http://10.1.2.3/private", fallback.url("/fb")))
        await send(app, dtmf())
        view = await delivery_of(app, refused, "failed")
    assert fallback.requests == [] and view["lastError"].startswith("egress refused")


async def test_while_the_primary_is_paused_deliveries_go_straight_to_the_fallback_and_are_not_shelved(
    tmp_path: Path, receiver: Receiver, fallback: Receiver
) -> None:
    receiver.routes["/p"] = Reply(503)
    settings = make_settings(tmp_path, breaker_failures=2, breaker_cooldown_s=60, breaker_max_cooldown_s=60)
    async with running(settings) as app:
        hook_id = await app.create_hook(DOMAIN, hook(receiver.url("/p"), fallback.url("/fb")))
        await send(app, dtmf(0), dtmf(1))
        await fallback.wait_for(2)  # two failovers: the primary is paused
        await send(app, *(dtmf(n) for n in range(2, 12)))
        requests = await fallback.wait_for(12)

        async def all_delivered() -> bool:
            rows = await app.services.deliveries.list_for_hook(ROOT, DOMAIN, hook_id, "delivered", None, None)
            return len(rows) == 12  # none shelved, none waiting for a probe

        await eventually(all_delivered, "every delivery delivered by the fallback")
        metrics = app.runtime.metrics.render().decode()
    assert len(receiver.on("/p")) == 2  # paused: nothing more to the primary
    assert sorted(r.headers["X-Failover-Reason"] for r in requests[2:]) == ["paused"] * 10
    assert requests[2].headers["X-Original-Url"] == receiver.url("/p")
    assert 'switchhook_failovers_total{outcome="delivered",trigger="primary_paused"} 10.0' in metrics


async def test_after_the_cooldown_one_probe_goes_to_the_primary_and_its_answer_resumes_it(
    tmp_path: Path, receiver: Receiver, fallback: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.routes["/p"] = Reply(503)
    settings = make_settings(tmp_path, breaker_failures=1, breaker_cooldown_s=0.2, breaker_max_cooldown_s=0.2)
    caplog.set_level(logging.INFO, "switchhook.delivery")
    async with running(settings) as app:
        await app.create_hook(DOMAIN, hook(receiver.url("/p"), fallback.url("/fb")))
        await send(app, dtmf(0))
        await fallback.wait_for(1)  # failed over: the primary is paused
        receiver.routes["/p"] = Reply(200)  # the primary is back

        def answered() -> int:
            return len(receiver.requests) + len(fallback.requests)

        sent = 1
        while len(receiver.on("/p")) < 2:  # one event at a time until one of them is the probe
            assert sent < 1000, "no probe of the primary"
            before = answered()
            await send(app, dtmf(sent))
            sent += 1
            await eventually(lambda: answered() > before, "the event's request")  # noqa: B023 - awaited here
        await send(app, dtmf(100), dtmf(101))  # resumed: to the primary, no failover
        await receiver.wait_for(4, path="/p")
    assert len(fallback.requests) == sent - 1  # all but the probe, whose answer delivered it
    assert [r.headers["X-Failover-Reason"] for r in fallback.requests[1:]] == ["paused"] * (len(fallback.requests) - 1)
    assert "X-Original-Url" not in receiver.on("/p")[-1].headers
    logged = [r.getMessage() for r in caplog.records if "primary URL" in r.getMessage()]
    assert logged[0].startswith("hook ") and "primary URL down (HTTP 503)" in logged[0]
    assert "primary URL answers again" in logged[-1]
    assert all("127.0.0.1" not in message for message in logged)  # the log names the hook, never its URLs


async def test_an_ordered_hook_keeps_a_calls_order_across_primary_and_fallback(
    any_app: Harness, receiver: Receiver, fallback: Receiver
) -> None:
    """One attempt is both legs: a call's next delivery waits for the fallback as for the primary."""
    receiver.answer(*[503, 200] * 10)  # every other attempt fails over
    hook_id = await any_app.create_hook(DOMAIN, hook(receiver.url("/p"), fallback.url("/fb"), order="call", retries=0))
    events = [dtmf(n, **{"Unique-ID": "call-7", "Event-Sequence": str(100 + n)}) for n in range(12)]
    await send(any_app, *events)

    async def all_settled() -> bool:
        rows = await any_app.services.deliveries.list_for_hook(ROOT, DOMAIN, hook_id, "delivered", None, None)
        return len(rows) == 12

    await eventually(all_settled, "the call's 12 deliveries", 15)
    assert len(fallback.requests) == 6 and len(receiver.requests) == 12  # both routes carried the call
    # Every request in arrival order, primary and fallback together, is in the call's order: each failed primary
    # request is followed by its fallback, never by the call's next event.
    arrived = sorted([*receiver.requests, *fallback.requests], key=lambda r: r.at)
    numbers = [int(r.json()["data"]["n"]) for r in arrived]
    assert numbers == sorted(numbers) and sorted(set(numbers)) == list(range(12))
    assert [int(r.headers["X-Call-Sequence"]) for r in arrived] == [n + 1 for n in numbers]
    assert [int(r.json()["data"]["n"]) for r in fallback.requests] == [0, 2, 4, 6, 8, 10]


async def test_a_hook_without_a_fallback_logs_one_request_per_attempt(app: Harness, receiver: Receiver) -> None:
    receiver.routes["/p"] = Reply(503)
    hook_id = await app.create_hook(DOMAIN, hook(receiver.url("/p"), None))
    await send(app, dtmf())
    view = await delivery_of(app, hook_id, "pending")
    assert view["attempts_log"][0]["statusCode"] == 503 and "legs" not in view["attempts_log"][0]


PRIMARY_PASSWORD = "primary-url-password-31"
FALLBACK_PASSWORD = "fallback-url-password-47"


async def test_the_fallback_urls_password_appears_nowhere(
    tmp_path: Path, fallback: Receiver, dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Masked wherever the hook's url is: hook reads, the delivery log, logs (and X-Original-Url)."""
    caplog.set_level(logging.DEBUG)
    fallback.routes["/fb"] = Reply(500)
    primary = dead_url.replace("http://", f"http://u:{PRIMARY_PASSWORD}@")
    fallback_url = fallback.url("/fb").replace("http://", f"http://u:{FALLBACK_PASSWORD}@")
    async with running(make_settings(tmp_path, log_level="DEBUG")) as app:
        token = await app.domain_token(DOMAIN)
        headers = {"X-Access-Token": token}
        hook_id = await app.create_hook(DOMAIN, hook(primary, fallback_url), token)
        await send(app, dtmf())
        view = await delivery_of(app, hook_id, "pending")
        reads = [
            await app.client.get(path, headers=headers)
            for path in (f"/api/v2/hooks/{hook_id}", "/api/v2/hooks", f"/api/v2/hooks/{hook_id}/deliveries")
        ]
    assert [r.status_code for r in reads] == [200, 200, 200]
    read, listed, log = (r.text for r in reads)
    (request,) = fallback.requests
    shown = [json.dumps(view), read, listed, log, caplog.text, json.dumps(request.headers)]
    assert all(PRIMARY_PASSWORD not in text and FALLBACK_PASSWORD not in text for text in shown[:-1])
    assert PRIMARY_PASSWORD not in shown[-1]  # the fallback gets its own URL's credentials, never the primary's
    assert f"u:********@127.0.0.1:{fallback.port}/fb" in read
    assert view["attempts_log"][0]["legs"][1]["url"] == f"http://u:********@127.0.0.1:{fallback.port}/fb"


async def test_the_api_refuses_a_bad_fallback_url_and_null_removes_it(app: Harness, receiver: Receiver) -> None:
    token = await app.domain_token(DOMAIN)
    headers = {"X-Access-Token": token}
    for bad, message in (
        ("relative/path", "action.fallbackUrl must be an absolute http or https URL."),
        ("ftp://files.example/x", "action.fallbackUrl must be an absolute http or https URL."),
        (17, "action.fallbackUrl must be an absolute http or https URL, or null."),
        (
            "http://x.example/" + "a" * 2048,
            "action.fallbackUrl must be at most 2048 characters with a fallbackUrl set.",
        ),
        (receiver.url("/p"), "action.fallbackUrl must differ from action.url."),
    ):
        response = await app.client.post("/api/v2/hooks", json=hook(receiver.url("/p"), bad), headers=headers)  # type: ignore[arg-type]
        assert response.status_code == 400, response.text
        assert message in response.text
    hook_id = await app.create_hook(DOMAIN, hook(receiver.url("/p"), receiver.url("/fb")), token)
    without = hook(receiver.url("/p"), None)
    without["action"]["fallbackUrl"] = None  # null: the same as absent
    replaced = await app.client.put(f"/api/v2/hooks/{hook_id}", json=without, headers=headers)
    assert replaced.status_code == 200, replaced.text
    read = (await app.client.get(f"/api/v2/hooks/{hook_id}", headers=headers)).json()["data"]
    assert "fallbackUrl" not in read["action"]


async def test_a_get_query_is_rendered_onto_the_fallback_never_the_primary_urls_own(
    app: Harness, fallback: Receiver, dead_url: str
) -> None:
    get = hook(dead_url + "?token=primary-only", fallback.url("/fb?site=b"), fields=["n"])
    get["action"]["method"] = "GET"
    await app.create_hook(DOMAIN, get)
    await send(app, dtmf(5))
    (request,) = await fallback.wait_for(1)
    assert request.method == "GET" and parse_qs(request.query) == {"site": ["b"], "n": ["5"]}
    assert request.headers["X-Original-Url"] == dead_url + "?token=primary-only"  # as hook reads show it


async def test_a_hook_is_shelved_only_when_its_fallback_is_down_too(
    tmp_path: Path, receiver: Receiver, fallback: Receiver
) -> None:
    """The worker's circuit measures each attempt's last request: the fallback's once it was sent."""
    receiver.routes["/p"] = Reply(503)
    fallback.routes["/fb"] = Reply(404)  # an answer: the endpoint the worker last reached is up
    settings = make_settings(tmp_path, breaker_failures=2, breaker_cooldown_s=60, breaker_max_cooldown_s=60)
    async with running(settings) as app:
        worker = app.runtime.worker
        assert worker is not None
        up = await app.create_hook(DOMAIN, hook(receiver.url("/p"), fallback.url("/fb")))
        await send(app, dtmf(0), dtmf(1), dtmf(2))
        await fallback.wait_for(3)

        async def attempted() -> bool:
            rows = await app.services.deliveries.list_for_hook(ROOT, DOMAIN, up, "pending", None, None)
            return len(rows) == 3 and all(row["attempts"] == 1 for row in rows)

        await eventually(attempted, "the three attempted, the fallback answering 404")
        assert worker.admission.breakers.reopens_at(up) is None  # the fallback answers: not paused here

        receiver.routes["/p2"] = Reply(503)
        fallback.routes["/down"] = Reply(503)
        down = await app.create_hook(DOMAIN, hook(receiver.url("/p2"), fallback.url("/down"), event="DTMF2"))
        await send(app, *(dtmf(n, **{"Event-Name": "DTMF2"}) for n in range(3)))
        # Both down: paused here too, its deliveries shelved (docs/breaker.md) until a probe gets an answer.
        await eventually(lambda: worker.admission.breakers.reopens_at(down) is not None, "the hook paused here")
