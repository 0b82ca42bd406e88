"""A delivery in flight keeps its lease: another worker never takes it while its request is unanswered.

Two processes share one PostgreSQL outbox with a 1 s lease, and the receiver holds every request for 3 s.
The events are posted to the first (API and worker), which leases their deliveries to itself at once and
polls only every second; the second (a worker) polls every 50 ms. Only the holder's renewals (every third of
a lease) keep the second from claiming them as abandoned and sending them again, which it would do within
50 ms of the lease running out.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support.process import Cluster, postgres_cluster
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DOMAIN = "lease.example"
LEASE_S = 1.0
HOLD_S = 3.0  # three leases long
EVENTS = 12


async def test_a_request_held_longer_than_the_lease_is_sent_once(tmp_path: Path, receiver: Receiver) -> None:
    receiver.routes["/hold"] = Reply(200, delay_s=HOLD_S)
    async with postgres_cluster(tmp_path, DOMAIN, {}, {"SWITCHHOOK_LEASE_S": str(LEASE_S)}) as cluster:
        await asyncio.gather(
            cluster.start("holder", env={"SWITCHHOOK_POLL_INTERVAL_S": "1"}),
            cluster.start("other", "--worker", env={"SWITCHHOOK_POLL_INTERVAL_S": "0.05"}),
        )
        async with cluster.client("holder") as api:
            await lease_outlives_the_hold(api, receiver, cluster)


async def lease_outlives_the_hold(api: httpx.AsyncClient, receiver: Receiver, cluster: Cluster) -> None:
    """Post to the holder, wait until every delivery is recorded, and count the requests per event."""
    hook = {
        "event": "CHANNEL_CREATE",
        "enable": True,
        "retries": 3,
        "action": {"type": "web", "method": "POST", "url": receiver.url("/hold")},
    }
    created = await api.post("/api/v2/hooks", json=hook)
    assert created.status_code == 200, created.text
    hook_id = created.json()["data"]["insertedIds"][0]
    events = [
        {"Event-Name": "CHANNEL_CREATE", "Unique-ID": f"call-{n}", "variable_domain_name": DOMAIN}
        for n in range(EVENTS)
    ]
    answer = await api.post("/api/v2/events", json=events)
    assert answer.status_code == 202 and answer.json()["data"]["deliveries"] == EVENTS, answer.text

    statuses: Counter[str] = Counter()

    async def all_delivered() -> bool:
        listed = await api.get(f"/api/v2/hooks/{hook_id}/deliveries", params={"limit": 100})
        statuses.clear()
        statuses.update(d["status"] for d in listed.json()["data"])
        return statuses == {"delivered": EVENTS}

    # Every request arrives while it is held, so any second copy has arrived by the time all are recorded.
    await eventually(all_delivered, "every delivery recorded", 30, lambda: f"{statuses}\n{cluster.logs()}")
    per_event = Counter(r.json()["data"]["Unique-ID"] for r in receiver.on("/hold"))
    sent = sum(per_event.values())
    print(f"\nlease renewal: {EVENTS} events held {HOLD_S} s under a {LEASE_S} s lease: {sent} requests")
    assert set(per_event) == {e["Unique-ID"] for e in events}
    assert per_event == dict.fromkeys(per_event, 1), f"sent again while held: {per_event}"
