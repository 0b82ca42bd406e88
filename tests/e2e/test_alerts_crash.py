"""An alert stored before a crash is delivered after the restart (docs/alerts.md, "Durability"): SIGKILL while a
hook_paused alert is in flight to its subscriber, unanswered, then restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import drop_schema, new_schema, require_postgres
from tests.support.process import ServerProcess, domain_token_async, free_port
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

DOMAIN = "alert-crash.example"

pytestmark = pytest.mark.slow


def alert_of(request: Any) -> dict[str, Any]:
    data: dict[str, Any] = request.json()["data"]
    return data


async def pause_then_crash(receiver: Receiver, env: dict[str, str], log_dir: Path) -> None:
    receiver.routes["/hold"] = Reply(200, delay_s=60)  # far longer than the test: answered after the crash only
    env = {
        **env,
        "SWITCHHOOK_BREAKER_FAILURES": "2",
        "SWITCHHOOK_BREAKER_COOLDOWN_S": "600",  # no probe during the test: one pause, one alert
        "SWITCHHOOK_BREAKER_MAX_COOLDOWN_S": "600",
    }
    headers = {"X-Access-Token": await domain_token_async(env, DOMAIN)}
    first = await ServerProcess(env, log_dir, name="first").start_async()
    try:
        subscriber = {
            "event": "CUSTOM->switchhook::hook_paused",
            "enable": True,
            "retries": 5,
            "delay": 0.2,
            "action": {"type": "web", "method": "POST", "url": receiver.url("/hold")},
        }
        created = await first.request_async("POST", "/api/v2/hooks", json=subscriber, headers=headers)
        assert created.status_code == 200, created.text
        dead = {
            "event": "DTMF",
            "enable": True,
            "retries": 5,
            "delay": 600,  # its deliveries are not tried again during the test
            "action": {"type": "web", "method": "POST", "url": f"http://127.0.0.1:{free_port()}/down"},
        }
        created = await first.request_async("POST", "/api/v2/hooks", json=dead, headers=headers)
        assert created.status_code == 200, created.text
        dead_id = created.json()["data"]["insertedIds"][0]
        events = [{"Event-Name": "DTMF", "variable_domain_name": DOMAIN, "n": str(n)} for n in range(2)]
        answer = await first.request_async("POST", "/api/v2/events", json=events, headers=headers)
        assert answer.status_code == 202, answer.text
        (held,) = await receiver.wait_for(1, timeout_s=20, path="/hold")  # the alert, in flight, unanswered
    finally:
        await first.kill_async()
    before = alert_of(held)
    assert before["Event-Subclass"] == "switchhook::hook_paused" and before["Hook-Id"] == dead_id

    receiver.routes["/hold"] = Reply(200)
    arrived = len(receiver.on("/hold"))
    second = await ServerProcess(env, log_dir, name="second").start_async()
    try:

        def delivered_again() -> bool:
            return any(
                alert_of(r)["Core-UUID"] == before["Core-UUID"]
                and alert_of(r)["Event-Sequence"] == before["Event-Sequence"]
                for r in receiver.on("/hold")[arrived:]
            )

        await eventually(delivered_again, "the first run's alert delivered after the restart", 30, second.log)
        again = [r for r in receiver.on("/hold")[arrived:] if alert_of(r)["Core-UUID"] == before["Core-UUID"]]
        assert again[0].json()["id"] == held.json()["id"]  # the same delivery, not a new alert
    finally:
        await second.stop_async()


async def test_sqlite_delivers_a_stored_alert_after_sigkill(receiver: Receiver, tmp_path: Path) -> None:
    await pause_then_crash(receiver, {"SWITCHHOOK_DATA_DIR": str(tmp_path / "data")}, tmp_path)


async def test_postgres_delivers_a_stored_alert_after_sigkill(receiver: Receiver, tmp_path: Path) -> None:
    dsn = await require_postgres()
    schema = new_schema()
    env = {"SWITCHHOOK_DATABASE_URL": dsn, "SWITCHHOOK_DATABASE_SCHEMA": schema, "SWITCHHOOK_LEASE_S": "2"}
    try:
        await pause_then_crash(receiver, env, tmp_path)
    finally:
        await drop_schema(dsn, schema)
