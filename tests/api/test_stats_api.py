"""`GET /api/v2/stats/hooks` through HTTP: the hook list's counts, newest delivery, breaker and shelf."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.api.helpers import hook_body, token_headers
from tests.support.app import Harness, make_settings, running
from tests.support.receiver import Receiver

DOMAIN = "stats.example.com"
STATS = "/api/v2/stats/hooks"


async def stats_of(app: Harness, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = await app.client.get(STATS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


async def until_finished(app: Harness, headers: dict[str, str], hook_id: str, count: int) -> None:
    for _ in range(200):
        rows = (await app.client.get(f"/api/v2/hooks/{hook_id}/deliveries", headers=headers)).json()["data"]
        if len(rows) == count and all(r["status"] != "pending" for r in rows):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("deliveries never finished")


async def test_counts_the_last_hour_by_outcome_with_the_newest_delivery(app: Harness, receiver: Receiver) -> None:
    headers = token_headers(await app.domain_token(DOMAIN))
    hook_id = await app.create_hook(DOMAIN, hook_body(url=receiver.url(), retries=0), headers["X-Access-Token"])
    quiet = await app.create_hook(DOMAIN, hook_body("CHANNEL_ANSWER", url=receiver.url()), headers["X-Access-Token"])
    receiver.answer(200, 500)
    for n in range(2):
        event = {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": DOMAIN, "n": str(n)}
        assert (await app.post_events(event, headers["X-Access-Token"])).status_code == 202
        await receiver.wait_for(n + 1)
        await until_finished(app, headers, hook_id, n + 1)
    busy, idle = await stats_of(app, headers)
    counts = (busy["hookId"], busy["delivered"], busy["failed"], busy["pending"], busy["sampled"])
    assert counts == (hook_id, 1, 1, 0, 2)
    assert busy["successRate"] == 0.5
    assert busy["lastDelivery"]["status"] == "failed" and busy["lastDelivery"]["lastStatus"] == 500
    assert busy["breaker"] == "closed" and busy["shelved"] is False
    assert (idle["hookId"], idle["sampled"], idle["successRate"], idle["lastDelivery"]) == (quiet, 0, None, None)
    assert [s["hookId"] for s in await stats_of(app, headers, hook=quiet)] == [quiet]
    assert [s["hookId"] for s in await stats_of(app, headers, hook=f"{quiet},{hook_id.upper()}")] == [quiet, hook_id]


async def test_a_paused_endpoint_shows_as_an_open_breaker(tmp_path: Path, receiver: Receiver) -> None:
    async with running(make_settings(tmp_path, breaker_failures=1, breaker_cooldown_s=60)) as app:
        token = await app.domain_token(DOMAIN)
        await app.create_hook(DOMAIN, hook_body(url=receiver.url(), retries=3, delay=60), token)
        receiver.answer(503)
        await app.post_events({"Event-Name": "CHANNEL_CREATE", "variable_domain_name": DOMAIN}, token)
        await receiver.wait_for(1)
        for _ in range(200):
            (row,) = await stats_of(app, token_headers(token))
            if row["breaker"] == "open":
                break
            await asyncio.sleep(0.05)
        assert row["breaker"] == "open", row


async def test_an_api_only_process_has_no_breaker_to_report(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path), worker=False) as app:
        token = await app.domain_token(DOMAIN)
        await app.create_hook(DOMAIN, hook_body(), token)
        (row,) = await stats_of(app, token_headers(token))
        assert row["breaker"] is None and row["shelved"] is False


async def test_bad_ids_credentials_and_roles_are_4xx(app: Harness) -> None:
    admin = token_headers(await app.domain_token(DOMAIN))
    user = token_headers(await app.domain_token(DOMAIN, "user"))
    assert (await app.client.get(STATS)).status_code == 401
    assert (await app.client.get(STATS, headers=user)).status_code == 403
    for bad in ("nope", "0123456789abcdef0123456", ",".join(["0123456789abcdef01234567"] * 101), ""):
        response = await app.client.get(STATS, params={"hook": bad}, headers=admin)
        assert response.status_code == 400, (bad, response.text)
    root = await app.root_headers()
    assert (await app.client.get(STATS, headers=root)).status_code == 400  # root must name the domain
    assert (await app.client.get(STATS, params={"domain": DOMAIN}, headers=root)).json()["data"] == []
