"""Scale-out on PostgreSQL: one `serve --api` process and two `serve --worker` processes share the work."""

from __future__ import annotations

import base64
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchhook.core.signing import verify
from tests.support.process import Cluster, ServerProcess, postgres_cluster
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

DOMAIN = "scale.example"
SIGNING_KEY = b"scale-out-signing-key-0123456789"
SECRET = "whsec_" + base64.b64encode(SIGNING_KEY).decode()
PER_HOOK_CAP = 32  # requests in flight per hook and worker

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass
class ScaleOut:
    """The API process and two workers on one PostgreSQL schema; `client` talks to the API process."""

    cluster: Cluster
    client: httpx.AsyncClient

    @property
    def workers(self) -> list[ServerProcess]:
        return [self.cluster["worker1"], self.cluster["worker2"]]

    async def create_hook(self, hook: dict[str, Any]) -> str:
        response = await self.client.post("/api/v2/hooks", json=hook)
        assert response.status_code == 200, response.text
        hook_id: str = response.json()["data"]["insertedIds"][0]
        return hook_id

    async def post_events(self, events: list[dict[str, str]]) -> None:
        response = await self.client.post("/api/v2/events", json=events)
        assert response.status_code == 202, response.text
        assert response.json()["data"]["deliveries"] == len(events)

    async def delivery_statuses(self, hook_id: str) -> Counter[str]:
        response = await self.client.get(f"/api/v2/hooks/{hook_id}/deliveries", params={"limit": 1000})
        assert response.status_code == 200, response.text
        return Counter(d["status"] for d in response.json()["data"])

    def logs(self) -> str:
        return self.cluster.logs()


@asynccontextmanager
async def cluster(tmp_path: Path, lease_s: float = 2) -> AsyncIterator[ScaleOut]:
    """A fresh PostgreSQL schema, the API process and two workers, all started in parallel."""
    env = {"SWITCHHOOK_LEASE_S": str(lease_s), "SWITCHHOOK_MAX_IN_FLIGHT_PER_HOOK": str(PER_HOOK_CAP)}
    roles = {"api": ("--api",), "worker1": ("--worker",), "worker2": ("--worker",)}
    async with postgres_cluster(tmp_path, DOMAIN, roles, env) as c, c.client("api") as client:
        yield ScaleOut(c, client)


async def worker_view(worker: ServerProcess) -> dict[str, Any]:
    return await worker.health()


async def delivered_by(worker: ServerProcess) -> float:
    """`switchhook_deliveries_total{outcome="delivered"}` of one worker process (0 when it delivered none)."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(worker.url + "/metrics")).text
    match = re.search(r'^switchhook_deliveries_total\{outcome="delivered"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": "CHANNEL_CREATE",
        "enable": True,
        "action": {"type": "web", "method": "POST", "url": url},
        **extra,
    }


def events(first: int, count: int) -> list[dict[str, str]]:
    return [
        {"Event-Name": "CHANNEL_CREATE", "Unique-ID": f"call-{n}", "variable_domain_name": DOMAIN}
        for n in range(first, first + count)
    ]


def unique_ids(receiver: Receiver) -> Counter[str]:
    return Counter(r.json()["data"]["Unique-ID"] for r in receiver.requests)


async def all_recorded_delivered(c: ScaleOut, hook_id: str, total: int) -> None:
    """Wait until the store records every one of the hook's `total` deliveries as delivered."""
    statuses: Counter[str] = Counter()

    async def all_delivered() -> bool:
        statuses.clear()
        statuses.update(await c.delivery_statuses(hook_id))
        return statuses == {"delivered": total}

    await eventually(all_delivered, "every delivery recorded as delivered", 10, lambda: f"{statuses}\n{c.logs()}")


