"""A crash between a pause and its alert (docs/alerts.md, "Durability"): an alert stored before the crash is delivered
after the restart (SIGKILL while a hook_paused alert is in flight to its subscriber, unanswered); one not stored yet
is lost with the pause itself, and the restarted process, finding the endpoint still down, pauses the hook again and
raises a fresh hook_paused (SIGKILL while the alert's insert waits on a lock the test holds on the events table)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.process import ServerProcess, domain_token_async, free_port, postgres_env
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

DOMAIN = "alert-crash.example"
PAUSED = "CUSTOM->switchhook::hook_paused"

pytestmark = pytest.mark.slow

#: Two failures pause a hook, and no probe comes during the test: one pause, one alert, per run.
ONE_PAUSE = {
    "SWITCHHOOK_BREAKER_FAILURES": "2",
    "SWITCHHOOK_BREAKER_COOLDOWN_S": "600",
    "SWITCHHOOK_BREAKER_MAX_COOLDOWN_S": "600",
}
#: A SIGKILLed process's leases run out soon, for the restarted one to claim its deliveries.
SHORT_LEASE = {"SWITCHHOOK_LEASE_S": "2"}


def alert_of(request: Any) -> dict[str, Any]:
    data: dict[str, Any] = request.json()["data"]
    return data


def web_hook(event: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"event": event, "enable": True, "action": {"type": "web", "method": "POST", "url": url}, **extra}


async def arrange_a_pause(
    server: ServerProcess, headers: dict[str, str], subscriber: dict[str, Any], dead: dict[str, Any]
) -> str:
    """Create the alert `subscriber` and the `dead` DTMF hook, and post two DTMF events, whose two failed deliveries
    pause the dead hook (ONE_PAUSE); the dead hook's id."""
    await server.create_hook_async(subscriber, headers)
    dead_id = await server.create_hook_async(dead, headers)
    events = [{"Event-Name": "DTMF", "variable_domain_name": DOMAIN, "n": str(n)} for n in range(2)]
    posted = await server.request_async("POST", "/api/v2/events", json=events, headers=headers)
    assert posted.status_code == 202, posted.text
    return dead_id


async def pause_then_crash(receiver: Receiver, env: dict[str, str], log_dir: Path) -> None:
    receiver.routes["/hold"] = Reply(200, delay_s=60)  # far longer than the test: answered after the crash only
    env = {**env, **ONE_PAUSE}
    headers = {"X-Access-Token": await domain_token_async(env, DOMAIN)}
    first = await ServerProcess(env, log_dir, name="first").start_async()
    try:
        dead_id = await arrange_a_pause(
            first,
            headers,
            subscriber=web_hook(PAUSED, receiver.url("/hold"), retries=5, delay=0.2),
            # Its deliveries are not tried again during the test.
            dead=web_hook("DTMF", f"http://127.0.0.1:{free_port()}/down", retries=5, delay=600),
        )
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
    async with postgres_env(SHORT_LEASE) as env:
        await pause_then_crash(receiver, env, tmp_path)


async def test_postgres_a_pause_whose_alert_was_not_stored_is_paused_and_alerted_again_after_sigkill(
    receiver: Receiver, tmp_path: Path
) -> None:
    answer = asyncio.Event()
    receiver.routes["/down"] = Reply(503, gate=answer)  # both requests in flight before the lock is taken
    async with postgres_env({**SHORT_LEASE, **ONE_PAUSE}) as env:
        dsn, schema = env["SWITCHHOOK_DATABASE_URL"], env["SWITCHHOOK_DATABASE_SCHEMA"]
        locker = await asyncpg.connect(dsn)
        try:
            headers = {"X-Access-Token": await domain_token_async(env, DOMAIN)}
            first = await ServerProcess(env, tmp_path, name="first").start_async()
            try:
                dead_id = await arrange_a_pause(
                    first,
                    headers,
                    subscriber=web_hook(PAUSED, receiver.url("/alerts")),
                    # Tried again soon after the restart.
                    dead=web_hook("DTMF", receiver.url("/down"), retries=5, delay=0.5),
                )
                await receiver.wait_for(2, path="/down")

                # Nothing may be inserted into events now: the pause's alert cannot be stored.
                lock = locker.transaction()
                await lock.start()
                await locker.execute(f'LOCK TABLE "{schema}".events IN EXCLUSIVE MODE')
                answer.set()  # two 503s: the breaker pauses the hook and raises hook_paused

                async def alert_waits_on_the_lock() -> bool:
                    waiting = await locker.fetchval(
                        "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted",
                        f'"{schema}".events',
                    )
                    return "pausing its deliveries" in first.log() and bool(waiting)

                await eventually(alert_waits_on_the_lock, "the hook paused, its alert's insert waiting", 20, first.log)
            finally:
                await first.kill_async()
            await lock.rollback()
            assert receiver.on("/alerts") == []

            receiver.routes["/down"] = Reply(503)  # still down after the restart
            second = await ServerProcess(env, tmp_path, name="second").start_async()
            try:
                (request,) = await receiver.wait_for(1, timeout_s=30, path="/alerts")
                fresh = alert_of(request)
                assert fresh["Event-Subclass"] == "switchhook::hook_paused" and fresh["Hook-Id"] == dead_id
                assert len(receiver.on("/down")) >= 4  # paused again by the new run's own failures
                stored = await locker.fetch(f'SELECT payload FROM "{schema}".events WHERE source = $1', "switchhook")
                assert len(stored) == 1  # the first run's alert was never stored: lost with its pause, as documented
            finally:
                await second.stop_async()
        finally:
            await locker.close()
