"""Issue 13, items 7 and 9: the ingest rate limit bypassed by batching, and unbounded hook documents."""

from __future__ import annotations

import resource
from pathlib import Path

from tests.support.app import ROOT, make_settings, running
from tests.support.receiver import Receiver

MB = 1024 * 1024


async def test_a_batch_is_charged_every_event(tmp_path: Path, receiver: Receiver) -> None:
    """10 events/s per domain: batches of 5,000 got 2,325 events/s in, a batch costing min(n, burst)."""
    async with running(make_settings(tmp_path, ingest_rate_per_domain=10)) as app:
        flood, quiet = await app.domain_token("flood.example"), await app.domain_token("quiet.example")
        action = {"type": "web", "method": "POST", "url": receiver.url()}
        hook_id = await app.create_hook("flood.example", {"event": "DTMF", "enable": True, "action": action}, flood)
        await app.create_hook("quiet.example", {"event": "DTMF", "enable": True, "action": action}, quiet)
        event = {"Event-Name": "DTMF", "variable_domain_name": "flood.example"}

        big = await app.post_events([event] * 5000, flood)
        assert big.status_code == 429, big.text
        assert int(big.headers["Retry-After"]) >= 1
        assert "more than the 20" in big.json()["info"]  # it can never fit: the answer says so
        fits = await app.post_events([event] * 15, flood)
        assert fits.status_code == 202
        over = await app.post_events([event] * 10, flood)  # 5 left
        assert over.status_code == 429
        assert int(over.headers["Retry-After"]) >= 1
        other = await app.post_events({"Event-Name": "DTMF", "variable_domain_name": "quiet.example"}, quiet)
        assert other.status_code == 202  # another domain's budget is its own

        rows = await app.services.deliveries.list_for_hook(ROOT, "flood.example", hook_id, None, "1000", None)
        assert len(rows) == 15  # the refused batches stored nothing


async def test_big_hook_documents_are_refused_and_pages_are_capped(tmp_path: Path) -> None:
    """50 hooks with 4 MB descriptions took RSS from 72 to 302 MB and one list answer was 190 MB."""
    async with running(make_settings(tmp_path)) as app:
        token = await app.domain_token("big.example")
        headers = {"X-Access-Token": token}
        action = {"type": "web", "method": "POST", "url": "http://127.0.0.1:9/x"}
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        for _ in range(5):
            body = {"event": "DTMF", "action": action, "description": "x" * (4 * MB)}
            refused = await app.client.post("/api/v2/hooks", json=body, headers=headers)
            assert refused.status_code == 400, refused.text[:200]
            assert "more than the 65536 allowed" in refused.json()["info"]
        just_over = {"event": "DTMF", "action": action, "description": "x" * (64 * 1024)}
        assert (await app.client.post("/api/v2/hooks", json=just_over, headers=headers)).status_code == 400
        for _ in range(3):
            fits = {"event": "DTMF", "action": action, "description": "x" * (60 * 1024)}
            assert (await app.client.post("/api/v2/hooks", json=fits, headers=headers)).status_code == 200
        page = await app.client.get("/api/v2/hooks", params={"limit": "100000"}, headers=headers)
        assert page.status_code == 200
        assert len(page.json()["data"]) == 3
        assert len(page.content) < 3 * 64 * 1024 + 4096
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before < 200 * MB
