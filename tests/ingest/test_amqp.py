"""AmqpSource against the real RabbitMQ: routing keys, bindings per hooked key, batching, acks, recovery."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest
from aio_pika.exceptions import PublishError

from switchhook.core.errors import Unavailable
from switchhook.core.events import Event, decode_json_event, event_key
from switchhook.ingest.amqp import AmqpSource, routing_key_for
from switchhook.ingest.routing import STOCK_LAYOUT, WEBITEL_CC_LAYOUT, WEBITEL_LAYOUT, Layout, bindings_for
from tests.support.fixtures import fixture_bytes, load_fixture_frames
from tests.support.services import need_rabbitmqctl, rabbitmqctl, wait_until_broker_answers
from tests.support.tap import Capture, Tap, captures, load_capture, own_tap

pytestmark = pytest.mark.rabbitmq

CREATE = "amqp-json-CHANNEL_CREATE-kageds-mod_amqp-trace.json"
CALLSTATE = "json-CHANNEL_CALLSTATE-webitel-switch-test-server.json"
DESTROY = "esl-json-framed-CHANNEL_DESTROY-lua-lluv-esl.txt"
DIALER_MEMBER_END = {
    # What Webitel's dialer publishes itself: no FreeSWITCH common headers (freeswitch-events.md §6).
    "Event-Name": "CUSTOM",
    "Event-Subclass": "engine::dialer_member_end",
    "variable_domain_name": "demo.webitel.com",
    "dlr_id": "598035b7a7ec15000c40926e",
}


def fixture_body(name: str) -> bytes:
    """The JSON body as mod_amqp would carry it (the framed ESL file: the body after its frame headers)."""
    if name.startswith("esl-json-framed-"):
        return load_fixture_frames(name)[0].body
    return fixture_bytes(name)


def fixture_with_id(name: str, unique_id: str) -> bytes:
    event = json.loads(fixture_body(name))
    event["Unique-ID"] = unique_id
    return json.dumps(event).encode()


def unique_ids(events: list[Event]) -> set[str]:
    return {e.get("Unique-ID", "") for e in events}


async def eventually(predicate: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll `predicate` every 20 ms until it holds, failing after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


class Recorder:
    """A sink that keeps every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    async def __call__(self, events: list[Event]) -> None:
        self.batches.append(events)

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]


@pytest.fixture
async def broker() -> AsyncIterator[Tap]:
    async with own_tap() as tap:
        yield tap


@asynccontextmanager
async def running(source: AmqpSource) -> AsyncIterator[AmqpSource]:
    task = asyncio.create_task(source.run())
    try:
        await eventually(lambda: source.state == "connected" or task.done(), "the source to connect")
        if task.done():
            task.result()
        yield source
    finally:
        await source.stop()
        async with asyncio.timeout(10):
            await task
        assert source.state == "disconnected"


# -- routing keys (pure; the layouts themselves are tested in test_routing.py) ---------------------------


def test_routing_key_for_real_events_under_webitels_layout() -> None:
    # The first word is the literal `#FreeSWITCH-Hostname` of Webitel's format_fields, not the host name.
    create = decode_json_event(fixture_body(CREATE))
    assert routing_key_for(create, WEBITEL_LAYOUT) == (
        "FreeSWITCH-Hostname.CHANNEL_CREATE..1000%404f5549%2Esip%2E2600hz%2Ecom."
    )
    destroy = decode_json_event(fixture_body(DESTROY))
    assert routing_key_for(destroy, WEBITEL_LAYOUT) == "FreeSWITCH-Hostname.CHANNEL_DESTROY..."
    # FreeSWITCH's stock layout by default: #FreeSWITCH,FreeSWITCH-Hostname,Event-Name,Event-Subclass,Unique-ID.
    assert routing_key_for(destroy) == "FreeSWITCH.alexey-PC.CHANNEL_DESTROY.."  # no Unique-ID: an empty word


# -- against the real broker ---------------------------------------------------------------------------


