"""Structured logs: a failed attempt is logged as JSON carrying its delivery id, hook and status; a background
loop's failure reads as an outage (one warning line) only when it is one, and otherwise carries its traceback."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from switchhook.telemetry import JsonFormatter
from tests.support.app import ROOT, Harness, make_settings, running
from tests.support.receiver import Receiver
from tests.support.waiting import eventually


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


# -- background loops: an outage reads as one line, a bug carries its traceback ---------------------------


def _purge_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "switchhook.runtime" and r.getMessage().startswith("purge failed")]


async def test_a_bug_in_a_background_loop_is_logged_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from switchhook.services.deliveries import DeliveriesService

    async def buggy_purge(*_args: Any, **_kwargs: Any) -> int:
        raise KeyError("a bug, not an outage")

    monkeypatch.setattr(DeliveriesService, "purge", buggy_purge)
    caplog.set_level(logging.INFO, logger="switchhook.runtime")
    async with running(make_settings(tmp_path)):  # the purge loop's first turn runs at start
        (record,) = await eventually(lambda: _purge_failures(caplog), "the purge loop's failure logged")

    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    line = json.loads(JsonFormatter().format(record))
    assert "Traceback" in line["exc"]
    assert "KeyError: 'a bug, not an outage'" in line["exc"]
    assert "buggy_purge" in line["exc"]


async def test_an_outage_in_a_background_loop_is_one_warning_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from switchhook.core.errors import Unavailable
    from switchhook.services.deliveries import DeliveriesService

    async def purge_while_down(*_args: Any, **_kwargs: Any) -> int:
        raise Unavailable("database unavailable: ConnectionRefusedError")

    monkeypatch.setattr(DeliveriesService, "purge", purge_while_down)
    caplog.set_level(logging.INFO, logger="switchhook.runtime")
    async with running(make_settings(tmp_path)):
        (record,) = await eventually(lambda: _purge_failures(caplog), "the purge loop's failure logged")

    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "purge failed: database unavailable: ConnectionRefusedError"
    assert "exc" not in line
