"""A test's own TAP exchanges and queue on the real RabbitMQ, with a publisher that acts as mod_amqp.

It publishes as the FreeSWITCH 1.10.12 captures (shared fixtures `freeswitch-1.10.12/amqp/*.json`) show
mod_amqp does: content type `text/json`, a timestamp in seconds, one header `x_Liquid_MessageSentTimeStamp`
(an AMQP timestamp) and no delivery mode at all (not persistent), unless a test asks for persistence.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection
from aio_pika.exceptions import PublishError

from switchhook.core.events import Event
from switchhook.ingest.amqp import AmqpSource, routing_key_for
from switchhook.ingest.routing import STOCK_LAYOUT, Layout
from tests.support.app import Harness, make_settings, running
from tests.support.fixtures import FIXTURES_DIR
from tests.support.services import rabbitmqctl, require_amqp
from tests.support.waiting import eventually

CAPTURES_DIR = FIXTURES_DIR / "freeswitch-1.10.12"

# Routed like a real event but matching no hook (no domain): it only proves a binding exists.
PROBE = {"Event-Name": "SWITCHHOOK_PROBE"}


@dataclass
class Tap:
    """Per-test queue and exchanges (names prefixed, removed afterwards) and a confirming publisher."""

    url: str
    queue: str
    events_exchange: str
    cc_exchange: str
    connection: AbstractConnection
    channel: AbstractChannel
    keys: set[str] = field(default_factory=set)  # the event keys a bare AmqpSource of this tap binds
    layout: Layout = STOCK_LAYOUT  # how publish() lays out a routing key it is not given (as the source binds)

    def source(self, sink: Any, **kwargs: Any) -> AmqpSource:
        kwargs.setdefault("layout", self.layout)
        return AmqpSource(
            self.url,
            sink,
            lambda: self.keys,
            queue_name=self.queue,
            events_exchange=self.events_exchange,
            cc_exchange=self.cc_exchange,
            **kwargs,
        )

    def exchange_of(self, captured: str) -> str:
        """This test's exchange standing for a captured one (`TAP.Events`, `TAP.CC-Events`)."""
        return {"TAP.Events": self.events_exchange, "TAP.CC-Events": self.cc_exchange}[captured]

    async def publish_capture(self, capture: Capture, *, body: bytes | None = None) -> None:
        """Publish a captured mod_amqp message as it was: its exchange, routing key, properties and body."""
        await self.publish_raw(
            body if body is not None else capture.body_raw,
            capture.routing_key,
            exchange=self.exchange_of(capture.exchange),
            timestamp_s=capture.timestamp_s,
        )

    async def publish_raw(
        self, body: bytes, routing_key: str, *, exchange: str | None = None, timestamp_s: int | None = None
    ) -> None:
        """Publish exactly as mod_amqp does, no delivery mode included; PublishError if nothing routes it.

        aio-pika always writes a delivery mode, so this goes through its underlying aiormq channel.
        """
        sent = datetime.datetime.fromtimestamp(time.time() if timestamp_s is None else timestamp_s, datetime.UTC)
        properties = aiormq.spec.Basic.Properties(
            content_type="text/json",
            timestamp=sent.replace(microsecond=0),
            headers={"x_Liquid_MessageSentTimeStamp": sent},
        )
        channel = await self.channel.get_underlay_channel()
        await channel.basic_publish(
            body,
            exchange=exchange or self.events_exchange,
            routing_key=routing_key,
            properties=properties,
            mandatory=True,
        )

    async def publish(
        self,
        body: bytes | Event,
        routing_key: str | None = None,
        *,
        exchange: str | None = None,
        persistent: bool = False,
        channel: AbstractChannel | None = None,
    ) -> None:
        """Publish as mod_amqp does (text/json, no delivery mode unless `persistent`); PublishError if nothing
        routes it. The routing key defaults to the event's under this tap's layout."""
        if not isinstance(body, bytes):
            routing_key = routing_key if routing_key is not None else routing_key_for(body, self.layout)
            body = json.dumps(body).encode()
        key = routing_key if routing_key is not None else routing_key_for(json.loads(body), self.layout)
        if not persistent and channel is None:
            await self.publish_raw(body, key, exchange=exchange)
            return
        target = await (channel or self.channel).get_exchange(exchange or self.events_exchange, ensure=False)
        mode = aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT
        await target.publish(aio_pika.Message(body, content_type="text/json", delivery_mode=mode), key, mandatory=True)

    async def wait_routed(self, routing_key: str, timeout_s: float = 10.0) -> None:
        """Until a probe with this routing key reaches the queue (the binding for its event key exists)."""
        await until_publish(lambda: self.publish(json.dumps(PROBE).encode(), routing_key), True, timeout_s)

    async def wait_unrouted(self, routing_key: str, timeout_s: float = 10.0) -> None:
        await until_publish(lambda: self.publish(json.dumps(PROBE).encode(), routing_key), False, timeout_s)

    async def ready_count(self) -> int:
        """Messages waiting in the queue (not counting those delivered and unacked)."""
        async with await aio_pika.connect(self.url) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.queue, passive=True)
            return queue.declaration_result.message_count or 0

    async def counts(self) -> tuple[int, int]:
        """(ready, unacknowledged) as the broker's queue process reports them."""
        columns = ("name", "messages_ready", "messages_unacknowledged")
        out = await rabbitmqctl("list_queues", "-q", "--no-table-headers", *columns)
        for line in out.splitlines():
            name, ready, unacked = line.split("\t")
            if name == self.queue:
                return int(ready), int(unacked)
        raise AssertionError(f"queue {self.queue} not found")


