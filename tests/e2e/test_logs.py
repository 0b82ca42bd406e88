"""Structured logs: a failed attempt is logged as JSON carrying its delivery id, hook and status."""

from __future__ import annotations

import json
import logging

import pytest

from switchhook.telemetry import JsonFormatter
from tests.support.app import ROOT, Harness
from tests.support.receiver import Receiver


async def test_failed_attempt_logs_its_delivery_id(
    app: Harness, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="switchhook.delivery")
    receiver.answer(503, 200)
    token = await app.domain_token("logs.example")
    action = {"type": "web", "method": "POST", "url": receiver.url()}
    hook_id = await app.create_hook(
        "logs.example", {"event": "DTMF", "enable": True, "delay": 0.1, "action": action}, token
    )
    await app.post_events({"Event-Name": "DTMF", "variable_domain_name": "logs.example"}, token)
    await receiver.wait_for(2)
    (delivery,) = await app.services.deliveries.list_for_hook(ROOT, "logs.example", hook_id, None, None, None)

    records = [r for r in caplog.records if getattr(r, "delivery_id", None) == delivery["id"]]

    assert records, "no log record carried the delivery id"
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["delivery_id"] == delivery["id"]
    assert line["hook_id"] == hook_id
    assert line["domain"] == "logs.example"
    assert line["status_code"] == 503
    assert line["level"] == "warning"
