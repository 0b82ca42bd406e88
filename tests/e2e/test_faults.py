"""Faults under a steady flow: RabbitMQ restarted, PostgreSQL restarted, a worker SIGKILLed.

Afterwards every accepted event must have been delivered (lost = 0), duplicates are counted, reported and
capped (at-least-once: only the killed process's requests in flight may go out twice), every duplicate
carries the same `webhook-id`, and nobody restarted anything by hand. Each fault waits until the flow has
visibly resumed since the last one, so the test cannot pass on a flow that stopped (zero events accepted).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import uuid
from collections import defaultdict
from pathlib import Path

import aio_pika
import pytest

from switchhook.ingest.amqp import routing_key_for
from tests.support.postgres import drop_schema, new_schema, require_postgres
from tests.support.process import ServerProcess, domain_token_async
from tests.support.receiver import Receiver
from tests.support.services import require_amqp
from tests.support.tap import open_publisher, until_publish
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

DOMAIN = "faults.example"
RATE_PER_S = 40
BETWEEN_FAULTS = 80  # events confirmed by the broker before the next fault (about 2 s of flow)
PER_HOOK_CAP = 32  # SWITCHHOOK_MAX_IN_FLIGHT_PER_HOOK's default: what the killed process can have in flight
SECRET = "whsec_" + base64.b64encode(b"faults-signing-key-0123456789ab").decode()


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def pg_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


async def both_see(servers: list[ServerProcess], outage: str) -> bool:
    """Whether every server's /health reports the outage (`amqp` or `database`) already."""
    for server in servers:
        report = await server.health()
        if outage == "amqp" and report.get("amqp", {}).get("state") == "connected":
            return False
        if outage == "database" and report["database"]["ok"]:
            return False
    return True


async def restart_rabbitmq(servers: list[ServerProcess]) -> None:
    await asyncio.to_thread(run, "rabbitmqctl", "stop_app")
    try:  # down until every server has noticed
        await eventually(lambda: both_see(servers, "amqp"), "the servers to notice RabbitMQ is down", 30)
    finally:  # whatever happens, the machine's broker is left running
        await asyncio.to_thread(run, "rabbitmqctl", "start_app")


async def restart_postgres(servers: list[ServerProcess]) -> None:
    version = pg_version()
    await asyncio.to_thread(run, "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast")
    try:  # down until every server has noticed
        await eventually(lambda: both_see(servers, "database"), "the servers to notice PostgreSQL is down", 30)
    finally:  # whatever happens, the machine's database is left running
        await asyncio.to_thread(run, "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start")


def channel_create(unique_id: str) -> dict[str, str]:
    return {
        "Event-Name": "CHANNEL_CREATE",
        "Unique-ID": unique_id,
        "variable_domain_name": DOMAIN,
        "FreeSWITCH-Hostname": "fs1",
        "Channel-Presence-ID": f"100@{DOMAIN}",
    }