async def test_only_hooked_keys_are_routed_to_the_queue(broker: Tap) -> None:
    broker.keys = {"CHANNEL_CREATE", "CHANNEL_DESTROY"}
    sink = Recorder()
    async with running(broker.source(sink)):
        await broker.publish(fixture_body(CREATE))
        with pytest.raises(PublishError):  # returned by the broker: no binding routes it anywhere
            await broker.publish(fixture_body(CALLSTATE))
        await broker.publish(fixture_body(DESTROY))
        await eventually(lambda: len(sink.events) == 2, "both hooked events")
    assert sink.events == [decode_json_event(fixture_body(CREATE)), decode_json_event(fixture_body(DESTROY))]
    assert await broker.ready_count() == 0


async def test_custom_subclass_is_bound_on_both_exchanges_under_webitels_layouts(broker: Tap) -> None:
    broker.keys = {"CUSTOM->engine::dialer_member_end"}
    sink = Recorder()
    async with running(broker.source(sink, layout=WEBITEL_LAYOUT, cc_layout=WEBITEL_CC_LAYOUT)):
        # RabbitMQ's `*` matches the dialer's empty words: `.CUSTOM.engine%3A%3Adialer_member_end..`.
        from_dialer = json.dumps({**DIALER_MEMBER_END, "Unique-ID": "dialer"}).encode()
        await broker.publish(from_dialer, ".CUSTOM.engine%3A%3Adialer_member_end..")
        # The callcenter profile's words: #FreeSWITCH-Hostname,Event-Subclass,CC-Action,CC-Queue,Unique-ID.
        from_cc = json.dumps({**DIALER_MEMBER_END, "Unique-ID": "cc"}).encode()
        await broker.publish(
            from_cc, "FreeSWITCH-Hostname.engine%3A%3Adialer_member_end.end.q1.cc", exchange=broker.cc_exchange
        )
        with pytest.raises(PublishError):
            await broker.publish(b"{}", ".CUSTOM.engine%3A%3Acallback_member_add..")
        with pytest.raises(PublishError):
            await broker.publish(
                b"{}", "FreeSWITCH-Hostname.engine%3A%3Acallback_member_add.x.y.z", exchange=broker.cc_exchange
            )
        await eventually(lambda: len(sink.events) == 2, "the event from both exchanges")
    assert unique_ids(sink.events) == {"dialer", "cc"}


async def test_refresh_bindings_follows_key_changes_without_restart(broker: Tap) -> None:
    broker.keys = {"CHANNEL_CREATE"}
    sink = Recorder()
    source = broker.source(sink)
    await source.refresh_bindings()  # before run(): nothing to do yet, and no error
    async with running(source):
        await broker.publish(fixture_with_id(CREATE, "create-1"))
        with pytest.raises(PublishError):
            await broker.publish(fixture_with_id(CALLSTATE, "callstate-1"))
        await eventually(lambda: len(sink.events) == 1, "the hooked CHANNEL_CREATE")

        broker.keys = {"CHANNEL_CALLSTATE"}
        await source.refresh_bindings()
        await source.refresh_bindings()  # idempotent
        with pytest.raises(PublishError):
            await broker.publish(fixture_with_id(CREATE, "create-2"))
        await broker.publish(fixture_with_id(CALLSTATE, "callstate-2"))
        await eventually(lambda: len(sink.events) == 2, "the newly hooked CHANNEL_CALLSTATE")
    assert [e["Unique-ID"] for e in sink.events] == ["create-1", "callstate-2"]


async def test_poison_messages_are_rejected_and_never_block_the_batch(
    broker: Tap, caplog: pytest.LogCaptureFixture
) -> None:
    broker.keys = {"CHANNEL_CREATE"}
    key = routing_key_for(decode_json_event(fixture_body(CREATE)))
    sink = Recorder()
    caplog.set_level(logging.WARNING, logger="switchhook.ingest.amqp")
    # A long linger puts the poison and the good messages into the same batch.
    async with running(broker.source(sink, batch_linger_s=0.3)) as source:
        for poison in (b"not json at all", b"x" * 1000, b"[1, 2, 3]", b'{"Unique-ID": "no-event-name"}'):
            await broker.publish(poison, key)
        await broker.publish(fixture_with_id(CREATE, "good-1"))
        await broker.publish(fixture_with_id(CREATE, "good-2"))
        await eventually(lambda: len(sink.events) == 2, "the good messages after the poison")
        assert source.messages_rejected == 4
        assert source.events_received == 2
    assert [e["Unique-ID"] for e in sink.events] == ["good-1", "good-2"]
    assert await broker.ready_count() == 0  # rejected without requeue, good ones acked
    rejections = [r.getMessage() for r in caplog.records if "rejecting message" in r.getMessage()]
    assert len(rejections) == 4
    assert not any("x" * 201 in message for message in rejections)


