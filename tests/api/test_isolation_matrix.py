"""Tenant isolation matrix: a caller of domain A tries domain B's resources through every route and parameter.

Nothing of B may be read, changed, delivered, or named in an error message.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support.app import ROOT, Harness
from tests.support.receiver import Receiver

A, B = "tenant-a.example", "tenant-b.example"


async def b_state(app: Harness, hook_id: str) -> Any:
    hooks = await app.services.hooks.list(ROOT, B, None, None, None)
    deliveries = await app.services.deliveries.list_for_hook(ROOT, B, hook_id, None, None, None)
    tokens = await app.services.domains.list_domain_tokens(ROOT, B)
    accounts = await app.services.domains.list_accounts(ROOT, B)
    domains = await app.services.domains.list_domains(ROOT)
    return hooks, [(d["id"], d["status"], d["attempts"]) for d in deliveries], tokens, accounts, domains


@pytest.fixture
async def world(app: Harness, receiver: Receiver) -> dict[str, Any]:
    token_b = await app.domain_token(B)
    hook_b = await app.create_hook(
        B,
        {
            "event": "CHANNEL_CREATE",
            "enable": True,
            "retries": 0,
            "action": {"type": "web", "method": "POST", "url": receiver.url("/b")},
        },
        token_b,
    )
    receiver.answer(500)
    call_b = {"Channel-Call-UUID": "call-of-b"}
    await app.post_events({"Event-Name": "CHANNEL_CREATE", "variable_domain_name": B, **call_b}, token_b)
    await receiver.wait_for(1)
    # A key only B sends, with a value only B's event holds: the catalogue's live keys (GET /api/v2/events/catalogue).
    await app.post_events({"Event-Name": "CUSTOM", "Event-Subclass": "b::private", "note": "only-in-b-event"}, token_b)
    for _ in range(100):
        rows = await app.services.deliveries.list_for_hook(ROOT, B, hook_b, None, None, None)
        if rows and rows[0]["status"] == "failed":
            break
        await asyncio.sleep(0.05)
    delivery_b = rows[0]["id"]
    token_ids = [t["uuid"] for t in await app.services.domains.list_domain_tokens(ROOT, B)]
    await app.services.domains.add_account(ROOT, B, {"username": "bob", "password": "password-b-1", "role": "admin"})
    admin_a = await app.domain_token(A, "admin")
    user_a = await app.domain_token(A, "user")
    revoked_a = await app.domain_token(A, "admin")
    revoked_id = [t["uuid"] for t in await app.services.domains.list_domain_tokens(ROOT, A)][-1]
    await app.services.domains.revoke_domain_token(ROOT, A, revoked_id)
    await app.services.domains.add_account(ROOT, A, {"username": "alice", "password": "password-a-1", "role": "admin"})
    login = await app.client.post("/login", json={"username": f"alice@{A}", "password": "password-a-1"})
    session_a = {"X-Access-Token": login.json()["token"], "X-Key": login.json()["key"]}
    login_b = await app.client.post("/login", json={"username": f"bob@{B}", "password": "password-b-1"})
    return {
        "session_b": {"X-Access-Token": login_b.json()["token"], "X-Key": login_b.json()["key"]},
        "hook_b": hook_b,
        "delivery_b": delivery_b,
        "token_b_id": token_ids[0],
        "callers": {
            "admin-token": {"X-Access-Token": admin_a},
            "user-token": {"X-Access-Token": user_a},
            "revoked-token": {"X-Access-Token": revoked_a},
            "admin-session": session_a,
        },
    }


def attempts(world: dict[str, Any]) -> list[tuple[str, str, Any]]:
    hook, delivery, token_id = world["hook_b"], world["delivery_b"], world["token_b_id"]
    event_b = {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": B}
    new_hook = {
        "event": "CHANNEL_CREATE",
        "enable": True,
        "action": {"type": "web", "method": "POST", "url": "http://127.0.0.1:9/x"},
    }
    rows: list[tuple[str, str, Any]] = []
    for q in ("", f"?domain={B}"):
        rows += [
            ("GET", f"/api/v2/hooks{q}", None),
            ("POST", f"/api/v2/hooks{q}", new_hook),
            ("GET", f"/api/v2/hooks/{hook}{q}", None),
            ("PUT", f"/api/v2/hooks/{hook}{q}", {**new_hook, "enable": False}),
            ("DELETE", f"/api/v2/hooks/{hook}{q}", None),
            ("GET", f"/api/v2/hooks/{hook}/deliveries{q}", None),
            ("POST", f"/api/v2/hooks/{hook}/test{q}", event_b),
            ("POST", f"/api/v2/hooks/{hook}/test{q}{'&' if q else '?'}send=true", event_b),
            ("GET", f"/api/v2/deliveries/{delivery}{q}", None),
            ("POST", f"/api/v2/deliveries/{delivery}/retry{q}", None),
            ("GET", f"/api/v2/deliveries{q}{'&' if q else '?'}call=call-of-b", None),
            ("GET", f"/api/v2/deliveries{q}{'&' if q else '?'}hook={hook}", None),
            ("GET", f"/api/v2/deliveries{q}", None),
            ("GET", f"/api/v2/stats/hooks{q}", None),
            ("GET", f"/api/v2/stats/hooks{q}{'&' if q else '?'}hook={hook}", None),
            ("POST", f"/api/v2/deliveries/recover{q}", {"hook": hook}),
            ("POST", f"/api/v2/deliveries/recover{q}", {"call": "call-of-b"}),
            ("POST", f"/api/v2/deliveries/recover{q}", {"hook": hook, "status": ["failed", "delivered", "pending"]}),
            ("POST", f"/api/v2/events{q}", event_b),
            ("POST", f"/api/v2/events{q}", [event_b]),
            ("GET", f"/api/v2/events/catalogue{q}", None),
            (
                "POST",
                f"/api/v2/accounts{q}",
                {"username": "mallory", "password": "password-m-1", "role": "admin"},
            ),
            ("GET", f"/api/v2/accounts{q}", None),
            ("DELETE", f"/api/v2/accounts/bob{q}", None),
            ("PATCH", f"/api/v2/accounts/bob{q}", {"password": "password-m-2", "role": "admin"}),
            ("DELETE", f"/api/v2/sessions{q}{'&' if q else '?'}username=bob", None),
        ]
    rows += [
        ("POST", f"/api/v2/domains/{B}/settings/token", {"expire": 9_999_999_999_999, "role": "admin"}),
        ("GET", f"/api/v2/domains/{B}/settings/token", None),
        ("DELETE", f"/api/v2/domains/{B}/settings/token/{token_id}", None),
        ("PATCH", f"/api/v2/domains/{B}/settings/token/{token_id}", {"state": False}),
        ("DELETE", f"/api/v2/domains/{B}", None),
        ("POST", "/api/v2/domains", {"name": B}),
        ("GET", "/api/v2/domains", None),
    ]
    return rows


async def test_domain_a_reaches_nothing_of_domain_b(app: Harness, receiver: Receiver, world: dict[str, Any]) -> None:
    before = await b_state(app, world["hook_b"])
    requests_before = len(receiver.requests)
    secrets_of_b = [world["hook_b"], world["delivery_b"], world["token_b_id"], "bob", "/b", "b::private", B]
    tried = 0
    for caller, headers in world["callers"].items():
        for method, path, body in attempts(world):
            kwargs = {"content": json.dumps(body)} if body is not None else {}
            response = await app.client.request(method, path, headers=headers, **kwargs)
            tried += 1
            label = f"{caller} {method} {path}"
            assert response.status_code < 500, label
            text = response.text
            if "/hooks/" in path or "/deliveries" in path or "/settings/token/" in path or "hook=" in path:
                # The id was the caller's own input: it may only come back as "not found"-shaped answers.
                assert response.status_code != 200 or json.loads(text)["data"] in (
                    None,
                    [],
                    {"n": 0, "ok": 1},
                    {"n": 0, "nModified": 0, "ok": 1},
                    {"queued": 0, "inFlight": 0, "beyondCap": 0},  # recover: none of B's taken
                ), label
            for secret in secrets_of_b:
                if secret not in path:
                    assert secret not in text, f"{label} leaked {secret}: {text[:300]}"
            if "?domain=" not in path and B not in path and response.status_code >= 400:
                assert B not in text, f"{label} named domain B in an error: {text}"
    await asyncio.sleep(0.3)  # let any wrongly accepted delivery go out
    assert await b_state(app, world["hook_b"]) == before
    assert (await app.client.get("/api/v2/whoami", headers=world["session_b"])).status_code == 200  # bob's session
    assert len(receiver.requests) == requests_before, "a request reached domain B's endpoint"
    assert tried == 4 * len(attempts(world))
    print(f"\nisolation matrix: {tried} cross-tenant requests, 0 reached domain B")
