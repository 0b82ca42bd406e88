"""Ordered hooks (`"order": "call"`, issue 14 item 3) through HTTP with a real receiver: a call's deliveries arrive one
at a time, in event order, numbered 1, 2, 3 by X-Call-Sequence (a retry keeps its number); a failing call holds back
only itself; events accepted out of order are sent in event order."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.app import Harness, running_on
from tests.support.waiting import eventually

D = "order.example.com"
KEYS = ["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"]
TS = 1_700_000_000_000_000  # Event-Date-Timestamp, microseconds


@dataclass
class Hit:
    call: str
    sequence: int | None
    name: str
    status: int


@dataclass
class CallReceiver:
    """Records every request per call, counts how many of one call are in flight at once, and answers 500 to the
    first `fails[(call, event name)]` requests of that event and to every request of a call in `held` until its
    gate opens; a request of a call in `hang` is answered only once its gate opens."""

    hits: list[Hit] = field(default_factory=list)
    fails: dict[tuple[str, str], int] = field(default_factory=dict)
    held: dict[str, asyncio.Event] = field(default_factory=dict)
    hang: dict[str, asyncio.Event] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    overlaps: list[str] = field(default_factory=list)
    port: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        call = request.headers["X-Call-Id"]
        name = body["data"]["Event-Name"]
        sequence = request.headers.get("X-Call-Sequence")
        self.in_flight[call] = self.in_flight.get(call, 0) + 1
        if self.in_flight[call] > 1:
            self.overlaps.append(call)
        try:
            await asyncio.sleep(0.002)  # a response takes a moment: room for a second request of the call to overlap
            if call in self.hang:
                await self.hang[call].wait()
            gate = self.held.get(call)
            left = self.fails.get((call, name), 0)
            if (gate is not None and not gate.is_set()) or left > 0:
                self.fails[(call, name)] = left - 1
                status = 500
            else:
                status = 200
            self.hits.append(Hit(call, int(sequence) if sequence else None, name, status))
            return web.Response(status=status)
        finally:
            self.in_flight[call] -= 1

    def of(self, call: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.call == call]

    def delivered(self, call: str) -> list[str]:
        return [hit.name for hit in self.of(call) if hit.status == 200]


@pytest.fixture
async def calls() -> AsyncIterator[CallReceiver]:
    receiver = CallReceiver()
    server = web.Application()
    server.router.add_post("/calls", receiver.handle)
    runner = web.AppRunner(server, access_log=None, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture(params=["sqlite", "postgres"])
async def steady_app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """switchhook on each backend with the breaker off: ten calls failing at once would pause the hook, and its
    probes, one at a time with a doubling cooldown, would make the test about the breaker (docs/breaker.md)."""
    async with running_on(request.param, tmp_path, breaker_failures=0) as harness:
        yield harness


def channel(name: str, call: str, order: int) -> dict[str, str]:
    return {
        "Event-Name": name,
        "variable_domain_name": D,
        "Channel-Call-UUID": call,
        "Event-Date-Timestamp": str(TS + order * 1000),
        "Event-Sequence": str(order),
    }


async def ordered_hook(app: Harness, receiver: CallReceiver, **extra: object) -> str:
    return await app.create_hook(
        D,
        {
            "event": KEYS,
            "enable": True,
            "order": "call",
            "retries": 5,
            "delay": 0.05,
            "action": {"type": "web", "method": "POST", "url": f"http://127.0.0.1:{receiver.port}/calls"},
            **extra,
        },
    )


def assert_in_order(receiver: CallReceiver, call: str) -> None:
    """Delivered in event order, one at a time, numbered 1, 2, 3 in sending order with retries keeping theirs."""
    assert receiver.delivered(call) == KEYS, receiver.of(call)
    numbers = [hit.sequence for hit in receiver.of(call)]
    assert numbers == sorted(numbers), receiver.of(call)  # a retry repeats its number, never a later one's
    assert sorted(set(numbers)) == [1, 2, 3], receiver.of(call)  # gap-free
    for hit in receiver.of(call):
        if hit.status == 200:
            assert hit.sequence == KEYS.index(hit.name) + 1, receiver.of(call)


async def test_many_calls_arrive_in_event_order_one_at_a_time_with_retries_in_the_middle(
    steady_app: Harness, calls: CallReceiver
) -> None:
    any_app = steady_app
    await ordered_hook(any_app, calls)
    token = await any_app.domain_token(D)
    names = [f"call-{n}" for n in range(30)]
    for n, call in enumerate(names[:10]):
        calls.fails[(call, KEYS[n % 3])] = 2  # each of these fails twice in the middle (or at the start, or end)
    events = [channel(name, call, order) for call in names for order, name in enumerate(KEYS)]
    random.Random(14).shuffle(events)  # accepted out of order: sent in event order all the same
    response = await any_app.post_events(events, token)
    assert response.status_code == 202, response.text
    await eventually(
        lambda: all(len(calls.delivered(call)) == 3 for call in names),
        "every call delivered",
        timeout_s=30,
        details=lambda: str([calls.of(c) for c in names if len(calls.delivered(c)) < 3]),
    )
    assert calls.overlaps == []
    for call in names:
        assert_in_order(calls, call)
    assert sum(1 for hit in calls.hits if hit.status == 500) == 20


async def test_a_failing_call_holds_back_only_itself(steady_app: Harness, calls: CallReceiver) -> None:
    any_app = steady_app  # with the breaker on, an endpoint failing this often pauses the whole hook (docs/calls.md)
    await ordered_hook(any_app, calls, retries=100)
    token = await any_app.domain_token(D)
    gate = calls.held["stuck"] = asyncio.Event()
    first = await any_app.post_events([channel(name, "stuck", order) for order, name in enumerate(KEYS)], token)
    assert first.status_code == 202
    await eventually(lambda: len(calls.of("stuck")) >= 2, "the stuck call's first event retried")
    others = [f"other-{n}" for n in range(5)]
    response = await any_app.post_events(
        [channel(name, call, order) for call in others for order, name in enumerate(KEYS)], token
    )
    assert response.status_code == 202
    await eventually(lambda: all(len(calls.delivered(c)) == 3 for c in others), "the other calls delivered")
    assert {hit.name for hit in calls.of("stuck")} == {"CHANNEL_CREATE"}  # its later events wait behind it
    gate.set()
    await eventually(lambda: len(calls.delivered("stuck")) == 3, "the stuck call delivered once its endpoint answers")
    assert calls.overlaps == []
    for call in [*others, "stuck"]:
        assert_in_order(calls, call)


@pytest.fixture(params=["sqlite", "postgres"])
async def narrow_app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """One delivery in flight per hook (a backlog of PARKED_PER_SLOT = 16): most of a burst waits on the hook's
    shelf, and an ordered call's later events are kept there by the store's gate until its earlier ones settle."""
    async with running_on(request.param, tmp_path, breaker_failures=0, max_in_flight_per_hook=1) as harness:
        yield harness


async def post_waves_and_see_every_call_in_order(app: Harness, calls: CallReceiver, waiting_for: str) -> None:
    """40 calls to an ordered hook, posted wave by wave as the bench's callso scenario (every call's CREATE, then
    every ANSWER, then every HANGUP_COMPLETE): all 120 arrive, none of a call overlapping, each call in order."""
    await ordered_hook(app, calls)
    token = await app.domain_token(D)
    names = [f"call-{n}" for n in range(40)]
    for order, name in enumerate(KEYS):
        response = await app.post_events([channel(name, call, order) for call in names], token)
        assert response.status_code == 202, response.text
    await eventually(
        lambda: all(len(calls.delivered(call)) == 3 for call in names),
        waiting_for,
        timeout_s=30,
        details=lambda: f"{sum(len(calls.delivered(c)) for c in names)} of {3 * len(names)} delivered",
    )
    assert calls.overlaps == []
    for call in names:
        assert_in_order(calls, call)


async def test_calls_waiting_on_the_shelf_behind_their_earlier_events_all_arrive_in_order(
    narrow_app: Harness, calls: CallReceiver
) -> None:
    """As the bench's callso scenario, small: every call's CREATE, then every ANSWER, then every HANGUP_COMPLETE.
    A take from the shelf comes back short while the gate keeps calls' next events there: the shelf is not
    forgotten for it (it would wait out its horizon, SHELVE_S), and each call's next goes once its head settles."""
    await post_waves_and_see_every_call_in_order(narrow_app, calls, "every call delivered")


