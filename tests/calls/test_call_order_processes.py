"""Ordered hooks across processes on PostgreSQL (issue 14 item 3): two workers never send two deliveries of one
(hook, call) at once and keep event order; a SIGKILL mid-call and a restart keep order and X-Call-Sequence."""

from __future__ import annotations

import random
import re
from pathlib import Path

import httpx
import pytest

from tests.calls.test_call_order import KEYS, CallReceiver, assert_in_order, calls, channel
from tests.support.process import ServerProcess, postgres_cluster
from tests.support.waiting import eventually

__all__ = ["calls"]  # the receiver fixture

D = "order.example.com"
pytestmark = [pytest.mark.slow, pytest.mark.postgres]
#: Short leases, so a killed process's deliveries are claimed again soon; no breaker: the tests are about order.
ENV = {"SWITCHHOOK_LEASE_S": "2", "SWITCHHOOK_BREAKER_FAILURES": "0"}


def ordered_hook(receiver: CallReceiver) -> dict[str, object]:
    return {
        "event": KEYS,
        "enable": True,
        "order": "call",
        "retries": 10,
        "delay": 0.05,
        "action": {"type": "web", "method": "POST", "url": f"http://127.0.0.1:{receiver.port}/calls"},
    }


async def delivered_by(worker: ServerProcess) -> float:
    """`switchhook_deliveries_total{outcome="delivered"}` of one worker process (0 when it delivered none)."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(worker.url + "/metrics")).text
    match = re.search(r'^switchhook_deliveries_total\{outcome="delivered"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_two_workers_never_overlap_a_call_and_keep_its_order(tmp_path: Path, calls: CallReceiver) -> None:
    roles = {"api": ("--api",), "worker1": ("--worker",), "worker2": ("--worker",)}
    async with postgres_cluster(tmp_path, D, roles, ENV) as cluster, cluster.client("api") as client:
        created = await client.post("/api/v2/hooks", json=ordered_hook(calls))
        assert created.status_code == 200, created.text
        names = [f"call-{n}" for n in range(40)]
        for n, call in enumerate(names[:12]):
            calls.fails[(call, KEYS[n % 3])] = 2
        events = [channel(name, call, order) for call in names for order, name in enumerate(KEYS)]
        random.Random(3).shuffle(events)
        response = await client.post("/api/v2/events", json=events)  # all waiting together, in the store
        assert response.status_code == 202, response.text
        await eventually(
            lambda: all(len(calls.delivered(call)) == 3 for call in names),
            "every call delivered",
            timeout_s=60,
            details=cluster.logs,
        )
        assert calls.overlaps == []
        for call in names:
            assert_in_order(calls, call)
        by_worker = [await delivered_by(cluster[name]) for name in ("worker1", "worker2")]
        assert all(count > 0 for count in by_worker), by_worker  # both workers took part


async def test_a_sigkill_mid_call_and_a_restart_keep_its_order_and_numbers(tmp_path: Path, calls: CallReceiver) -> None:
    async with postgres_cluster(tmp_path, D, {"one": ()}, ENV) as cluster:
        async with cluster.client("one") as client:
            created = await client.post("/api/v2/hooks", json={**ordered_hook(calls), "delay": 0.5})
            assert created.status_code == 200, created.text
            calls.fails[("killed", KEYS[1])] = 3  # its ANSWER fails: the process dies during the retries
            events = [channel(name, "killed", order) for order, name in enumerate(KEYS)]
            response = await client.post("/api/v2/events", json=events[::-1])  # accepted in reverse
            assert response.status_code == 202, response.text
            await eventually(lambda: len(calls.of("killed")) >= 2, "its create delivered and its answer tried")
        await cluster["one"].kill_async()
        await cluster.start("one")  # leases of the killed process lapse after 2 s; its calls are claimed again
        await eventually(
            lambda: len(calls.delivered("killed")) == 3,
            "the call delivered after the restart",
            timeout_s=30,
            details=cluster.logs,
        )
        assert calls.overlaps == []
        assert_in_order(calls, "killed")


async def test_a_fresh_event_of_a_call_waits_for_its_older_ones_left_by_a_killed_process(
    tmp_path: Path, calls: CallReceiver
) -> None:
    async with postgres_cluster(tmp_path, D, {"one": ()}, ENV) as cluster:
        async with cluster.client("one") as client:
            created = await client.post("/api/v2/hooks", json={**ordered_hook(calls), "delay": 0.5})
            assert created.status_code == 200, created.text
            calls.fails[("fresh", KEYS[1])] = 3
            response = await client.post(
                "/api/v2/events", json=[channel(n, "fresh", o) for o, n in enumerate(KEYS[:2])]
            )
            assert response.status_code == 202, response.text
            await eventually(lambda: len(calls.of("fresh")) >= 2, "its create delivered and its answer tried")
        await cluster["one"].kill_async()
        await cluster.start("one")
        async with cluster.client("one") as client:  # the answer is still leased to the dead process
            response = await client.post("/api/v2/events", json=[channel(KEYS[2], "fresh", 2)])
            assert response.status_code == 202, response.text
        await eventually(
            lambda: len(calls.delivered("fresh")) == 3,
            "the call delivered after the restart",
            timeout_s=30,
            details=cluster.logs,
        )
        assert calls.overlaps == []
        assert_in_order(calls, "fresh")  # the hangup, accepted by the fresh process, waited for the answer
