"""Limits through HTTP: per-domain ingest rate (429 + Retry-After, nothing stored); login limits: test_auth_api.py."""

from __future__ import annotations

from pathlib import Path

from tests.support.app import ROOT, make_settings, running
from tests.support.receiver import Receiver


async def test_ingest_over_the_domain_rate_is_429_with_retry_after(tmp_path: Path, receiver: Receiver) -> None:
    async with running(make_settings(tmp_path, ingest_rate_per_domain=5)) as app:
        token = await app.domain_token("busy.example")
        quiet = await app.domain_token("quiet.example")
        action = {"type": "web", "method": "POST", "url": receiver.url()}
        hook = {"event": "CHANNEL_CREATE", "enable": True, "action": action}
        hook_id = await app.create_hook("busy.example", hook, token)
        await app.create_hook("quiet.example", hook, quiet)
        event = {"Event-Name": "CHANNEL_CREATE", "variable_domain_name": "busy.example"}

        accepted = await app.post_events([event] * 10, token)  # the burst (2 x rate)
        refused = await app.post_events([event] * 3, token)
        other = await app.post_events({"Event-Name": "CHANNEL_CREATE", "variable_domain_name": "quiet.example"}, quiet)

        assert accepted.status_code == 202
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["status"] == "error"
        assert other.status_code == 202  # one domain's flood never throttles another
        rows = await app.services.deliveries.list_for_hook(ROOT, "busy.example", hook_id, None, "1000", None)
        assert len(rows) == 10  # the refused batch stored nothing
