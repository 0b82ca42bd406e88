"""Owns the load: the bench event, batch bodies stamped with `bench_ts`, the limit client and the posters."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

#: Replaced in a serialised body by the send time, so a body is built once and stamped per request.
TS_PLACEHOLDER = b"__BENCH_TS__"
#: Replaced by the send time in µs, FreeSWITCH's `Event-Date-Timestamp` unit: a real switch's events carry
#: the time they happened, and switchhook orders its ids by it (a fixed stamp would make every id random).
FS_TS_PLACEHOLDER = b"__BENCH_FS_TS__"
#: Replaced by a fresh `Event-Sequence` per event per send: FreeSWITCH numbers every event of a run (per
#: `Core-UUID`), and switchhook identifies an event by the two, so a template sent twice must not repeat one.
SEQ_PLACEHOLDER = b"__BENCH_SEQ__"
#: One switch per load generator run, as a real switch has one `Core-UUID` until it restarts.
CORE_UUID = str(uuid.uuid4())
_sequence = itertools.count(1)
USER_AGENT = "switchhook-bench"
POST_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)


def stamp(template: bytes) -> bytes:
    """The body with every `bench_ts` set to now (epoch seconds, microseconds), `Event-Date-Timestamp` too, and
    each event's `Event-Sequence` a new number."""
    now = time.time()
    body = template.replace(TS_PLACEHOLDER, b"%.6f" % now).replace(FS_TS_PLACEHOLDER, b"%d" % int(now * 1_000_000))
    parts = body.split(SEQ_PLACEHOLDER)
    if len(parts) == 1:
        return body
    numbered = [part + b"%d" % next(_sequence) for part in parts[:-1]]
    numbered.append(parts[-1])
    return b"".join(numbered)


def make_event(domain: str, name: str = "CHANNEL_CREATE", subclass: str | None = None) -> dict[str, str]:
    """A CHANNEL_CREATE-like FreeSWITCH event of ~1.3 KB (as mod_amqp or `event json` sends it)."""
    call_id = uuid.uuid4().hex
    event = {
        "Event-Name": name,
        "Core-UUID": CORE_UUID,
        "FreeSWITCH-Hostname": "fs-bench-01",
        "FreeSWITCH-Switchname": "fs-bench-01",
        "FreeSWITCH-IPv4": "10.1.1.14",
        "FreeSWITCH-IPv6": "::1",
        "Event-Date-Local": "2025-03-26 10:50:41",
        "Event-Date-GMT": "Wed, 26 Mar 2025 10:50:41 GMT",
        "Event-Date-Timestamp": FS_TS_PLACEHOLDER.decode(),
        "Event-Calling-File": "switch_core_state_machine.c",
        "Event-Calling-Function": "switch_core_session_run",
        "Event-Calling-Line-Number": "626",
        "Event-Sequence": SEQ_PLACEHOLDER.decode(),
        "Channel-State": "CS_INIT",
        "Channel-Call-State": "DOWN",
        "Channel-State-Number": "2",
        "Channel-Name": f"sofia/internal/1000@{domain}",
        "Unique-ID": call_id,
        "Call-Direction": "inbound",
        "Presence-Call-Direction": "inbound",
        "Channel-HIT-Dialplan": "true",
        "Channel-Presence-ID": f"1000@{domain}",
        "Channel-Call-UUID": call_id,
        "Answer-State": "ringing",
        "Caller-Direction": "inbound",
        "Caller-Logical-Direction": "inbound",
        "Caller-Username": "1000",
        "Caller-Dialplan": "XML",
        "Caller-Caller-ID-Name": "Bench Caller",
        "Caller-Caller-ID-Number": "1000",
        "Caller-Network-Addr": "10.1.1.20",
        "Caller-ANI": "1000",
        "Caller-Destination-Number": "1001",
        "Caller-Unique-ID": call_id,
        "Caller-Source": "mod_sofia",
        "Caller-Context": "default",
        "Caller-Channel-Name": f"sofia/internal/1000@{domain}",
        "Caller-Profile-Index": "1",
        "Caller-Channel-Created-Time": "1742986241847058",
        "variable_direction": "inbound",
        "variable_uuid": call_id,
        "variable_sip_from_user": "1000",
        "variable_sip_to_user": "1001",
        "variable_domain_name": domain,
        "bench_ts": TS_PLACEHOLDER.decode(),
    }
    if subclass is not None:
        event["Event-Subclass"] = subclass
    return event


