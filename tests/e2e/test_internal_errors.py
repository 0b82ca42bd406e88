"""A delivery whose attempt fails inside switchhook is recorded as failed, never left leased forever."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.app import ROOT, Harness
from tests.support.receiver import Receiver
from tests.support.waiting import eventually


async def test_an_attempt_that_raises_is_recorded_and_given_up(
    app: Harness, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from switchhook.delivery.pipeline import DeliveryPipeline

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(DeliveryPipeline, "render", broken)
    token = await app.domain_token("bug.example")
    action = {"type": "web", "method": "POST", "url": receiver.url()}
    hook_id = await app.create_hook("bug.example", {"event": "DTMF", "enable": True, "action": action}, token)

    await app.post_events({"Event-Name": "DTMF", "variable_domain_name": "bug.example"}, token)

    async def given_up() -> dict[str, Any] | None:
        (row,) = await app.services.deliveries.list_for_hook(ROOT, "bug.example", hook_id, None, None, None)
        return row if row["status"] != "pending" else None

    row = await eventually(given_up, "the attempt recorded")
    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert row["lastError"] == "internal error: RuntimeError"
    assert receiver.requests == []
