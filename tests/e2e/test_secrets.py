"""Secrets never leak: not in logs, error messages, API reads, the delivery log or the dry run."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from tests.support.app import ROOT_PASSWORD, make_settings, running
from tests.support.receiver import Receiver, Reply

DOMAIN = "secret.example"
HOOK_SECRET = "whsec_" + base64.b64encode(b"hook-signing-key-0123456789abcdef").decode()
AUTH_PASSWORD = "auth-pre-request-password-4711"
AUTH_HEADER = "Basic YXV0aC11c2VyOnN1cGVyLXNlY3JldA=="
STATIC_BEARER = "static-bearer-token-9a8b7c"
URL_PASSWORD = "url-userinfo-password-55"
ACCOUNT_PASSWORD = "account-password-8c3d2e"
TOKEN_SECRET = "token-secret-" + "s" * 40


async def test_secrets_appear_nowhere(receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.routes["/auth"] = Reply(
        200, json.dumps({"token": "issued-token-1"}).encode(), {"Content-Type": "application/json"}
    )
    receiver.answer(500, 200)
    settings = make_settings(tmp_path, token_secret=TOKEN_SECRET, log_level="DEBUG")
    secrets = [
        HOOK_SECRET,
        AUTH_PASSWORD,
        AUTH_HEADER,
        STATIC_BEARER,
        URL_PASSWORD,
        ACCOUNT_PASSWORD,
        TOKEN_SECRET,
        ROOT_PASSWORD,
    ]
    seen: list[str] = []
    async with running(settings) as app:
        root = await app.root_headers()
        bad_login = await app.client.post("/login", json={"username": "root", "password": ROOT_PASSWORD + "x"})
        seen.append(bad_login.text)
        account = await app.client.post(
            f"/api/v2/accounts?domain={DOMAIN}",
            headers=root,
            json={"username": "ops", "password": ACCOUNT_PASSWORD, "role": "admin"},
        )
        seen.append(account.text)
        hook = {
            "event": "CHANNEL_CREATE",
            "enable": True,
            "retries": 2,
            "delay": 0.1,
            "secret": HOOK_SECRET,
            "action": {
                "type": "web",
                "method": "POST",
                "url": f"http://hooker:{URL_PASSWORD}@127.0.0.1:{receiver.port}/hook",
            },
            "headers": {"X-Api-Key": STATIC_BEARER, "X-Token": "${auth:body:token}"},
            "auth": {
                "enabled": True,
                "url": receiver.url("/auth"),
                "method": "POST",
                "headers": {"Authorization": AUTH_HEADER},
                "map": {"password": AUTH_PASSWORD},
            },
        }
        created = await app.client.post(f"/api/v2/hooks?domain={DOMAIN}", json=hook, headers=root)
        seen.append(created.text)
        hook_id = created.json()["data"]["insertedIds"][0]
        seen.append((await app.client.get(f"/api/v2/hooks?domain={DOMAIN}", headers=root)).text)
        read = await app.client.get(f"/api/v2/hooks/{hook_id}?domain={DOMAIN}", headers=root)
        seen.append(read.text)
        # A GET-then-PUT round trip keeps every secret working.
        put = await app.client.put(f"/api/v2/hooks/{hook_id}?domain={DOMAIN}", json=read.json()["data"], headers=root)
        seen.append(put.text)
        event = {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": DOMAIN}
        seen.append((await app.client.post("/api/v2/events", json=event, headers=root)).text)
        requests = await receiver.wait_for(2, path="/hook")
        seen.append(
            (await app.client.post(f"/api/v2/hooks/{hook_id}/test?domain={DOMAIN}", json=event, headers=root)).text
        )
        deliveries = await app.client.get(f"/api/v2/hooks/{hook_id}/deliveries?domain={DOMAIN}", headers=root)
        seen.append(deliveries.text)
        for row in deliveries.json()["data"]:
            seen.append((await app.client.get(f"/api/v2/deliveries/{row['id']}?domain={DOMAIN}", headers=root)).text)
        seen.append((await app.client.get("/metrics")).text)
        seen.append((await app.client.get("/health")).text)

    # The secrets did their jobs...
    auth_call = receiver.on("/auth")[0]
    assert auth_call.headers["Authorization"] == AUTH_HEADER
    assert auth_call.json() == {"password": AUTH_PASSWORD}
    last = requests[-1]
    assert last.headers["X-Api-Key"] == STATIC_BEARER
    assert base64.b64decode(last.headers["Authorization"].split()[1]) == f"hooker:{URL_PASSWORD}".encode()
    assert last.headers["X-Token"] == "issued-token-1"
    assert "webhook-signature" in {k.lower() for k in last.headers}
    # ...and were never shown or logged.
    logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in secrets:
        for text in seen:
            assert secret not in text, f"{secret[:6]}... leaked in a response: {text[:300]}"
        assert secret not in logs, f"{secret[:6]}... leaked in the logs"
    assert "whsec_********" in seen[4]