@dataclass(frozen=True)
class Capture:
    """One message mod_amqp published in the FreeSWITCH 1.10.12 captures."""

    name: str
    exchange: str
    routing_key: str
    timestamp_s: int
    body_raw: bytes

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body_raw)
        return parsed


def load_capture(name: str) -> Capture:
    """`amqp/<name>` of the live captures (`amqp-default-*` stock profile, `amqp-webitel-*` Webitel's)."""
    data = json.loads((CAPTURES_DIR / "amqp" / name).read_text(encoding="utf-8"))
    return Capture(
        name, data["exchange"], data["routing_key"], data["properties"]["timestamp"], data["body_raw"].encode()
    )


def captures(profile: str) -> list[Capture]:
    """Every captured message of a profile (`default` or `webitel`), in the order they were received."""
    return [load_capture(path.name) for path in sorted((CAPTURES_DIR / "amqp").glob(f"amqp-{profile}-*.json"))]


async def until_publish(publish: Callable[[], Any], routed: bool, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await publish()
            outcome = True
        except PublishError:
            outcome = False
        if outcome == routed:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the probe was {'never' if routed else 'still'} routed after {timeout_s} s")
        await asyncio.sleep(0.05)


async def open_publisher(url: str) -> tuple[AbstractConnection, AbstractChannel]:
    connection = await aio_pika.connect(url, timeout=5)
    # Confirms + returns: a publish completes once the broker routed it, and raises if nothing did.
    return connection, await connection.channel(publisher_confirms=True, on_return_raises=True)


@asynccontextmanager
async def own_tap() -> AsyncIterator[Tap]:
    """This test's exchanges and queue name on the real broker; all removed afterwards."""
    url = require_amqp()
    prefix = f"test.{uuid.uuid4().hex[:12]}"
    connection, channel = await open_publisher(url)
    tap = Tap(
        url, f"{prefix}.switchhook.events", f"{prefix}.TAP.Events", f"{prefix}.TAP.CC-Events", connection, channel
    )
    for name in (tap.events_exchange, tap.cc_exchange):
        await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    try:
        yield tap
    finally:
        with suppress(Exception):
            await tap.connection.close()
        async with await aio_pika.connect(url, timeout=10) as cleanup:
            cleanup_channel = await cleanup.channel()
            await cleanup_channel.queue_delete(tap.queue)
            for name in (tap.events_exchange, tap.cc_exchange):
                await cleanup_channel.exchange_delete(name)


@asynccontextmanager
async def ingesting(tap: Tap, tmp_path: Path, **overrides: Any) -> AsyncIterator[Harness]:
    """switchhook (SQLite) consuming this test's queue and exchanges, once its AMQP source is connected."""
    settings = make_settings(
        tmp_path,
        amqp_url=tap.url,
        amqp_queue=tap.queue,
        amqp_events_exchange=tap.events_exchange,
        amqp_cc_exchange=tap.cc_exchange,
        **overrides,
    )
    async with running(settings) as app:

        async def connected() -> bool:
            response = await app.client.get("/health")
            return bool(response.json()["amqp"]["state"] == "connected")

        await eventually(connected, "the AMQP source to connect", 10)
        yield app
