"""Webitel fidelity, delivery side: each case cites the Webitel source it reproduces (or departs from, on purpose).

Sources (read through the stored copies of the public repositories):
- hookClass.js = webitel/engine-nodejs src/services/hook/hookClass.js (classes Hook, Message, Trigger, `Operations`,
  `_setHeadersFromEvent`, `responseError`); its HTTP client is the `request` npm package (^2.69):
- request.js = request/request request.js (`Request.prototype.qs`, `Request.prototype.json`),
  redirect.js = request/request lib/redirect.js (`Redirect`: followRedirect for GET only, maxRedirects 10).
The differences kept on purpose are listed in docs/webitel.md ("Differences from Webitel").
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from switchhook.core.filters import check, compile_filter
from switchhook.core.render import build_request
from switchhook.delivery.egress import EgressPolicy, parse_networks
from switchhook.delivery.pipeline import AUTH_MAX_RESPONSE_BYTES
from switchhook.delivery.sender import MAX_REDIRECTS, Sender
from tests.support.app import ROOT, Harness
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

DOMAIN = "demo.webitel.com"
UUID_V7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def web_action(url: str, method: str = "POST") -> dict[str, str]:
    return {"type": "web", "method": method, "url": url}


def passes_filter(value: Any, actual: Any, operation: str = "==") -> bool:
    (condition,) = compile_filter({"k": {"operation": operation, "value": value}})
    return check(condition, {"k": actual})


def rendered(event: dict[str, Any], **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "method": "POST",
        "url": "https://example.org/hook",
        "event_key": "CHANNEL_CREATE",
        "message_id": "0190c6d8-0000-7000-8000-000000000000",
        "event": event,
        "auth_values": {},
        "header_templates": {},
        "fields": [],
        "renames": {},
        "custom_body": False,
        "raw_body": None,
    }
    arguments.update(overrides)
    return build_request(**arguments)


async def deliveries_of(app: Harness, hook_id: str) -> list[dict[str, Any]]:
    rows = await app.services.deliveries.list_for_hook(ROOT, DOMAIN, hook_id, None, None, None)
    return [dict(row) for row in rows]


async def finished(app: Harness, hook_id: str, status: str) -> dict[str, Any]:
    """The hook's only delivery once it has `status`, with its attempts."""

    async def settled() -> dict[str, Any] | None:
        rows = await deliveries_of(app, hook_id)
        if len(rows) != 1 or rows[0]["status"] != status:
            return None
        view = await app.services.deliveries.get(ROOT, DOMAIN, rows[0]["id"])
        return dict(view) if view is not None else None

    found: dict[str, Any] = await eventually(settled, f"the delivery of hook {hook_id} to be {status}")
    return found


def sender(deny: str = "") -> Sender:
    return Sender(
        EgressPolicy(parse_networks(deny.split(","))), connect_timeout_s=2, max_connections=10, user_agent="t"
    )


# --- filters: hookClass.js `Operations` ran JavaScript's ==, !=, <, > on (event[key], filter value) -------------


def test_two_strings_compare_exactly_so_0800_is_not_800() -> None:
    """hookClass.js `Operations["=="]`: `a == b` with two strings is exact string equality."""
    assert passes_filter("0800", "800") is False
    assert passes_filter("800", "0800") is False
    assert passes_filter("0800", "0800") is True


def test_a_national_number_is_not_its_international_form() -> None:
    """hookClass.js `Operations["=="]`: "380441234567" == "+380441234567" is false in JS (two strings)."""
    assert passes_filter("380441234567", "+380441234567") is False
    assert passes_filter("+380441234567", "+380441234567") is True


def test_seventeen_digit_strings_are_not_rounded() -> None:
    """hookClass.js `Operations["=="]`: two strings never become doubles (which would make these two equal)."""
    assert float("12345678901234567") == float("12345678901234568")
    assert passes_filter("12345678901234567", "12345678901234568") is False
    assert passes_filter("12345678901234567", "12345678901234567") is True


