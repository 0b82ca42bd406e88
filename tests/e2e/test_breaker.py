"""A hook whose endpoint is down is paused, probed, and resumed when it answers; nothing is lost meanwhile."""

from __future__ import annotations

from pathlib import Path

from tests.support.app import make_settings, running
from tests.support.receiver import Receiver


async def test_a_failing_endpoint_is_paused_then_probed_then_resumed(receiver: Receiver, tmp_path: Path) -> None:
    receiver.answer(503, 503, 503, 503)  # three failures open the circuit; the first probe fails too
    settings = make_settings(
        tmp_path,
        max_in_flight_per_hook=1,  # one at a time: the order of attempts is the order of answers
        breaker_failures=3,
        breaker_cooldown_s=0.5,
        breaker_max_cooldown_s=5,
    )
    async with running(settings) as app:
        token = await app.domain_token("down.example")
        action = {"type": "web", "method": "POST", "url": receiver.url("/down")}
        hook = {"event": "DTMF", "enable": True, "retries": 5, "delay": 1, "action": action}
        await app.create_hook("down.example", hook, token)
        events = [{"Event-Name": "DTMF", "variable_domain_name": "down.example", "n": str(n)} for n in range(10)]
        response = await app.post_events(events, token)
        assert response.status_code == 202

        requests = await receiver.wait_for(14, timeout_s=15)  # 10 events + 4 failed attempts retried

    at = [r.at for r in requests]
    assert at[3] - at[2] >= 0.45  # open: nothing sent for the first cooldown, then one probe
    assert at[4] - at[3] >= 0.95  # the probe failed: twice the cooldown
    assert at[5] - at[4] < 0.5  # the second probe succeeded: the backlog flows again
    delivered = sorted(int(r.json()["data"]["n"]) for r in requests[4:])
    assert delivered == list(range(10))  # each event once after the outage, the failed ones by their retries