@pytest.fixture(params=["sqlite", "postgres"])
async def slow_poll_app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """As narrow_app, with a poll a minute apart: a delivery that waited for the poll would fail the test's wait."""
    overrides: dict[str, object] = {"breaker_failures": 0, "max_in_flight_per_hook": 1, "poll_interval_s": 60.0}
    async with running_on(request.param, tmp_path, **overrides) as harness:
        yield harness


async def test_a_calls_next_event_waiting_in_the_store_goes_when_its_previous_settles_not_at_the_poll(
    slow_poll_app: Harness, calls: CallReceiver
) -> None:
    """Every call's CREATE, then every ANSWER, then every HANGUP_COMPLETE, with one slot for the hook: most CREATEs
    wait on the shelf, and their calls' later events are let go at ingest or set behind in the store. The worker
    that records a call's delivery takes the call's next in the same transaction (store claim_next_of): with the
    poll a minute apart, all arrive at once; without it, the last of them wait for the poll."""
    await post_waves_and_see_every_call_in_order(
        slow_poll_app, calls, "every call delivered without waiting for the poll"
    )


async def test_a_delivery_numbered_at_its_turn_that_expires_waiting_for_a_slot_leaves_no_gap(
    narrow_app: Harness, calls: CallReceiver
) -> None:
    """A call's delivery takes its X-Call-Sequence when its turn comes, while it waits for the hook's slot; expired
    there, never sent, it gives the number back: the receiver sees the call's next one as 1, not 2."""
    app = narrow_app
    await ordered_hook(app, calls, ttl=2)
    token = await app.domain_token(D)
    release = calls.hang["blocker"] = asyncio.Event()
    assert (await app.post_events([channel(KEYS[0], "blocker", 0)], token)).status_code == 202
    await eventually(lambda: calls.in_flight.get("blocker") == 1, "the hook's one slot taken")
    assert (await app.post_events([channel(KEYS[0], "expiring", 0)], token)).status_code == 202
    listed = await app.client.get(
        "/api/v2/deliveries", params={"domain": D, "call": "expiring"}, headers={"X-Access-Token": token}
    )
    (create,) = listed.json()["data"]
    await eventually(lambda: time.time() > create["expiresAt"], "its ttl to run out while it waits", timeout_s=10)
    assert (await app.post_events([channel(KEYS[1], "expiring", 1)], token)).status_code == 202
    release.set()
    await eventually(lambda: calls.delivered("expiring") == [KEYS[1]], "the call's answer delivered")
    assert [(hit.name, hit.sequence) for hit in calls.of("expiring")] == [(KEYS[1], 1)]  # no gap: its create took none


