"""A tenant with many slow endpoints fills its own per-domain cap, never the others' capacity."""

from __future__ import annotations

from pathlib import Path

from tests.support.app import make_settings, running
from tests.support.receiver import Receiver, Reply


async def test_per_domain_cap_bounds_one_tenant_and_leaves_room_for_another(receiver: Receiver, tmp_path: Path) -> None:
    receiver.routes.update({f"/slow{n}": Reply(200, delay_s=0.5) for n in range(4)})
    settings = make_settings(tmp_path, max_in_flight_per_domain=2, max_in_flight_per_hook=8)
    async with running(settings) as app:
        token_a = await app.domain_token("many.example")
        token_b = await app.domain_token("other.example")
        for n in range(4):
            action = {"type": "web", "method": "POST", "url": receiver.url(f"/slow{n}")}
            await app.create_hook("many.example", {"event": "DTMF", "enable": True, "action": action}, token_a)
        action_b = {"type": "web", "method": "POST", "url": receiver.url("/fast")}
        await app.create_hook("other.example", {"event": "DTMF", "enable": True, "action": action_b}, token_b)

        await app.post_events({"Event-Name": "DTMF", "variable_domain_name": "many.example"}, token_a)
        await app.post_events({"Event-Name": "DTMF", "variable_domain_name": "other.example"}, token_b)
        await receiver.wait_for(5, timeout_s=5)

    slow = sorted(r.at for r in receiver.requests if r.path.startswith("/slow"))
    fast = next(r.at for r in receiver.requests if r.path == "/fast")
    assert len(slow) == 4
    assert slow[1] - slow[0] < 0.3  # two at once: the domain's cap
    assert slow[2] - slow[0] >= 0.45  # the third waited for a slot of its own domain
    assert fast - slow[0] < 0.3  # the other tenant did not wait behind them
