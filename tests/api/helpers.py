"""Small helpers the API tests share: the error envelope, accounts, logins, a minimal valid hook."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.app import Harness

PASSWORD = "correct horse battery"  # a test fixture


def error(info: str) -> dict[str, str]:
    """Webitel's error envelope, exactly."""
    return {"status": "error", "info": info}


def token_headers(token: str) -> dict[str, str]:
    return {"X-Access-Token": token}


def hook_body(event: str = "CHANNEL_CREATE", url: str = "https://example.org/hook", **extra: Any) -> dict[str, Any]:
    return {"event": event, "enable": True, "action": {"type": "web", "method": "POST", "url": url}, **extra}


def answer(response: httpx.Response) -> tuple[int, Any]:
    """(status, parsed body): one comparison shows both when a test fails."""
    return response.status_code, response.json()


async def add_account(
    app: Harness, domain: str, username: str, role: str, root: dict[str, str], password: str = PASSWORD
) -> None:
    response = await app.client.post(
        "/api/v2/accounts",
        params={"domain": domain},
        headers=root,
        json={"username": username, "password": password, "role": role},
    )
    assert response.status_code == 200, response.text


async def login(app: Harness, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Session headers (X-Access-Token + X-Key) for `username`."""
    response = await app.client.post("/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    return {"X-Access-Token": body["token"], "X-Key": body["key"]}
