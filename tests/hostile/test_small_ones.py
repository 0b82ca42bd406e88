"""Issue 13, item 11: the small ones, each through HTTP against a running switchhook."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.app import ROOT, Harness
from tests.support.waiting import eventually

DOMAIN = "small.example"


def web_hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"event": "DTMF", "enable": True, "action": {"type": "web", "method": "POST", "url": url}, **extra}


async def _finished(app: Harness, hook_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        rows = await app.services.deliveries.list_for_hook(ROOT, DOMAIN, hook_id, None, "10", None)
        return rows[0] if rows and rows[0]["status"] != "pending" else None

    row: dict[str, Any] = await eventually(done, "the delivery to finish", timeout_s=10)
    return row


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ({"X-Tag": "a\x00b"}, "control characters"),
        ({"X-Tag": "a\x0bb"}, "control characters"),
        ({"X-Tag": "a\r\nX-Injected: 1"}, "control characters"),
        ({"Content-Length": "ten"}, "Content-Length"),
    ],
)
async def test_header_values_that_could_never_be_sent_are_refused_at_write(
    app: Harness, headers: dict[str, str], said: str
) -> None:
    token = await app.domain_token(DOMAIN)
    for body in (
        web_hook("http://127.0.0.1:9/x", headers=headers),
        web_hook("http://127.0.0.1:9/x", auth={"enabled": True, "url": "http://127.0.0.1:9/a", "headers": headers}),
    ):
        response = await app.client.post("/api/v2/hooks", json=body, headers={"X-Access-Token": token})
        assert response.status_code == 400, response.text
        assert said in response.json()["info"]
    tab = web_hook("http://127.0.0.1:9/x", headers={"X-Tag": "a\tb"})  # field whitespace: allowed
    assert (await app.client.post("/api/v2/hooks", json=tab, headers={"X-Access-Token": token})).status_code == 200


async def test_an_auth_pre_request_refused_by_egress_is_final_like_the_main_request(app: Harness) -> None:
    token = await app.domain_token(DOMAIN)
    auth = {"enabled": True, "url": "http://169.254.169.254/latest/api/token", "method": "GET"}
    hook_id = await app.create_hook(DOMAIN, web_hook("http://127.0.0.1:9/x", retries=3, auth=auth), token)
    accepted = await app.post_events({"Event-Name": "DTMF", "variable_domain_name": DOMAIN}, token)
    assert accepted.status_code == 202
    row = await _finished(app, hook_id)
    assert row["status"] == "failed"
    assert row["attempts"] == 1  # not retried: a retry would be refused again
    assert "egress refused" in row["lastError"]


async def test_the_limited_broadcast_is_refused_egress(app: Harness) -> None:
    token = await app.domain_token(DOMAIN)
    hook_id = await app.create_hook(DOMAIN, web_hook("http://255.255.255.255/x", retries=3), token)
    assert (await app.post_events({"Event-Name": "DTMF", "variable_domain_name": DOMAIN}, token)).status_code == 202
    row = await _finished(app, hook_id)
    assert row["status"] == "failed" and row["attempts"] == 1
    assert "egress refused" in row["lastError"] and "255.255.255.255" in row["lastError"]


@pytest.mark.parametrize(
    "name",
    ["evil\u202eelpmaxe.com", "a\x00b.example", "isolate\u2066.example", "mark\u200f.example", "nbsp\u00a0.example"],
)
async def test_domain_names_with_control_or_bidi_characters_are_refused(app: Harness, name: str) -> None:
    root = await app.root_headers()
    response = await app.client.post("/api/v2/domains", json={"name": name}, headers=root)
    assert response.status_code == 400, response.text
    assert "domain name" in response.json()["info"]
    fine = await app.client.post("/api/v2/domains", json={"name": "xn--mnchen-3ya.example"}, headers=root)
    assert fine.status_code in (200, 201), fine.text


async def test_json_nested_too_deep_says_so(app: Harness) -> None:
    token = await app.domain_token(DOMAIN)
    await app.create_hook(DOMAIN, web_hook("http://127.0.0.1:9/x"), token)
    for depth in (200, 600, 5000):  # past our bound, past the encoder's (~255), past the parser's (1024)
        body = '{"Event-Name":"DTMF","variable_domain_name":"small.example","x":' + "[" * depth + "]" * depth + "}"
        response = await app.client.post(
            "/api/v2/events", content=body, headers={"X-Access-Token": token, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert "nested deeper than 128 levels" in response.json()["info"]
        assert "Unicode" not in response.json()["info"]