async def test_workers_share_the_work_of_the_api_process_exactly_once(tmp_path: Path, receiver: Receiver) -> None:
    total, batch = 200, 10
    async with cluster(tmp_path) as c:
        # The API process matches; the workers must know the hook the moment its deliveries show up.
        hook_id = await c.create_hook(hook(receiver.url("/hook")))
        for first in range(0, total, batch):
            await c.post_events(events(first, batch))

        await eventually(lambda: len(receiver.requests) >= total, f"{total} requests", 30, c.logs)
        await all_recorded_delivered(c, hook_id, total)
        counts = unique_ids(receiver)
        duplicates = {uid: n for uid, n in counts.items() if n > 1}
        assert not duplicates, f"duplicated deliveries in normal operation: {duplicates}"
        assert set(counts) == {f"call-{n}" for n in range(total)}
        assert len(receiver.requests) == total

        per_worker = [await delivered_by(w) for w in c.workers]
        assert sum(per_worker) == total, per_worker
        assert all(n > 0 for n in per_worker), f"one worker did all the work: {per_worker}"


async def test_a_killed_workers_in_flight_deliveries_are_finished_by_the_survivor(
    tmp_path: Path, receiver: Receiver
) -> None:
    total = 60
    receiver.routes["/slow"] = Reply(200, delay_s=1.0)  # keeps work in flight when the worker dies
    async with cluster(tmp_path) as c:
        hook_id = await c.create_hook(hook(receiver.url("/slow"), retries=5, delay=0.2, secret=SECRET))
        for first in range(0, total, 10):
            await c.post_events(events(first, 10))

        views: list[dict[str, Any]] = []

        async def someone_in_flight() -> bool:
            views[:] = [await worker_view(w) for w in c.workers]
            return any(v["worker"]["inFlight"] > 0 for v in views)

        await eventually(someone_in_flight, "a worker with requests in flight", 10, c.logs)
        busiest = max(range(2), key=lambda i: views[i]["worker"]["inFlight"] + views[i]["worker"]["queued"])
        victim, survivor = c.workers[busiest], c.workers[1 - busiest]
        held = views[busiest]["worker"]["inFlight"] + views[busiest]["worker"]["queued"]
        await victim.kill_async()
        sent_before_kill = len(receiver.requests)

        wanted = {f"call-{n}" for n in range(total)}
        await eventually(
            lambda: set(unique_ids(receiver)) >= wanted,
            "every event delivered after the kill",
            30,
            lambda: f"missing {sorted(wanted - set(unique_ids(receiver)))}\n{c.logs()}",
        )
        await all_recorded_delivered(c, hook_id, total)
        counts = unique_ids(receiver)
        duplicates = sum(n - 1 for n in counts.values())
        report = (
            f"victim held {held} deliveries at the kill; {sent_before_kill} requests had arrived by then; "
            f"{len(receiver.requests)} requests for {total} events, {duplicates} duplicates"
        )
        print(f"\nscale-out kill: {report}")
        assert set(counts) == wanted, report
        # A duplicate is a request the victim sent but could not record: at most what it had in flight.
        assert duplicates <= PER_HOOK_CAP, report
        # ... and it is the same message: a receiver de-duplicates on `webhook-id` (or the envelope `id`).
        webhook_ids, envelope_ids = defaultdict(set), defaultdict(set)
        for request in receiver.requests:
            unique_id = request.json()["data"]["Unique-ID"]
            webhook_ids[unique_id].add(request.headers["webhook-id"])
            envelope_ids[unique_id].add(request.json()["id"])
            headers = request.headers
            signed = (headers["webhook-id"], int(headers["webhook-timestamp"]), request.body)
            assert verify(SIGNING_KEY, *signed, headers["webhook-signature"]), "a re-send with a bad signature"
        resent = {uid: ids for uid, ids in webhook_ids.items() if counts[uid] > 1}
        assert all(len(ids) == 1 for ids in webhook_ids.values()), f"a duplicate carried another webhook-id: {resent}"
        assert all(len(ids) == 1 for ids in envelope_ids.values()), "a duplicate carried another envelope id"
        assert webhook_ids.keys() == wanted and len({next(iter(ids)) for ids in webhook_ids.values()}) == total
        assert (await worker_view(survivor))["status"] == "ok", report