async def test_a_late_event_older_than_one_sent_is_still_sent_after_it(any_app: Harness, calls: CallReceiver) -> None:
    await ordered_hook(any_app, calls)
    token = await any_app.domain_token(D)
    late = await any_app.post_events([channel(KEYS[1], "late", 1)], token)
    assert late.status_code == 202
    await eventually(lambda: len(calls.delivered("late")) == 1, "the answer delivered")
    assert (await any_app.post_events([channel(KEYS[0], "late", 0)], token)).status_code == 202
    await eventually(lambda: len(calls.delivered("late")) == 2, "the older create delivered too")
    assert [(hit.name, hit.sequence) for hit in calls.of("late")] == [(KEYS[1], 1), (KEYS[0], 2)]


async def test_order_is_call_or_null_and_read_back_as_given(app: Harness) -> None:
    token = await app.domain_token(D)
    base = {"event": KEYS, "enable": True, "action": {"type": "web", "method": "POST", "url": "http://127.0.0.1:9/"}}
    headers = {"X-Access-Token": token}
    hook_id = await app.create_hook(D, {**base, "order": "call"})
    read = await app.client.get(f"/api/v2/hooks/{hook_id}", params={"domain": D}, headers=headers)
    assert read.json()["data"]["order"] == "call"
    plain = await app.create_hook(D, {**base, "order": None})
    read = await app.client.get(f"/api/v2/hooks/{plain}", params={"domain": D}, headers=headers)
    assert "order" not in read.json()["data"]
    for bad in ("event", "CALL", 1, True, ["call"]):
        response = await app.client.post(
            "/api/v2/hooks", params={"domain": D}, json={**base, "order": bad}, headers=headers
        )
        assert response.status_code == 400, (bad, response.text)