def test_a_string_against_a_number_converts_the_string() -> None:
    """hookClass.js `Operations`: `"0800" == 800` and `"250" > 100` convert the string with Number() in JS."""
    assert passes_filter(800, "0800") is True
    assert passes_filter(100, "250", ">") is True
    assert passes_filter(100, "99", ">") is False  # as strings "99" > "100" would hold


def test_a_non_numeric_string_against_a_number_is_nan() -> None:
    """hookClass.js `Operations`: Number("abc") is NaN; `==`, `<`, `>` are false and `!=` is true."""
    assert passes_filter(5, "abc", "==") is False
    assert passes_filter(5, "abc", "<") is False
    assert passes_filter(5, "abc", ">") is False
    assert passes_filter(5, "abc", "!=") is True


def test_two_strings_order_as_strings() -> None:
    """hookClass.js `Operations["<"]`: `"10" < "9"` is true in JS (string order)."""
    assert passes_filter("9", "10", "<") is True
    assert passes_filter(9, "10", "<") is False


def test_null_and_empty_values_mean_the_key_is_absent() -> None:
    """hookClass.js `Operations["=="]` turns "null" into undefined, and Hook's `value || null` turns "" into null."""
    for marker in ("null", ""):
        (condition,) = compile_filter({"k": {"operation": "==", "value": marker}})
        assert check(condition, {}) is True
        assert check(condition, {"k": "x"}) is False


