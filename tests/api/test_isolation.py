"""Domain scoping through HTTP (README, "API overview"): domain callers never see or touch another domain; root names
one; users get 403."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.api.helpers import add_account, answer, error, hook_body, login, token_headers
from tests.support.app import Harness
from tests.support.receiver import Receiver

A, B = "a.example.com", "b.example.com"
EVENT_B = {"Event-Name": "CHANNEL_CREATE", "Unique-ID": "u-1", "variable_domain_name": B}
SOME_ID = "0123456789abcdef01234567"


async def wait_for_delivery(app: Harness, root: dict[str, str], hook_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        response = await app.client.get(f"/api/v2/hooks/{hook_id}/deliveries?domain={B}", headers=root)
        rows = response.json()["data"]
        if rows and rows[0]["status"] == status:
            return dict(rows[0])
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)


async def test_a_domain_admin_never_reaches_another_domain(any_app: Harness, receiver: Receiver) -> None:
    app = any_app
    root = await app.root_headers()
    for name in (A, B):
        assert (await app.client.post("/api/v2/domains", headers=root, json={"name": name})).status_code == 200
    b_body = hook_body(
        url=receiver.url(), description="B's own", filter={"Unique-ID": {"operation": "==", "value": "u-1"}}
    )
    created_b = await app.client.post(f"/api/v2/hooks?domain={B}", json=b_body, headers=root)
    b_hook = created_b.json()["data"]["insertedIds"][0]
    b_view = (await app.client.get(f"/api/v2/hooks/{b_hook}?domain={B}", headers=root)).json()["data"]
    assert (await app.client.post("/api/v2/events", json=EVENT_B, headers=root)).status_code == 202
    await receiver.wait_for(1)
    b_delivery = await wait_for_delivery(app, root, b_hook, "delivered")

    await add_account(app, A, "alice", "admin", root)
    callers = {
        "domain token": token_headers(await app.domain_token(A)),
        "admin session": await login(app, f"alice@{A}"),
    }
    for name, headers in callers.items():
        own = await app.client.post(f"/api/v2/hooks?domain={A}", json=hook_body(description=name), headers=headers)
        a_hook = own.json()["data"]["insertedIds"][0]
        for query in (f"?domain={B}", "", f"?domain={A}"):
            why = (name, query)
            hook_url = f"/api/v2/hooks/{b_hook}{query}"

            read = await app.client.get(hook_url, headers=headers)
            listed = await app.client.get(f"/api/v2/hooks{query}", headers=headers)
            replaced = await app.client.put(hook_url, json=hook_body(url="https://evil.example/"), headers=headers)
            deleted = await app.client.delete(hook_url, headers=headers)
            deliveries = await app.client.get(f"/api/v2/hooks/{b_hook}/deliveries{query}", headers=headers)
            dry_run = await app.client.post(f"/api/v2/hooks/{b_hook}/test{query}", json=EVENT_B, headers=headers)
            send_url = f"/api/v2/hooks/{b_hook}/test" + (f"{query}&send=true" if query else "?send=true")
            sent = await app.client.post(send_url, json=EVENT_B, headers=headers)
            delivery = await app.client.get(f"/api/v2/deliveries/{b_delivery['id']}{query}", headers=headers)
            retried = await app.client.post(f"/api/v2/deliveries/{b_delivery['id']}/retry{query}", headers=headers)
            injected = await app.client.post(f"/api/v2/events{query}", json=EVENT_B, headers=headers)

            assert answer(read) == (200, {"status": "OK", "data": None}), why
            assert listed.status_code == 200, why
            assert all(h["domain"] == A for h in listed.json()["data"]), why
            assert b_hook not in listed.text, why
            assert a_hook in listed.text, why
            assert answer(replaced) == (200, {"status": "OK", "data": {"n": 0, "nModified": 0, "ok": 1}}), why
            assert answer(deleted) == (200, {"status": "OK", "data": {"n": 0, "ok": 1}}), why
            assert answer(deliveries) == (200, {"status": "OK", "data": []}), why
            assert answer(dry_run) == (404, error("Hook not found.")), why
            assert answer(sent) == (404, error("Hook not found.")), why
            assert answer(delivery) == (200, {"status": "OK", "data": None}), why
            assert answer(retried) == (404, error("Delivery not found.")), why
            assert injected.status_code == 403, why

        created = await app.client.post(
            f"/api/v2/hooks?domain={B}", json=hook_body(description="sneaky"), headers=headers
        )
        assert created.json()["data"]["ops"][0]["domain"] == A, name

    # B is untouched, as root sees it; nothing more was sent to B's endpoint.
    assert (await app.client.get(f"/api/v2/hooks/{b_hook}?domain={B}", headers=root)).json()["data"] == b_view
    b_list = (await app.client.get(f"/api/v2/hooks?domain={B}", headers=root)).json()["data"]
    assert b_list == [b_view]
    after = (await app.client.get(f"/api/v2/deliveries/{b_delivery['id']}?domain={B}", headers=root)).json()["data"]
    assert (after["status"], after["attempts"]) == ("delivered", 1)
    await asyncio.sleep(0.1)
    assert len(receiver.on("/hook")) == 1
    a_list = (await app.client.get(f"/api/v2/hooks?domain={A}", headers=root)).json()["data"]
    assert sorted(h["description"] for h in a_list) == ["admin session", "domain token", "sneaky", "sneaky"]


async def test_root_must_name_the_domain_on_every_hook_route(app: Harness) -> None:
    root = await app.root_headers()
    expected = (400, error("Bad request: domain is required."))

    for method, path, body in [
        ("GET", "/api/v2/hooks", None),
        ("POST", "/api/v2/hooks", hook_body()),
        ("GET", f"/api/v2/hooks/{SOME_ID}", None),
        ("PUT", f"/api/v2/hooks/{SOME_ID}", hook_body()),
        ("DELETE", f"/api/v2/hooks/{SOME_ID}", None),
        ("GET", f"/api/v2/hooks/{SOME_ID}/deliveries", None),
        ("POST", f"/api/v2/hooks/{SOME_ID}/test", EVENT_B),
        ("GET", "/api/v2/deliveries/msg_x", None),
        ("POST", "/api/v2/deliveries/msg_x/retry", None),
    ]:
        response = await app.client.request(method, path, headers=root, json=body)
        assert answer(response) == expected, (method, path)
    # With the domain named, the same requests work.
    assert (await app.client.get(f"/api/v2/hooks?domain={A}", headers=root)).status_code == 200
    assert (await app.client.post(f"/api/v2/hooks?domain={A}", headers=root, json=hook_body())).status_code == 200


async def test_the_user_role_gets_403_on_every_hook_route(app: Harness) -> None:
    root = await app.root_headers()
    hook_id = await app.create_hook(A, hook_body(description="untouched"))
    await add_account(app, A, "uma", "user", root)
    users = {
        "user token": token_headers(await app.domain_token(A, role="user")),
        "user session": await login(app, f"uma@{A}"),
    }
    for name, headers in users.items():
        for method, path, body in [
            ("GET", f"/api/v2/hooks?domain={A}", None),
            ("POST", f"/api/v2/hooks?domain={A}", hook_body()),
            ("GET", f"/api/v2/hooks/{hook_id}", None),
            ("PUT", f"/api/v2/hooks/{hook_id}", hook_body()),
            ("DELETE", f"/api/v2/hooks/{hook_id}", None),
            ("GET", f"/api/v2/hooks/{hook_id}/deliveries", None),
            ("POST", f"/api/v2/hooks/{hook_id}/test", EVENT_B),
            ("GET", "/api/v2/deliveries/msg_x", None),
            ("POST", "/api/v2/deliveries/msg_x/retry", None),
        ]:
            response = await app.client.request(method, path, headers=headers, json=body)
            assert answer(response) == (403, error("Permission denied!")), (name, method, path)
    read = await app.client.get(f"/api/v2/hooks/{hook_id}?domain={A}", headers=root)
    assert read.json()["data"]["description"] == "untouched"
    assert len((await app.client.get(f"/api/v2/hooks?domain={A}", headers=root)).json()["data"]) == 1