async def test_acks_only_after_the_sink_returns(broker: Tap) -> None:
    need_rabbitmqctl()
    broker.keys = {"CHANNEL_CREATE"}
    gate = asyncio.Event()
    held: list[Event] = []

    async def stuck_sink(events: list[Event]) -> None:
        held.extend(events)
        await gate.wait()

    ids = {"ack-1", "ack-2", "ack-3"}
    async with running(broker.source(stuck_sink, batch_linger_s=0.2, stop_timeout_s=0.2)):
        for unique_id in sorted(ids):
            await broker.publish(fixture_with_id(CREATE, unique_id))
        await eventually(lambda: len(held) == 3, "the sink to hold the batch")
        assert await broker.counts() == (0, 3)  # delivered, none acked while the sink works
    # Stopped while the sink was stuck: nothing was acked, so the broker requeued the whole batch.
    assert await broker.ready_count() == 3

    sink = Recorder()
    async with running(broker.source(sink)):
        await eventually(lambda: len(sink.events) == 3, "the redelivered batch")
    assert unique_ids(sink.events) == ids
    assert await broker.counts() == (0, 0)


async def test_sink_failure_requeues_the_batch_until_it_is_stored(
    broker: Tap, caplog: pytest.LogCaptureFixture
) -> None:
    broker.keys = {"CHANNEL_CREATE"}
    stored: list[Event] = []
    calls = 0

    async def flaky_sink(events: list[Event]) -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise Unavailable("database unavailable: ConnectionRefusedError")
        stored.extend(events)

    ids = {"retry-1", "retry-2", "retry-3"}
    async with running(broker.source(flaky_sink, batch_linger_s=0.2)) as source:
        for unique_id in sorted(ids):
            await broker.publish(fixture_with_id(CREATE, unique_id))
        await eventually(lambda: unique_ids(stored) >= ids, "the batch to be stored after two failures")
        assert source.sink_failures == 2
    assert await broker.ready_count() == 0
    # The store's outage is one warning line each time, with no traceback to read as a bug.
    failures = [r for r in caplog.records if "could not store a batch" in r.getMessage()]
    assert len(failures) == 2
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in failures)
    assert "database unavailable" in failures[0].getMessage()


async def test_a_sink_that_raises_a_bug_is_logged_with_its_traceback_and_the_batch_requeued(
    broker: Tap, caplog: pytest.LogCaptureFixture
) -> None:
    broker.keys = {"CHANNEL_CREATE"}
    stored: list[Event] = []

    async def buggy_once(events: list[Event]) -> None:
        if not caplog.records or all("storing a batch" not in r.getMessage() for r in caplog.records):
            raise KeyError("a bug, not an outage")
        stored.extend(events)

    async with running(broker.source(buggy_once)) as source:
        await broker.publish(fixture_with_id(CREATE, "after-a-bug"))
        await eventually(lambda: unique_ids(stored) == {"after-a-bug"}, "the requeued batch stored")
        assert source.counters()["sink_failures"] == 1
    (record,) = [r for r in caplog.records if "storing a batch" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)