def events_body(events: list[dict[str, Any]]) -> bytes:
    """A `/api/v2/events` body (a JSON array) with the `bench_ts` placeholder still in it."""
    return orjson.dumps(events)


def envelope_body(event: dict[str, Any], action: str) -> bytes:
    """What switchhook's default envelope looks like for `event`: the limit client posts exactly this."""
    message_id = str(uuid.uuid4())  # shaped as switchhook's (a UUID)
    return orjson.dumps({"id": message_id, "action": action, "data": event})


@dataclass
class LimitResult:
    requests: int
    errors: int
    started_at: float  # epoch s, just before the first request


async def run_limit(url: str, body_template: bytes, requests: int, concurrency: int) -> LimitResult:
    """The limit: a bare aiohttp client posting `requests` bodies with `concurrency` in flight."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30, sock_connect=5)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    left = requests
    errors = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            try:
                async with session.post(url, data=stamp(body_template), headers=headers, timeout=timeout) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1

    async with aiohttp.ClientSession(connector=connector, skip_auto_headers=("Content-Type",)) as session:
        started_at = time.time()
        await asyncio.gather(*(worker(session) for _ in range(min(concurrency, requests))))
    return LimitResult(requests, errors, started_at)


class PostError(RuntimeError):
    """switchhook refused or mis-counted a batch: the run cannot be trusted."""


@dataclass
class PostStats:
    requests: int = 0
    events: int = 0
    deliveries: int = 0
    started_at: float = 0.0  # epoch s of the first post
    late: int = 0  # paced posts that started more than one interval behind schedule
    post_ms: list[float] = field(default_factory=list)


async def post_events(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, stats: PostStats,
    expect_deliveries: int | None,
) -> None:  # fmt: skip
    """POST one stamped batch; raise PostError unless it is 202 with the expected delivery count."""
    started = time.perf_counter()
    async with session.post(url, data=stamp(body), headers=headers, timeout=POST_TIMEOUT) as response:
        text = await response.read()
    stats.post_ms.append((time.perf_counter() - started) * 1000)
    if response.status != 202:
        raise PostError(f"POST /api/v2/events answered {response.status}: {text[:300]!r}")
    data = orjson.loads(text)["data"]
    stats.requests += 1
    stats.events += int(data["accepted"])
    stats.deliveries += int(data["deliveries"])
    if expect_deliveries is not None and data["deliveries"] != expect_deliveries:
        raise PostError(f"a batch made {data['deliveries']} deliveries, expected {expect_deliveries}")


async def post_flat_out(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], bodies: Callable[[int], bytes],
    batches: int, posters: int, expect_deliveries: int | None,
) -> PostStats:  # fmt: skip
    """Post `batches` bodies as fast as switchhook takes them, `posters` requests at a time."""
    stats = PostStats(started_at=time.time())
    cursor = 0

    async def poster() -> None:
        nonlocal cursor
        while cursor < batches:
            index = cursor
            cursor += 1
            await post_events(session, url, headers, bodies(index), stats, expect_deliveries)

    await asyncio.gather(*(poster() for _ in range(max(1, min(posters, batches)))))
    return stats


async def post_paced(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, *,
    rate_events_s: float, duration_s: float, batch: int, expect_deliveries: int | None,
    max_in_flight: int = 64,
) -> PostStats:  # fmt: skip
    """Post `batch`-event bodies on a fixed schedule: `rate_events_s` events/s for `duration_s`."""
    interval_s = batch / rate_events_s
    count = max(1, round(duration_s / interval_s))
    stats = PostStats()
    gate = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    async def one() -> None:
        try:
            await post_events(session, url, headers, body, stats, expect_deliveries)
        except Exception as exc:
            failures.append(exc)
        finally:
            gate.release()

    start = time.monotonic() + 0.05
    stats.started_at = time.time() + 0.05
    for index in range(count):
        due = start + index * interval_s
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await gate.acquire()
        if time.monotonic() - due > interval_s:
            stats.late += 1
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if failures:
            break
    if tasks:
        await asyncio.wait(tasks, timeout=POST_TIMEOUT.total)
    if failures:
        raise PostError(str(failures[0])) from failures[0]
    return stats
