"""Faults under a steady flow: RabbitMQ restarted, PostgreSQL restarted, a worker SIGKILLed.

Afterwards every accepted event must have been delivered (lost = 0), duplicates are counted and reported
(at-least-once), every duplicate carries the same `webhook-id`, and nobody restarted anything by hand.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import time
import uuid
from collections import defaultdict
from pathlib import Path

import aio_pika
import pytest

from switchhook.ingest.amqp import routing_key_for
from tests.support.postgres import drop_schema, new_schema, require_postgres
from tests.support.process import ServerProcess, domain_token
from tests.support.receiver import Receiver
from tests.support.services import require_amqp

pytestmark = pytest.mark.slow

DOMAIN = "faults.example"
RATE_PER_S = 40
FLOW_S = 14.0
SECRET = "whsec_" + base64.b64encode(b"faults-signing-key-0123456789ab").decode()


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def pg_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


async def restart_rabbitmq() -> None:
    await asyncio.to_thread(run, "rabbitmqctl", "stop_app")
    try:
        await asyncio.sleep(1.0)
    finally:  # whatever happens, the machine's broker is left running
        await asyncio.to_thread(run, "rabbitmqctl", "start_app")


async def restart_postgres() -> None:
    version = pg_version()
    await asyncio.to_thread(run, "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast")
    try:
        await asyncio.sleep(1.0)
    finally:  # whatever happens, the machine's database is left running
        await asyncio.to_thread(run, "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start")


async def publish_steadily(url: str, exchange: str, stop_at: float) -> list[str]:
    """mod_amqp-like publisher that keeps going through broker restarts; returns the confirmed Unique-IDs."""
    confirmed: list[str] = []
    n = 0
    connection = None
    while time.monotonic() < stop_at:
        try:
            if connection is None or connection.is_closed:
                connection = await aio_pika.connect(url, timeout=2)
                channel = await connection.channel(publisher_confirms=True)
                target = await channel.get_exchange(exchange, ensure=False)
            unique_id = f"call-{n}"
            event = {
                "Event-Name": "CHANNEL_CREATE",
                "Unique-ID": unique_id,
                "variable_domain_name": DOMAIN,
                "FreeSWITCH-Hostname": "fs1",
                "Channel-Presence-ID": f"100@{DOMAIN}",
            }
            message = aio_pika.Message(
                __import__("json").dumps(event).encode(),
                content_type="text/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await asyncio.wait_for(target.publish(message, routing_key=routing_key_for(event)), 5)
            confirmed.append(unique_id)
            n += 1
            await asyncio.sleep(1 / RATE_PER_S)
        except Exception:
            n += 1
            if connection is not None:
                with __import__("contextlib").suppress(Exception):
                    await connection.close()
            connection = None
            await asyncio.sleep(0.3)
    if connection is not None:
        await connection.close()
    return confirmed


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
    token = domain_token(env, DOMAIN)
    first = ServerProcess(env, tmp_path, name="one").start()
    second = ServerProcess(env, tmp_path, name="two").start()
    try:
        hook = {
            "event": "CHANNEL_CREATE",
            "enable": True,
            "retries": 20,
            "delay": 0.5,
            "secret": SECRET,
            "action": {"type": "web", "method": "POST", "url": receiver.url("/hook")},
        }
        created = first.request("POST", "/api/v2/hooks", json=hook, headers={"X-Access-Token": token})
        assert created.status_code == 200, created.text
        for server in (first, second):  # both consumers bound before the flow starts
            for _ in range(100):
                health = server.request("GET", "/health").json()
                if health.get("amqp", {}).get("state") == "connected":
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)

        stop_at = time.monotonic() + FLOW_S
        publisher = asyncio.create_task(publish_steadily(amqp, env["SWITCHHOOK_AMQP_EVENTS_EXCHANGE"], stop_at))
        await asyncio.sleep(3)
        await restart_rabbitmq()
        await asyncio.sleep(2)
        await restart_postgres()
        await asyncio.sleep(2)
        first.kill()
        accepted = await publisher

        expected = set(accepted)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            got = {r.json()["data"]["Unique-ID"] for r in receiver.on("/hook")}
            if expected <= got:
                break
            await asyncio.sleep(0.5)
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
        assert not lost, f"lost {len(lost)} of {len(expected)}: {sorted(lost)[:10]}"
        assert all(len(ids) == 1 for ids in by_id.values()), "a duplicate carried another webhook-id"
        assert second.request("GET", "/health").json()["status"] == "ok"  # recovered by itself
    finally:
        first.stop()
        second.stop()
        await drop_schema(dsn, schema)
        connection = await aio_pika.connect(amqp)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(env["SWITCHHOOK_AMQP_QUEUE"])
            for name in (env["SWITCHHOOK_AMQP_EVENTS_EXCHANGE"], env["SWITCHHOOK_AMQP_CC_EXCHANGE"]):
                await channel.exchange_delete(name)