async def test_phone_numbers_as_strings_decide_which_hooks_fire(app: Harness, receiver: Receiver) -> None:
    """hookClass.js `Trigger.emit` sends to each hook whose `check(e)` passes: string "800" misses "0800"."""
    token = await app.domain_token(DOMAIN)
    filters = {"string-800": "800", "number-800": 800, "string-0800": "0800"}
    for name, value in filters.items():
        await app.create_hook(
            DOMAIN,
            {
                "event": "CHANNEL_CREATE",
                "enable": True,
                "action": web_action(receiver.url("/" + name)),
                "filter": {"Caller-Destination-Number": {"operation": "==", "value": value}},
            },
            token,
        )
    event = {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": DOMAIN, "Caller-Destination-Number": "0800"}
    response = await app.post_events(event, token)
    assert response.json()["data"]["deliveries"] == 2
    await receiver.wait_for(2)
    assert sorted(r.path for r in receiver.requests) == ["/number-800", "/string-0800"]


# --- rawBody and header templates: hookClass.js `Message` constructor and `_setHeadersFromEvent` ----------------


def test_raw_body_substitutes_a_json_text_verbatim_outside_string_literals() -> None:
    """hookClass.js `Message`: rawBody.replace(/\\$\\{…\\}/) then JSON.parse, so `{"obj": ${payload}}` nests."""
    event = {"payload": '{"member": {"id": 7, "tags": ["a"]}}', "n": "42"}
    request = rendered(event, custom_body=True, raw_body='{"obj": ${payload}, "n": ${n}}')
    assert json.loads(request.body) == {"obj": {"member": {"id": 7, "tags": ["a"]}}, "n": 42}
    assert request.json_body is True


def test_raw_body_escapes_values_inside_string_literals_a_deliberate_difference() -> None:
    """hookClass.js `Message` spliced values raw, so a `"` in a caller name broke JSON.parse and Webitel sent
    `{id, action, data: {}}` instead; switchhook escapes inside string literals (docs/webitel.md)."""
    event = {"Caller-Caller-ID-Name": 'O"Brien \\ "Boss"'}
    request = rendered(event, custom_body=True, raw_body='{"name": "${Caller-Caller-ID-Name}"}')
    assert json.loads(request.body) == {"name": 'O"Brien \\ "Boss"'}


def test_raw_body_tries_variable_first() -> None:
    """hookClass.js `Message`: `message["variable_" + name] || message[name]`."""
    event = {"variable_direction": "inbound", "direction": "plain", "only": "o"}
    request = rendered(event, custom_body=True, raw_body='{"d": "${direction}", "o": "${only}"}')
    assert json.loads(request.body) == {"d": "inbound", "o": "o"}


def test_header_templates_try_the_exact_key_first_then_variable() -> None:
    """hookClass.js `_setHeadersFromEvent`: `eventObj[b] || ""`, the exact key only; switchhook then tries
    `variable_<key>` where Webitel gave "" (docs/webitel.md)."""
    event = {"domain_name": "exact", "variable_domain_name": "variable", "variable_user": "1000"}
    request = rendered(event, header_templates={"X-Domain": "${domain_name}", "X-User": "${user}"})
    assert request.headers["X-Domain"] == "exact"
    assert request.headers["X-User"] == "1000"


# --- requests: hookClass.js `Message.toRequest` handed `request` {qs} for GET and {json} for the rest -----------


async def test_every_request_accepts_json(app: Harness, receiver: Receiver) -> None:
    """request.js `Request.prototype.json` set `accept: application/json` on Webitel's JSON requests; switchhook
    sends it on every request, GET included."""
    token = await app.domain_token(DOMAIN)
    for method in ("GET", "POST"):
        await app.create_hook(
            DOMAIN,
            {"event": "CHANNEL_ANSWER", "enable": True, "action": web_action(receiver.url("/" + method), method)},
            token,
        )
    await app.post_events({"Event-Name": "CHANNEL_ANSWER", "variable_domain_name": DOMAIN}, token)
    await receiver.wait_for(2)
    assert {r.method: r.headers.get("Accept") for r in receiver.requests} == {
        "GET": "application/json",
        "POST": "application/json",
    }


async def test_a_get_urls_own_parameter_is_replaced_by_the_events_value(app: Harness, receiver: Receiver) -> None:
    """request.js `Request.prototype.qs`: `base = qs.parse(uri.query); base[i] = q[i]`: replaced, not repeated."""
    token = await app.domain_token(DOMAIN)
    url = receiver.url("/get") + "?key=k1&Unique-ID=placeholder&z=9"
    await app.create_hook(
        DOMAIN,
        {"event": "CHANNEL_ANSWER", "enable": True, "action": web_action(url, "GET"), "fields": ["Unique-ID"]},
        token,
    )
    await app.post_events({"Event-Name": "CHANNEL_ANSWER", "variable_domain_name": DOMAIN, "Unique-ID": "u-1"}, token)
    (received,) = await receiver.wait_for(1)
    assert parse_qsl(received.query) == [("key", "k1"), ("Unique-ID", "u-1"), ("z", "9")]


async def test_the_envelope_id_is_a_uuid_stable_across_retries(app: Harness, receiver: Receiver) -> None:
    """hookClass.js `Message`: `id = webitel_hook_msg_id = generateUuid.v4()`, kept across retries; switchhook's id
    is a UUID too (version 7 layout, time-ordered), the same in the envelope and in `webhook-id`."""
    token = await app.domain_token(DOMAIN)
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    receiver.answer(500)
    hook = {"event": "CHANNEL_ANSWER", "enable": True, "action": web_action(receiver.url()), "secret": secret}
    await app.create_hook(DOMAIN, {**hook, "retries": 1, "delay": 0.1}, token)
    await app.post_events({"Event-Name": "CHANNEL_ANSWER", "variable_domain_name": DOMAIN}, token)
    first, second = await receiver.wait_for(2)
    ids = {first.json()["id"], second.json()["id"], first.headers["webhook-id"], second.headers["webhook-id"]}
    assert len(ids) == 1
    (only,) = ids
    assert UUID_V7.fullmatch(only)
    assert uuid.UUID(only).version == 7


# --- the auth pre-request: hookClass.js `Trigger.send` read `res.body` whole into `auth:body:<key>` -------------


def oidc_reply(access_token: str) -> bytes:
    """An OIDC-like token reply of ~4.6 KB whose access_token sits past the first 4 KiB."""
    body = {
        "id_token": "eyJ" + "i" * 3000,
        "refresh_token": "r" * 1400,
        "token_type": "Bearer",
        "expires_in": 300,
        "access_token": access_token,
    }
    return json.dumps(body).encode()


async def auth_hook(app: Harness, receiver: Receiver, token: str) -> str:
    return await app.create_hook(
        DOMAIN,
        {
            "event": "CHANNEL_ANSWER",
            "enable": True,
            "retries": 0,
            "action": web_action(receiver.url("/hook")),
            "auth": {"enabled": True, "url": receiver.url("/token"), "method": "POST", "map": {"grant": "x"}},
            "headers": {"Authorization": "Bearer ${auth:body:access_token}", "X-Type": "${auth:body:token_type}"},
        },
        token,
    )


async def test_the_auth_response_is_read_whole(app: Harness, receiver: Receiver) -> None:
    """hookClass.js `Trigger.send`: `for (let k in res.body) e["auth:body:" + k] = res.body[k]` over the whole
    body `request` had read; a 4.6 KB OIDC reply must keep its access_token."""
    reply = oidc_reply("at-" + "z" * 40)
    assert 4096 < len(reply) < 5000
    assert reply.index(b'"access_token"') > 4096
    receiver.routes["/token"] = Reply(200, reply, {"Content-Type": "application/json"})
    token = await app.domain_token(DOMAIN)
    await auth_hook(app, receiver, token)
    await app.post_events({"Event-Name": "CHANNEL_ANSWER", "variable_domain_name": DOMAIN}, token)
    (main,) = await receiver.wait_for(1, path="/hook")
    assert main.headers["Authorization"] == "Bearer at-" + "z" * 40
    assert main.headers["X-Type"] == "Bearer"


async def test_an_auth_response_over_the_cap_fails_the_attempt_clearly(app: Harness, receiver: Receiver) -> None:
    """Webitel read any size (hookClass.js `Trigger.send`); switchhook caps the auth response at 1 MiB and says so."""
    reply = oidc_reply("a" * AUTH_MAX_RESPONSE_BYTES)
    receiver.routes["/token"] = Reply(200, reply, {"Content-Type": "application/json"})
    token = await app.domain_token(DOMAIN)
    hook_id = await auth_hook(app, receiver, token)
    await app.post_events({"Event-Name": "CHANNEL_ANSWER", "variable_domain_name": DOMAIN}, token)
    view = await finished(app, hook_id, "failed")
    assert f"larger than {AUTH_MAX_RESPONSE_BYTES} bytes" in view["lastError"]
    assert "auth pre-request failed" in view["lastError"]
    assert receiver.on("/hook") == []


# --- 410: hookClass.js `responseError` retried every non-200 alike and never disabled a hook -------------------


async def test_a_410_fails_the_delivery_for_good_and_leaves_the_hook_enabled(app: Harness, receiver: Receiver) -> None:
    """hookClass.js `responseError` re-queued a 410 like any failure; switchhook stops retrying it, and disables
    the hook only with `disableOnGone: true` (tests/e2e/test_delivery.py shows that one)."""
    token = await app.domain_token(DOMAIN)
    receiver.answer(410)
    hook = {"event": "CHANNEL_ANSWER", "enable": True, "action": web_action(receiver.url()), "retries": 5}
    hook_id = await app.create_hook(DOMAIN, {**hook, "delay": 0.1}, token)
    await app.post_events({"Event-Name": "CHANNEL_ANSWER", "variable_domain_name": DOMAIN}, token)
    view = await finished(app, hook_id, "failed")
    assert view["attempts"] == 1
    assert "410" in view["lastError"]
    read = await app.client.get(f"/api/v2/hooks/{hook_id}", headers={"X-Access-Token": token})
    assert read.json()["data"]["enable"] is True
    assert "disabledReason" not in read.json()["data"]
    response = await app.post_events({"Event-Name": "CHANNEL_ANSWER", "variable_domain_name": DOMAIN}, token)
    assert response.json()["data"]["deliveries"] == 1
    await receiver.wait_for(2)


async def test_disable_on_gone_is_stored_and_read_back(app: Harness, receiver: Receiver) -> None:
    """Not in Webitel's whitelist (src/services/hook/index.js); a switchhook extension, read back like the others."""
    token = await app.domain_token(DOMAIN)
    hook = {"event": "CHANNEL_ANSWER", "enable": True, "action": web_action(receiver.url()), "disableOnGone": True}
    hook_id = await app.create_hook(DOMAIN, hook, token)
    read = await app.client.get(f"/api/v2/hooks/{hook_id}", headers={"X-Access-Token": token})
    assert read.json()["data"]["disableOnGone"] is True
    bad = await app.client.post(
        "/api/v2/hooks", json={**hook, "disableOnGone": "yes"}, headers={"X-Access-Token": token}
    )
    assert bad.status_code == 400
    assert "disableOnGone" in bad.json()["info"]


# --- redirects: redirect.js `Redirect.redirectTo` followed GET (not PATCH/PUT/POST/DELETE), up to maxRedirects ---


def chain(receiver: Receiver, hops: int) -> str:
    """/r1 -> /r2 -> … -> /final: `hops` redirects; returns the first URL."""
    for n in range(1, hops + 1):
        target = f"/r{n + 1}" if n < hops else "/final"
        receiver.routes[f"/r{n}"] = Reply(302 if n % 2 else 307, headers={"Location": target})
    receiver.routes["/final"] = Reply(200, b"arrived")
    return receiver.url("/r1")


async def test_a_get_hook_follows_a_redirect_chain(app: Harness, receiver: Receiver) -> None:
    """redirect.js `Redirect.redirectTo`: a GET follows `Location`; relative locations resolve on the current URL."""
    token = await app.domain_token(DOMAIN)
    url = chain(receiver, 3)
    hook_id = await app.create_hook(
        DOMAIN, {"event": "CHANNEL_ANSWER", "enable": True, "action": web_action(url, "GET")}, token
    )
    await app.post_events({"Event-Name": "CHANNEL_ANSWER", "variable_domain_name": DOMAIN}, token)
    view = await finished(app, hook_id, "delivered")
    assert view["lastStatus"] == 200
    assert [r.path for r in receiver.requests] == ["/r1", "/r2", "/r3", "/final"]


async def test_a_post_hook_does_not_follow_redirects(app: Harness, receiver: Receiver) -> None:
    """redirect.js `Redirect.redirectTo`: `case 'POST': // Do not follow redirects` (so for PUT, PATCH, DELETE)."""
    token = await app.domain_token(DOMAIN)
    url = chain(receiver, 1)
    hook_id = await app.create_hook(
        DOMAIN, {"event": "CHANNEL_ANSWER", "enable": True, "action": web_action(url), "retries": 0}, token
    )
    await app.post_events({"Event-Name": "CHANNEL_ANSWER", "variable_domain_name": DOMAIN}, token)
    view = await finished(app, hook_id, "failed")
    assert view["lastStatus"] == 302
    assert [r.path for r in receiver.requests] == ["/r1"]


async def test_redirects_stop_after_five_hops(receiver: Receiver) -> None:
    """redirect.js: `redirectsFollowed >= maxRedirects` is an error ("Exceeded maxRedirects"); Webitel allowed 10,
    switchhook 5 (docs/webitel.md)."""
    client = sender()
    try:
        within = await client.send("GET", chain(receiver, MAX_REDIRECTS), {}, None, 5)
        receiver.requests.clear()
        beyond = await client.send("GET", chain(receiver, MAX_REDIRECTS + 1), {}, None, 5)
    finally:
        await client.close()
    assert MAX_REDIRECTS == 5
    assert within.status == 200
    assert within.body == b"arrived"
    assert beyond.status is None
    assert beyond.error is not None
    assert "more than 5 redirects" in beyond.error
    assert [r.path for r in receiver.requests] == [f"/r{n}" for n in range(1, 7)]  # /final never reached


async def test_a_redirect_to_a_refused_address_is_refused(receiver: Receiver) -> None:
    """Webitel had no egress guard (redirect.js followed anywhere); every hop passes switchhook's guard."""
    receiver.routes["/meta"] = Reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    receiver.routes["/denied"] = Reply(302, headers={"Location": f"http://127.0.0.2:{receiver.port}/x"})
    client = sender(deny="127.0.0.2/32")
    try:
        metadata = await client.send("GET", receiver.url("/meta"), {}, None, 5)
        listed = await client.send("GET", receiver.url("/denied"), {}, None, 5)
    finally:
        await client.close()
    for result in (metadata, listed):
        assert result.status is None
        assert result.terminal is True
        assert result.error is not None
        assert result.error.startswith("egress refused")
    assert [r.path for r in receiver.requests] == ["/meta", "/denied"]


@pytest.fixture
async def redirector() -> AsyncIterator[tuple[str, list[str]]]:
    """A server on 127.0.0.2 that redirects to `?to=` and records the paths it saw."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.2:{port}", seen
    finally:
        await runner.cleanup()


async def test_a_redirect_to_a_name_resolving_to_a_refused_address_is_refused(
    receiver: Receiver, redirector: tuple[str, list[str]]
) -> None:
    """The guard resolves each hop's host name and refuses it when every address is refused (no DNS rebinding)."""
    base, seen = redirector
    client = sender(deny="127.0.0.1/32,::1/128")
    try:
        result = await client.send("GET", f"{base}/go?to=http://localhost:{receiver.port}/x", {}, None, 5)
    finally:
        await client.close()
    assert seen == ["/go"]
    assert result.terminal is True
    assert result.error is not None
    assert result.error.startswith("egress refused")
    assert receiver.requests == []


async def test_credentials_do_not_follow_a_redirect_to_another_host(
    receiver: Receiver, redirector: tuple[str, list[str]]
) -> None:
    """redirect.js dropped `authorization` when the host name changed; switchhook also drops Cookie."""
    base, _seen = redirector
    headers = {"Authorization": "Bearer s3cret", "Cookie": "sid=1", "X-Kept": "yes"}
    client = sender()
    try:
        result = await client.send("GET", f"{base}/go?to={receiver.url('/landed')}", headers, None, 5)
    finally:
        await client.close()
    assert result.status == 200
    (landed,) = receiver.requests
    assert "Authorization" not in landed.headers
    assert "Cookie" not in landed.headers
    assert landed.headers["X-Kept"] == "yes"


async def test_redirect_hops_share_the_hooks_timeout(receiver: Receiver) -> None:
    """No Webitel counterpart (it set no timeout, hookClass.js); the whole chain stays within the hook's timeout."""
    receiver.routes["/slow"] = Reply(302, headers={"Location": "/slower"}, delay_s=0.4)
    receiver.routes["/slower"] = Reply(200, delay_s=0.4)
    client = sender()
    try:
        result = await client.send("GET", receiver.url("/slow"), {}, None, 0.6)
    finally:
        await client.close()
    assert result.status is None
    assert result.error is not None
    assert result.error.startswith("timeout")


async def test_a_refused_redirect_is_recorded_on_the_delivery(app: Harness, receiver: Receiver) -> None:
    """The refusal reaches the delivery log as a terminal failure, never a retry."""
    receiver.routes["/meta"] = Reply(302, headers={"Location": "http://169.254.169.254/"})
    token = await app.domain_token(DOMAIN)
    action = web_action(receiver.url("/meta"), "GET")
    hook_id = await app.create_hook(DOMAIN, {"event": "CHANNEL_ANSWER", "enable": True, "retries": 3, "action": action})
    await app.post_events({"Event-Name": "CHANNEL_ANSWER", "variable_domain_name": DOMAIN}, token)
    view = await finished(app, hook_id, "failed")
    assert view["attempts"] == 1
    assert "egress refused" in view["lastError"]