async def publish_steadily(url: str, exchange: str, confirmed: list[str], stop: asyncio.Event) -> None:
    """mod_amqp-like publisher that keeps going through broker restarts; appends each confirmed Unique-ID."""
    n = 0
    connection = None
    while not stop.is_set():
        try:
            if connection is None or connection.is_closed:
                connection = await aio_pika.connect(url, timeout=2)
                channel = await connection.channel(publisher_confirms=True)
                target = await channel.get_exchange(exchange, ensure=False)
            unique_id = f"call-{n}"
            event = channel_create(unique_id)
            message = aio_pika.Message(
                json.dumps(event).encode(), content_type="text/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            await asyncio.wait_for(target.publish(message, routing_key=routing_key_for(event)), 5)
            confirmed.append(unique_id)
            n += 1
            await asyncio.sleep(1 / RATE_PER_S)  # the flow's pace
        except Exception:
            n += 1
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
            connection = None
            await asyncio.sleep(0.3)  # reconnect backoff while the broker is away
    if connection is not None:
        await connection.close()


async def bound(url: str, exchange: str) -> None:
    """Until an event like the flow's is routed to the servers' queue (their binding for the hook exists)."""
    connection, channel = await open_publisher(url)
    try:
        target = await channel.get_exchange(exchange, ensure=False)
        probe = {"Event-Name": "CHANNEL_CREATE", "FreeSWITCH-Hostname": "fs1"}  # no domain: matches no hook
        message = aio_pika.Message(json.dumps(probe).encode(), content_type="text/json")
        await until_publish(lambda: target.publish(message, routing_key_for(probe), mandatory=True), True, 10)
    finally:
        await connection.close()


async def test_restarts_and_a_killed_worker_lose_nothing(receiver: Receiver, tmp_path: Path) -> None:
    dsn = await require_postgres()
    amqp = require_amqp()
    schema, tag = new_schema(), uuid.uuid4().hex[:8]
    env = {
        "SWITCHHOOK_DATABASE_URL": dsn,
        "SWITCHHOOK_DATABASE_SCHEMA": schema,
        "SWITCHHOOK_LEASE_S": "3",
        "SWITCHHOOK_AMQP_URL": amqp,
        "SWITCHHOOK_AMQP_QUEUE": f"test.{tag}.q",
        "SWITCHHOOK_AMQP_EVENTS_EXCHANGE": f"test.{tag}.TAP.Events",
        "SWITCHHOOK_AMQP_CC_EXCHANGE": f"test.{tag}.CC",
    }
    token = await domain_token_async(env, DOMAIN)
    first = ServerProcess(env, tmp_path, name="one")
    second = ServerProcess(env, tmp_path, name="two")
    await asyncio.gather(first.start_async(), second.start_async())
    servers = [first, second]

    def logs() -> str:
        return "\n".join(f"--- {s.log_path.name}\n{s.log()[-3000:]}" for s in (first, second))

    confirmed: list[str] = []
    stop = asyncio.Event()
    publisher: asyncio.Task[None] | None = None
    try:
        hook = {
            "event": "CHANNEL_CREATE",
            "enable": True,
            "retries": 20,
            "delay": 0.5,
            "secret": SECRET,
            "action": {"type": "web", "method": "POST", "url": receiver.url("/hook")},
        }
        created = await first.request_async("POST", "/api/v2/hooks", json=hook, headers={"X-Access-Token": token})
        assert created.status_code == 200, created.text

        async def consuming(server: ServerProcess) -> bool:
            return bool((await server.health()).get("amqp", {}).get("state") == "connected")

        for server in servers:  # both consumers connected and the queue bound before the flow starts
            await eventually(lambda server=server: consuming(server), f"{server.name} consuming", 10, logs)
        await bound(amqp, env["SWITCHHOOK_AMQP_EVENTS_EXCHANGE"])

        publisher = asyncio.create_task(publish_steadily(amqp, env["SWITCHHOOK_AMQP_EVENTS_EXCHANGE"], confirmed, stop))

        async def flow_resumed(since: int) -> None:
            await eventually(
                lambda: len(confirmed) >= since + BETWEEN_FAULTS, "the flow to resume after a fault", 60, logs
            )

        await flow_resumed(0)
        await restart_rabbitmq(servers)
        await flow_resumed(len(confirmed))
        await restart_postgres(servers)
        await flow_resumed(len(confirmed))
        await first.kill_async()
        servers = [second]
        await flow_resumed(len(confirmed))
        stop.set()
        await publisher

        expected = set(confirmed)

        def delivered() -> set[str]:
            return {r.json()["data"]["Unique-ID"] for r in receiver.on("/hook")}

        await eventually(
            lambda: expected <= delivered(),
            "every accepted event delivered",
            90,
            lambda: f"missing {len(expected - delivered())}: {sorted(expected - delivered())[:10]}\n{logs()}",
            interval_s=0.5,
        )
        by_id: dict[str, set[str]] = defaultdict(set)
        counts: dict[str, int] = defaultdict(int)
        for request in receiver.on("/hook"):
            unique_id = request.json()["data"]["Unique-ID"]
            by_id[unique_id].add(request.headers["webhook-id"])
            counts[unique_id] += 1
        lost = expected - set(by_id)
        duplicates = sum(n - 1 for n in counts.values())
        print(
            f"\nfaults: {len(expected)} events accepted, 3 faults injected (RabbitMQ restart, PostgreSQL "
            f"restart, worker SIGKILL), lost {len(lost)}, duplicates {duplicates}"
        )
        assert len(expected) >= 4 * BETWEEN_FAULTS  # the flow ran through every fault
        assert not lost, f"lost {len(lost)} of {len(expected)}: {sorted(lost)[:10]}"
        # At-least-once: a duplicate is a request the killed process sent and could not record.
        assert duplicates <= PER_HOOK_CAP, f"{duplicates} duplicates"
        assert all(len(ids) == 1 for ids in by_id.values()), "a duplicate carried another webhook-id"

        async def healthy() -> bool:
            return bool((await second.health())["status"] == "ok")

        await eventually(healthy, "the survivor healthy, with no manual step", 30, logs)
    finally:
        stop.set()
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher
        await asyncio.gather(first.stop_async(), second.stop_async())
        await drop_schema(dsn, schema)
        connection = await aio_pika.connect(amqp)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(env["SWITCHHOOK_AMQP_QUEUE"])
            for name in (env["SWITCHHOOK_AMQP_EVENTS_EXCHANGE"], env["SWITCHHOOK_AMQP_CC_EXCHANGE"]):
                await channel.exchange_delete(name)