async def test_a_bug_while_connecting_is_logged_with_its_redacted_traceback_and_retried(
    broker: Tap, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker.keys = {"CHANNEL_CREATE"}
    source = broker.source(Recorder())
    password = urlsplit(broker.url).password
    assert password
    wanted = source.wanted_bindings

    def buggy_once() -> set[tuple[str, str]]:
        if not any("connecting to RabbitMQ" in r.getMessage() for r in caplog.records):
            raise KeyError(f"a bug, not an outage, echoing {broker.url}")
        return wanted()

    monkeypatch.setattr(source, "wanted_bindings", buggy_once)
    async with running(source):  # connected on the retry
        pass
    (record,) = [r for r in caplog.records if "connecting to RabbitMQ" in r.getMessage()]
    assert record.levelno == logging.ERROR
    text = record.getMessage()
    assert "Traceback" in text
    assert "KeyError: 'a bug, not an outage" in text
    assert "unavailable" not in text
    assert password not in text


async def test_later_bindings_are_restored_when_the_queue_is_recreated(broker: Tap) -> None:
    broker.keys = {"CHANNEL_CREATE"}
    sink = Recorder()
    async with running(broker.source(sink)) as source:
        broker.keys = {"CHANNEL_CREATE", "CHANNEL_CALLSTATE"}
        await source.refresh_bindings()
        # Someone deletes the queue (and its bindings) under the consumer; aio-pika redeclares it
        # with every binding it made, including the one refresh_bindings added after start.
        await broker.channel.queue_delete(broker.queue)

        async def rerouted() -> bool:
            try:
                await broker.publish(fixture_with_id(CALLSTATE, "after"))
            except PublishError:
                return False
            return True

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while not await rerouted():
            assert loop.time() < deadline, "the queue was not recreated with its bindings"
            await asyncio.sleep(0.1)
        await eventually(lambda: "after" in unique_ids(sink.events), "the event through the restored binding")


@pytest.mark.slow
async def test_consumer_resumes_after_broker_restart(broker: Tap) -> None:
    need_rabbitmqctl()
    broker.keys = {"CHANNEL_CREATE"}
    gate = asyncio.Event()
    holding = asyncio.Event()
    stored: list[Event] = []

    async def sink(events: list[Event]) -> None:
        if not gate.is_set():
            # The first batch spans the restart and then fails: only a copy kept by the broker can arrive.
            holding.set()
            await gate.wait()
            raise Unavailable("database unavailable: ConnectionRefusedError")
        stored.extend(events)

    source = broker.source(sink, batch_linger_s=0.1, reconnect_max_s=1.0)
    async with running(source):
        broker.keys.add("CHANNEL_DESTROY")
        await source.refresh_bindings()
        await broker.publish(fixture_with_id(CREATE, "pre-create"), persistent=True)
        await broker.publish(fixture_with_id(DESTROY, "pre-destroy"), persistent=True)
        await eventually(holding.is_set, "the sink to hold the pre-restart batch")

        await rabbitmqctl("stop_app")
        try:
            await eventually(lambda: source.state == "connecting", "the source to notice the outage")
            gate.set()
        finally:
            await rabbitmqctl("start_app")
        connection = await wait_until_broker_answers(broker.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await broker.publish(fixture_with_id(CREATE, "post-create"), channel=channel)
            await broker.publish(fixture_with_id(DESTROY, "post-destroy"), channel=channel)

        wanted = {"pre-create", "pre-destroy", "post-create", "post-destroy"}
        await eventually(lambda: unique_ids(stored) >= wanted, "every event across the restart", 30)
        assert source.state == "connected"
        assert source.reconnects >= 1


async def test_unreachable_broker_is_retried_and_the_password_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    source = AmqpSource(
        "amqp://guest:s3cret-pw@127.0.0.1:1/vh", Recorder(), lambda: {"CHANNEL_CREATE"}, reconnect_max_s=0.2
    )
    task = asyncio.create_task(source.run())
    await eventually(lambda: sum("unavailable" in r.getMessage() for r in caplog.records) >= 2, "two failed attempts")
    states = [source.state]
    await source.refresh_bindings()  # a key change while away is kept for later, not an error
    await source.stop()
    async with asyncio.timeout(5):
        await task
    states.append(source.state)
    assert states == ["connecting", "disconnected"]
    assert "127.0.0.1:1 vhost vh" in caplog.text
    assert "s3cret-pw" not in caplog.text
    # An outage: one warning line per attempt, no traceback.
    outages = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in outages)
    assert all("\n" not in r.getMessage() for r in outages)


# -- live FreeSWITCH 1.10.12 captures, replayed as mod_amqp published them ------------------------------

HOOKED_FROM_CAPTURES = {"CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE", "CUSTOM->callcenter::info"}
ODD_SUBCLASS = "my app::call.end now"  # a space, a dot and colons


def key_of(event: Event) -> str:
    key = event_key(event)
    assert key is not None
    return key


async def publish_or_unrouted(tap: Tap, capture: Capture) -> bool:
    """Publish a capture as it was; False when the broker returned it (no binding routes it)."""
    try:
        await tap.publish_capture(capture)
    except PublishError:
        return False
    return True


@pytest.mark.parametrize(
    ("profile", "layout", "cc_layout"),
    [("default", STOCK_LAYOUT, None), ("webitel", WEBITEL_LAYOUT, WEBITEL_CC_LAYOUT)],
)
async def test_captured_mod_amqp_messages_reach_us_exactly_when_their_key_is_hooked(
    broker: Tap, profile: str, layout: Layout, cc_layout: Layout | None
) -> None:
    """Both FreeSWITCH profiles through the real broker, routing keys exactly as captured: every message of a
    hooked key arrives (in order, body as published), every other one is returned unrouted."""
    broker.keys = set(HOOKED_FROM_CAPTURES)
    messages = captures(profile)
    sink = Recorder()
    source = broker.source(sink, layout=layout, cc_layout=cc_layout)
    async with running(source):
        routed = [m for m in messages if await publish_or_unrouted(broker, m)]
        hooked = [m for m in messages if key_of(m.event) in HOOKED_FROM_CAPTURES]
        assert [m.name for m in routed] == [m.name for m in hooked]
        assert {key_of(m.event) for m in hooked} == HOOKED_FROM_CAPTURES
        await eventually(lambda: len(sink.events) >= len(hooked), "every hooked capture")
        assert sink.events == [decode_json_event(m.body_raw) for m in hooked]
        bindings = {(b["exchange"], b["key"]) for b in source.health()["bindings"]}  # type: ignore[attr-defined]
    expected = {
        (broker.exchange_of(exchange), key)
        for hooked_key in HOOKED_FROM_CAPTURES
        for exchange, key in bindings_for(hooked_key, layout, cc_layout)
    }
    assert bindings == expected


@pytest.mark.parametrize(
    ("layout", "cc_layout"), [(STOCK_LAYOUT, None), (WEBITEL_LAYOUT, WEBITEL_CC_LAYOUT)], ids=["stock", "webitel"]
)
async def test_a_subclass_with_a_space_a_dot_and_colons_is_bound_as_mod_amqp_spells_it(
    broker: Tap, layout: Layout, cc_layout: Layout | None
) -> None:
    broker.keys = {f"CUSTOM->{ODD_SUBCLASS}"}
    template = load_capture("amqp-default-162-CUSTOM-callcenter_info.json").event
    event = {**template, "Event-Subclass": ODD_SUBCLASS}
    sink = Recorder()
    async with running(broker.source(sink, layout=layout, cc_layout=cc_layout)):
        # mod_amqp's own spelling of the word (amqp_util_encode): `my+app%3A%3Acall%2Eend+now`.
        key = layout.routing_key(event)
        assert "my+app%3A%3Acall%2Eend+now" in key.split(".")
        await broker.publish_raw(json.dumps(event).encode(), key)
        published = 1
        if cc_layout is not None:
            await broker.publish_raw(
                json.dumps(event).encode(), cc_layout.routing_key(event), exchange=broker.cc_exchange
            )
            published += 1
        # Webitel's encodeRK spelling of the same subclass (`%20` for a space) is not what mod_amqp publishes.
        with pytest.raises(PublishError):
            await broker.publish_raw(b"{}", key.replace("+", "%20"))
        await eventually(lambda: len(sink.events) == published, "the odd subclass's events")
    assert [key_of(e) for e in sink.events] == [f"CUSTOM->{ODD_SUBCLASS}"] * published


async def test_a_layout_naming_no_event_binds_everything_and_drops_unhooked_keys_in_process(broker: Tap) -> None:
    broker.keys = {"CHANNEL_CREATE"}
    layout = Layout.parse("#FreeSWITCH,FreeSWITCH-Hostname,Unique-ID")
    messages = captures("default")[:20]
    creates = [m for m in messages if key_of(m.event) == "CHANNEL_CREATE"]
    assert creates and len(creates) < len(messages)
    sink = Recorder()
    source = broker.source(sink, layout=layout)
    async with running(source):
        assert source.health()["bindings"] == [{"exchange": broker.events_exchange, "key": "#"}]
        for message in messages:
            await broker.publish_raw(message.body_raw, layout.routing_key(message.event))
        await eventually(lambda: source.events_unhooked == len(messages) - len(creates), "the unhooked ones dropped")
        await eventually(lambda: len(sink.events) == len(creates), "the hooked ones")
        assert [e["Event-Sequence"] for e in sink.events] == [m.event["Event-Sequence"] for m in creates]
    assert await broker.ready_count() == 0
