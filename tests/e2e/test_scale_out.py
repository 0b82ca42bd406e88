"""Scale-out on PostgreSQL: one `serve --api` process and two `serve --worker` processes share the work."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.postgres import drop_schema, new_schema, require_postgres
from tests.support.process import ServerProcess, domain_token
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

DOMAIN = "scale.example"
PER_HOOK_CAP = 32  # requests in flight per hook and worker

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass
class Cluster:
    api: ServerProcess
    workers: list[ServerProcess]
    client: httpx.AsyncClient  # to the API process, authenticated as the domain's admin

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
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in (self.api, *self.workers))


@asynccontextmanager
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """A fresh PostgreSQL schema, the API process and two workers, all started in parallel."""
    dsn = await require_postgres()
    schema = new_schema()
    env = {
        "SWITCHHOOK_DATABASE_URL": dsn,
        "SWITCHHOOK_DATABASE_SCHEMA": schema,
        "SWITCHHOOK_LEASE_S": "2",
        "SWITCHHOOK_MAX_IN_FLIGHT_PER_HOOK": str(PER_HOOK_CAP),
        "SWITCHHOOK_DATA_DIR": str(tmp_path / "data"),
    }
    processes: list[ServerProcess] = []

    async def start(role: str, name: str) -> ServerProcess:
        # free_port() only picks a port: a concurrent test run may bind it first and answer our /health.
        for _ in range(3):
            process = ServerProcess(env, tmp_path, role, name=name)
            processes.append(process)
            await asyncio.to_thread(process.start)
            if await is_ours(process, worker=role == "--worker"):
                return process
            await asyncio.to_thread(process.kill)
        pytest.fail(f"{name} never got a port of its own:\n{process.log()}")

    try:
        token = await asyncio.to_thread(domain_token, env, DOMAIN)  # also migrates the schema
        api, *workers = await asyncio.gather(
            start("--api", "api"), start("--worker", "worker1"), start("--worker", "worker2")
        )
        async with httpx.AsyncClient(base_url=api.url, headers={"X-Access-Token": token}, timeout=30) as client:
            yield Cluster(api, workers, client)
    finally:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes))
        await drop_schema(dsn, schema)


async def is_ours(process: ServerProcess, *, worker: bool) -> bool:
    """Whether the server answering on the process's port is that process (a worker's id holds its pid)."""
    assert process.proc is not None
    report = await worker_view(process)
    if process.proc.poll() is not None or ("worker" in report) != worker:
        return False
    return not worker or report["worker"]["id"].split(":")[1] == str(process.proc.pid)


async def worker_view(worker: ServerProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(worker.url + "/health")
    report: dict[str, Any] = response.json()
    return report


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


async def all_recorded_delivered(c: Cluster, hook_id: str, total: int) -> None:
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
        hook_id = await c.create_hook(hook(receiver.url("/slow"), retries=5, delay=0.2))
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
        await asyncio.to_thread(victim.kill)
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
        assert set(counts) == wanted, report
        # A duplicate is a request the victim sent but could not record: at most what it had in flight.
        assert duplicates <= PER_HOOK_CAP, report
        assert (await worker_view(survivor))["status"] == "ok", report
