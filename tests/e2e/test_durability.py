"""Every accepted event is delivered across a crash: SIGKILL after 202 and before delivery, then restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.process import ServerProcess, domain_token_async, postgres_env
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

DOMAIN = "crash.example"
EVENTS = 40

pytestmark = pytest.mark.slow


async def crash_and_recover(receiver: Receiver, env: dict[str, str], log_dir: Path) -> None:
    # The receiver holds every request without answering: nothing can be delivered before the crash.
    receiver.routes["/hold"] = Reply(200, delay_s=60)  # far longer than the test: answered after the crash only
    token = await domain_token_async(env, DOMAIN)
    headers = {"X-Access-Token": token}
    # Async all through: a blocking call here would freeze the receiver the servers deliver to.
    first = await ServerProcess(env, log_dir, name="first").start_async()
    try:
        hook = {
            "event": "CHANNEL_CREATE",
            "enable": True,
            "retries": 5,
            "delay": 0.2,
            "action": {"type": "web", "method": "POST", "url": receiver.url("/hold")},
        }
        hook_id = await first.create_hook_async(hook, headers)
        for n in range(EVENTS):
            event = {"Event-Name": "CHANNEL_CREATE", "Unique-ID": f"call-{n}", "variable_domain_name": DOMAIN}
            answer = await first.request_async("POST", "/api/v2/events", json=event, headers=headers)
            assert answer.status_code == 202, answer.text
            assert answer.json()["data"]["deliveries"] == 1
        await receiver.wait_for(1, path="/hold")  # in flight, unanswered
    finally:
        await first.kill_async()
    assert not any(r.path == "/ok" for r in receiver.requests)

    # After the restart the endpoint answers at once; the hook now points there.
    receiver.routes["/hold"] = Reply(200)
    before_restart = len(receiver.requests)
    second = await ServerProcess(env, log_dir, name="second").start_async()
    try:
        await receiver.wait_for(before_restart + EVENTS, timeout_s=30, path="/hold")
        after = receiver.requests[before_restart:]
        delivered_ids = {r.json()["data"]["Unique-ID"] for r in after}
        assert delivered_ids == {f"call-{n}" for n in range(EVENTS)}
        statuses: list[str] = []

        async def all_delivered() -> bool:
            listed = await second.request_async(
                "GET", f"/api/v2/hooks/{hook_id}/deliveries?limit=1000", headers=headers
            )
            statuses[:] = [d["status"] for d in listed.json()["data"]]
            return statuses.count("delivered") == EVENTS

        await eventually(all_delivered, "every delivery recorded as delivered", 10, lambda: str(statuses))
    finally:
        await second.stop_async()


async def test_sqlite_survives_sigkill(receiver: Receiver, tmp_path: Path) -> None:
    env = {"SWITCHHOOK_DATA_DIR": str(tmp_path / "data")}
    await crash_and_recover(receiver, env, tmp_path)


async def test_postgres_survives_sigkill(receiver: Receiver, tmp_path: Path) -> None:
    async with postgres_env({"SWITCHHOOK_LEASE_S": "2"}) as env:
        await crash_and_recover(receiver, env, tmp_path)
