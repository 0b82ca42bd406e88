"""A delivery whose hook `ttl` runs out before it is attempted ends `expired`, unsent, in the delivery log.

`expired` is its own end state (RELIABILITY.md, "An accepted event is delivered or visibly failed"): an
operator reading the log must tell "the receiver kept failing" (`failed`) from "it came too late to matter".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.support.app import Harness, make_settings, running
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

DOMAIN = "expiry.example"
TTL_S = 1  # the smallest ttl a hook accepts


async def deliveries_of(app: Harness, hook_id: str, token: str) -> list[dict[str, Any]]:
    listed = await app.client.get(f"/api/v2/hooks/{hook_id}/deliveries", headers={"X-Access-Token": token})
    assert listed.status_code == 200, listed.text
    rows: list[dict[str, Any]] = listed.json()["data"]
    return rows


async def test_a_delivery_past_its_ttl_is_recorded_expired_and_never_sent(tmp_path: Path, receiver: Receiver) -> None:
    settings = make_settings(tmp_path)
    # Accepted by a process without a worker: the delivery waits, stored, while its ttl runs out.
    async with running(settings, worker=False) as app:
        token = await app.domain_token(DOMAIN)
        action = {"type": "web", "method": "POST", "url": receiver.url()}
        hook = {"event": "CHANNEL_CREATE", "enable": True, "ttl": TTL_S, "action": action}
        hook_id = await app.create_hook(DOMAIN, hook, token)
        answer = await app.post_events({"Event-Name": "CHANNEL_CREATE", "variable_domain_name": DOMAIN}, token)
        assert answer.status_code == 202 and answer.json()["data"]["deliveries"] == 1, answer.text
        (stored,) = await deliveries_of(app, hook_id, token)
        assert stored["status"] == "pending" and stored["expiresAt"] is not None

    await eventually(lambda: time.time() > stored["expiresAt"], "the ttl to run out", TTL_S + 5)

    async with running(settings) as app:  # now a worker takes it
        rows: list[dict[str, Any]] = []

        async def finished() -> bool:
            rows[:] = await deliveries_of(app, hook_id, token)
            return rows[0]["status"] != "pending"

        await eventually(finished, "the delivery to be given up", 10, lambda: str(rows))
        (row,) = rows
        assert row["status"] == "expired", row
        assert row["attempts"] == 0, row
        detail = await app.client.get(f"/api/v2/deliveries/{row['id']}", headers={"X-Access-Token": token})
        assert detail.status_code == 200, detail.text
        assert detail.json()["data"]["status"] == "expired"
        assert detail.json()["data"]["attempts_log"] == [], detail.json()  # not one request went out
    assert receiver.requests == []


async def test_a_failure_whose_retry_would_fall_past_the_ttl_is_recorded_expired(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The ttl, not the receiver, ends it: the retry `delay` (60 s) lands after the 1 s ttl, so it is `expired`."""
    receiver.default = Reply(status=503)
    async with running(make_settings(tmp_path)) as app:
        token = await app.domain_token(DOMAIN)
        action = {"type": "web", "method": "POST", "url": receiver.url()}
        hook = {"event": "CHANNEL_CREATE", "enable": True, "ttl": TTL_S, "delay": 60, "retries": 5, "action": action}
        hook_id = await app.create_hook(DOMAIN, hook, token)
        answer = await app.post_events({"Event-Name": "CHANNEL_CREATE", "variable_domain_name": DOMAIN}, token)
        assert answer.status_code == 202, answer.text
        rows: list[dict[str, Any]] = []

        async def finished() -> bool:
            rows[:] = await deliveries_of(app, hook_id, token)
            return bool(rows) and rows[0]["status"] != "pending"

        await eventually(finished, "the delivery to be given up", 10, lambda: str(rows))
        (row,) = rows
        assert row["status"] == "expired", row
        assert row["attempts"] == 1, row
        assert "ttl expires before the next attempt" in row["lastError"], row
    assert len(receiver.requests) == 1
