"""Owns issue 5's scenarios: each starts a fresh switchhook, drives it, and reads the receiver's figures."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.load import (
    TS_PLACEHOLDER,
    PostStats,
    envelope_body,
    events_body,
    make_event,
    post_flat_out,
    post_paced,
    run_limit,
    stamp,
)
from bench.receiver import ReceiverProcess
from bench.server import (
    Switchhook,
    create_hook,
    delete_amqp,
    drop_schema,
    root_headers,
    unique_name,
    web_action,
)

DOMAIN = "bench.example"
EVENT_KEY = "CHANNEL_CREATE"
STALL_S = 20.0  # no new arrival for this long: the rest is lost
SETTLE_S = 0.3  # after the last expected arrival, how long to watch for duplicates
CALL_KEYS = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE")  # scenarios calls, callso
#: switchhook's own alerts (docs/alerts.md): what the subscribers of scenarios 5a and 5ha listen to.
ALERT_KEYS = tuple(
    f"CUSTOM->switchhook::{name}"
    for name in ("hook_paused", "hook_resumed", "hook_disabled", "delivery_failed", "fallback_used")
)
#: In scenarios calls and callso the receiver answers each request this long after it came (a request has a
#: time in flight, as at a real endpoint: two of one call at once can then be seen), for both hooks alike.
CALL_ANSWER_DELAY_S = 0.002


@dataclass
class Options:
    events: int = 20_000  # deliveries per run of scenarios 1-3 (scenario 2 posts events/10 events)
    runs: int = 3
    quick: bool = False
    concurrency: int = 256  # the limit client's requests in flight
    batch: int = 100  # events per POST in the flat-out scenarios
    posters: int = 4  # concurrent POSTs in the flat-out scenarios
    rate_events_s: float = 1000.0  # scenarios 4, 5 and 5h (per domain)
    paced_batch: int = 10  # events per POST in the paced scenarios
    duration_s: float = 10.0  # scenarios 4, 5 and 5h
    starve_duration_s: float = 20.0  # scenario starve: issue 13's 200,000 deliveries in 20 s at 1,000 events/s
    fan_out: int = 10  # hooks per event in scenario 2
    rss_hooks: int = 10_000
    rss_events: int = 100_000
    rss_domains: int = 100
    calls: int = 1_000  # concurrent calls of scenarios calls and callso, three events each
    pg_url: str = ""
    amqp_url: str = ""
    amqp_mode: str = "backlog"  # scenario 3: "backlog" (queue filled, then drained) or "live"
    profile_dir: Path | None = None
    profile_format: str = "flamegraph"


@dataclass
class RunResult:
    deliveries_s: float | None = None
    limit_s: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float | None = None
    expected: int = 0
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class BenchFailure(RuntimeError):
    """The run went wrong in a way that makes its figures meaningless."""


class BenchSkipped(RuntimeError):
    """This build lacks what the scenario needs (said in the message): no figures, and not a failure."""


class Bench:
    def __init__(self, options: Options, receiver: ReceiverProcess) -> None:
        self.options = options
        self.receiver = receiver

    # -- shared steps -------------------------------------------------------------------------------

    @asynccontextmanager
    async def switchhook(self, settings: dict[str, str] | None = None) -> AsyncIterator[Switchhook]:
        """A fresh switchhook in a temp dir; stopped and removed whatever happens."""
        workdir = Path(tempfile.mkdtemp(prefix="switchhook-bench-"))
        server = Switchhook(workdir, settings)
        try:
            yield server
        except Exception:
            server.stop()
            tail = server.log_tail()
            if tail:
                print(f"--- switchhook log (tail) ---\n{tail}\n---", flush=True)
            raise
        finally:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    async def limit(self, path: str, body_template: bytes, requests: int) -> tuple[float, dict[str, Any]]:
        """(deliveries/s of the bare client to the same receiver with the same bodies, receiver stats)."""
        await self.receiver.reset()
        cpu_start_s = time.process_time()
        result = await run_limit(self.receiver.url(path), body_template, requests, self.options.concurrency)
        stats = await self.receiver.stats()
        stats["client_cpu_s"] = time.process_time() - cpu_start_s
        if stats["count"] != requests or result.errors:
            raise BenchFailure(f"the limit client got {stats['count']}/{requests} through ({result.errors} errors)")
        return requests / max(1e-9, stats["last_at"] - result.started_at), stats

    async def wait_for(
        self, expected: int, server: Switchhook, by_path: dict[str, int] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Wait until the receiver has `expected` requests (or stalls); (count, stats) at the end.

        With `by_path` ({"/b": n, "/a": m}, paths the receiver was reset to track), wait until every
        tracked path has its own count instead; `expected` is then their sum.
        """
        timeout_s = max(120.0, expected / 100)
        deadline = time.monotonic() + timeout_s
        previous, progress_at = -1, time.monotonic()
        while True:
            count, _, path_counts = await self.receiver.count()
            now = time.monotonic()
            if by_path:
                complete = all(path_counts.get(path, 0) >= n for path, n in by_path.items())
            else:
                complete = count >= expected
            if complete:
                await asyncio.sleep(SETTLE_S)
                break
            if count != previous:
                previous, progress_at = count, now
            if now - progress_at > STALL_S or now > deadline or not server.alive():
                break
            await asyncio.sleep(0.05)
        stats = await self.receiver.stats()
        return stats["count"], stats

    def result(
        self,
        expected: int,
        stats: dict[str, Any],
        started_at: float,
        server: Switchhook,
        phase: dict[str, Any],
        label: str = "",
    ) -> RunResult:
        count = stats["count"]
        lost = _check_count(expected, count, label)
        span_s = stats["last_at"] - started_at if count else 0.0
        return RunResult(
            deliveries_s=count / span_s if span_s > 0 and not lost else None,
            p50_ms=stats["p50_ms"], p95_ms=stats["p95_ms"], p99_ms=stats["p99_ms"],
            peak_rss_mb=server.peak_rss_mb(), expected=expected, received=count, lost=lost,
            duplicates=max(0, count - expected),
            extra={"switchhook_cpu_s": round(phase["cpu_s"], 2),
                   "cpu_us_per_delivery": round(phase["cpu_s"] * 1e6 / count, 1) if count else None,
                   "receiver_cpu_s": round(stats["cpu_s"], 2)},
        )  # fmt: skip

    @asynccontextmanager
    async def measured(
        self, server: Switchhook, name: str, *, from_process_start: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """The measured phase: the serve process's CPU seconds, and py-spy on it when --profile is given."""
        phase: dict[str, Any] = {}
        cpu_start_s = 0.0 if from_process_start else server.cpu_s()
        profiler = self._start_profiler(server, name)
        try:
            yield phase
        finally:
            phase["cpu_s"] = server.cpu_s() - cpu_start_s
            if profiler is not None:
                proc, output = profiler
                proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
                print(f"    profile written to {output}", flush=True)

    def _start_profiler(self, server: Switchhook, name: str) -> tuple[subprocess.Popen[bytes], Path] | None:
        directory = self.options.profile_dir
        py_spy = shutil.which("py-spy") or _venv_tool("py-spy")
        if directory is None:
            return None
        if py_spy is None:
            print("    --profile: py-spy is not installed (.venv/bin/pip install py-spy)", flush=True)
            return None
        directory.mkdir(parents=True, exist_ok=True)
        suffix = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[self.options.profile_format]
        output = directory / f"profile-{name}.{suffix}"
        proc = subprocess.Popen(
            [py_spy, "record", "--pid", str(server.pid), "--rate", "100", "--nonblocking",
             "--format", self.options.profile_format, "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return proc, output

    # -- scenarios 1 and 2: SQLite, events posted in batches to /api/v2/events, flat out -------------

    async def throughput_sqlite(self, run: int, hooks_per_event: int) -> RunResult:
        options = self.options
        batches = max(1, options.events // hooks_per_event // options.batch)
        events = batches * options.batch
        expected = events * hooks_per_event
        template = events_body([make_event(DOMAIN) for _ in range(options.batch)])
        limit_body = envelope_body(make_event(DOMAIN), EVENT_KEY)
        limit_s, limit_stats = await self.limit("/limit", limit_body, expected)

        async with self.switchhook() as server:
            token = await asyncio.to_thread(server.token, DOMAIN)
            await server.start()
            headers = {"X-Access-Token": token, "Content-Type": "application/json"}
            async with aiohttp.ClientSession() as session:
                for index in range(hooks_per_event):
                    hook = {
                        "event": EVENT_KEY,
                        "enable": True,
                        "action": web_action(self.receiver.url(f"/h{index}")),
                    }
                    await create_hook(session, server.url, headers, hook)
                await self.receiver.reset()
                async with self.measured(server, f"s{'2' if hooks_per_event > 1 else '1'}-run{run}") as phase:
                    posted = await post_flat_out(
                        session, server.url + "/api/v2/events", headers, lambda _i: template, batches,
                        options.posters, options.batch * hooks_per_event,
                    )  # fmt: skip
                    _, stats = await self.wait_for(expected, server)
            result = self.result(expected, stats, posted.started_at, server, phase)
        result.limit_s = limit_s
        result.extra |= _post_extra(posted) | _limit_extra(limit_stats, expected)
        result.extra |= {"events": events, "hooks_per_event": hooks_per_event}
        return result

    async def scenario_1(self, run: int) -> RunResult:
        return await self.throughput_sqlite(run, 1)

    async def scenario_2(self, run: int) -> RunResult:
        return await self.throughput_sqlite(run, self.options.fan_out)

    # -- scenario 3: PostgreSQL + RabbitMQ, events published to the events exchange ------------------

    async def scenario_3(self, run: int) -> RunResult:
        options = self.options
        expected = options.events
        event = make_event(DOMAIN)
        limit_s, limit_stats = await self.limit("/limit", envelope_body(event, EVENT_KEY), expected)

        from switchhook.ingest.amqp import routing_key_for

        suffix = unique_name("bench")
        schema, queue = suffix, f"switchhook.{suffix}"
        events_exchange, cc_exchange = f"TAP.Events.{suffix}", f"TAP.CC-Events.{suffix}"
        settings = {
            "SWITCHHOOK_DATABASE_URL": options.pg_url, "SWITCHHOOK_DATABASE_SCHEMA": schema,
            "SWITCHHOOK_AMQP_URL": options.amqp_url, "SWITCHHOOK_AMQP_QUEUE": queue,
            "SWITCHHOOK_AMQP_EVENTS_EXCHANGE": events_exchange, "SWITCHHOOK_AMQP_CC_EXCHANGE": cc_exchange,
        }  # fmt: skip
        try:
            async with self.switchhook(settings) as server:
                token = await asyncio.to_thread(server.token, DOMAIN)
                await server.start()
                headers = {"X-Access-Token": token}
                async with aiohttp.ClientSession() as session:
                    hook = {
                        "event": EVENT_KEY,
                        "enable": True,
                        "action": web_action(self.receiver.url("/amqp")),
                    }
                    await create_hook(session, server.url, headers, hook)
                    await _wait_amqp_connected(server, session)
                publisher = await _Publisher.open(options.amqp_url, events_exchange)
                try:
                    await publisher.wait_bound(routing_key_for(_probe_event()), orjson.dumps(_probe_event()))
                    body, routing_key = orjson.dumps(event), routing_key_for(event)
                    if options.amqp_mode == "backlog":
                        result = await self._amqp_backlog(server, publisher, body, routing_key, expected, run)
                    else:
                        await self.receiver.reset()
                        async with self.measured(server, f"s3-run{run}") as phase:
                            started_at = await publisher.publish(body, routing_key, expected)
                            _, stats = await self.wait_for(expected, server)
                        result = self.result(expected, stats, started_at, server, phase)
                finally:
                    await publisher.close()
        finally:
            await _cleanup(
                f"RabbitMQ queue {queue} and exchanges {events_exchange}, {cc_exchange}",
                lambda: delete_amqp(options.amqp_url, queue, [events_exchange, cc_exchange]),
            )
            await _cleanup(f"PostgreSQL schema {schema}", lambda: drop_schema(options.pg_url, schema))
        result.limit_s = limit_s
        result.extra |= {
            "events": expected, "mode": options.amqp_mode, "publish_s": round(publisher.elapsed_s, 3),
            "published_per_s": round(expected / max(1e-9, publisher.elapsed_s)),
        }  # fmt: skip
        result.extra |= _limit_extra(limit_stats, expected)
        return result

    async def _amqp_backlog(
        self,
        server: Switchhook,
        publisher: _Publisher,
        body: bytes,
        routing_key: str,
        expected: int,
        run: int,
    ) -> RunResult:
        """Stop switchhook (its durable queue and binding stay), publish all events, start it, time the drain.

        The Python publisher costs about as much CPU per event as switchhook does: publishing while
        switchhook consumes would measure the two sharing 2 cores. FreeSWITCH's C publisher is nearly free
        and on another host, so the queue is filled first and the rate is taken from the first to the
        last arrival (the restart itself is not counted; `from_restart_s` in the JSON includes it).
        """
        server.stop()
        await self.receiver.reset()
        await publisher.publish(body, routing_key, expected)
        restarted_at = time.time()
        await server.start()
        async with self.measured(server, f"s3-run{run}", from_process_start=True) as phase:
            _, stats = await self.wait_for(expected, server)
        result = self.result(expected, stats, stats["first_at"], server, phase)
        # Every event waited in the queue for the restart: these latencies say nothing about switchhook.
        result.extra["backlog_latency_ms"] = {"p50": result.p50_ms, "p99": result.p99_ms}
        result.p50_ms = result.p95_ms = result.p99_ms = None
        result.extra["from_restart_s"] = round(stats["last_at"] - restarted_at, 3)
        result.extra["cpu_includes_startup"] = True
        return result

    # -- scenario 4: latency at a fixed rate; 5: the same beside a dead endpoint; 5h: beside a live one ----

    async def scenario_4(self, run: int) -> RunResult:
        return await self.paced(run, neighbour=None)

    async def scenario_5(self, run: int) -> RunResult:
        return await self.paced(run, neighbour="dead")

    async def scenario_5h(self, run: int) -> RunResult:
        """The control for 5: A's hook answers, so only the doubled load differs from 4, not a dead endpoint."""
        return await self.paced(run, neighbour="live")

    async def scenario_5a(self, run: int) -> RunResult:
        """5 with alert subscribers (docs/alerts.md): A's dead hook pauses and raises alerts into A."""
        return await self.paced(run, neighbour="dead", alert_subscribers=True)

    async def scenario_5ha(self, run: int) -> RunResult:
        """5h with the same alert subscribers: nothing fails, so only their presence differs from 5h."""
        return await self.paced(run, neighbour="live", alert_subscribers=True)

    async def paced(self, run: int, *, neighbour: str | None, alert_subscribers: bool = False) -> RunResult:
        """Domain B at the fixed rate; with a `neighbour` ("dead" or "live"), domain A at the same rate too.

        B's hook posts to `/b` on the answering port. A's (`timeout: 2`) posts to the dead port in 5, to
        `/a` on the answering port in 5h: there the receiver keeps `/a` and `/b` apart, B's figures come
        from `/b` only and A's deliveries are awaited and checked against A's own count.
        `alert_subscribers` (5a, 5ha): each domain also has a hook on every switchhook::* alert key posting to
        `/alerts` on the answering port; B's figures then come from `/b` only in 5a too (a build without alerts
        raises none: the hooks are created all the same).
        """
        options = self.options
        name = {None: "4", "dead": "5", "live": "5h"}[neighbour] + ("a" if alert_subscribers else "")
        domain_b, domain_a = ("b." + DOMAIN, "a." + DOMAIN) if neighbour else (DOMAIN, "")
        body_b = events_body([make_event(domain_b) for _ in range(options.paced_batch)])
        async with self.switchhook() as server:
            token_b = await asyncio.to_thread(server.token, domain_b)
            token_a = await asyncio.to_thread(server.token, domain_a) if neighbour else ""
            await server.start()
            headers_b = {"X-Access-Token": token_b, "Content-Type": "application/json"}
            headers_a = {"X-Access-Token": token_a, "Content-Type": "application/json"}
            async with aiohttp.ClientSession() as session:
                hook = {"event": EVENT_KEY, "enable": True, "action": web_action(self.receiver.url("/b"))}
                await create_hook(session, server.url, headers_b, hook)
                if neighbour:
                    a_url = self.receiver.url("/a") if neighbour == "live" else self.receiver.blackhole_url("/a")
                    hook_a = {"event": EVENT_KEY, "enable": True, "timeout": 2, "action": web_action(a_url)}
                    await create_hook(session, server.url, headers_a, hook_a)
                if alert_subscribers:
                    for headers in (headers_a, headers_b) if neighbour else (headers_b,):
                        alerts = {
                            "event": ALERT_KEYS,
                            "enable": True,
                            "action": web_action(self.receiver.url("/alerts")),
                        }
                        await create_hook(session, server.url, headers, alerts)
                tracked = ("/a", "/b") if neighbour == "live" else ("/b",) if alert_subscribers else ()
                await self.receiver.reset(tracked + (("/alerts",) if alert_subscribers else ()))
                url = server.url + "/api/v2/events"

                def stream(headers: dict[str, str], body: bytes) -> Awaitable[PostStats]:
                    return post_paced(
                        session, url, headers, body, rate_events_s=options.rate_events_s,
                        duration_s=options.duration_s, batch=options.paced_batch,
                        expect_deliveries=options.paced_batch,
                    )  # fmt: skip

                async with self.measured(server, f"s{name}-run{run}") as phase:
                    if neighbour:
                        body_a = events_body([make_event(domain_a) for _ in range(options.paced_batch)])
                        posted, posted_a = await asyncio.gather(stream(headers_b, body_b), stream(headers_a, body_a))
                    else:
                        posted, posted_a = await stream(headers_b, body_b), None
                    if neighbour == "live":
                        assert posted_a is not None
                        by_path = {"/b": posted.deliveries, "/a": posted_a.deliveries}
                        _, stats = await self.wait_for(sum(by_path.values()), server, by_path)
                    elif alert_subscribers:
                        _, stats = await self.wait_for(posted.deliveries, server, {"/b": posted.deliveries})
                    else:
                        _, stats = await self.wait_for(posted.deliveries, server)
            if alert_subscribers:
                alerts_received = stats["paths"]["/alerts"]["count"]
            if neighbour == "dead" and alert_subscribers:  # B's figures only, as in 5h
                result = self.result(
                    posted.deliveries,
                    {**stats, **stats["paths"]["/b"]},
                    posted.started_at,
                    server,
                    phase,
                    "to domain B",
                )
            elif neighbour == "live":
                # B's figures only; the receiver-wide ones (CPU, connections, blackhole) stay as they are.
                stats_b, stats_a = stats["paths"]["/b"], stats["paths"]["/a"]
                result = self.result(
                    posted.deliveries, {**stats, **stats_b}, posted.started_at, server, phase, "to domain B"
                )
            else:
                result = self.result(posted.deliveries, stats, posted.started_at, server, phase)
        result.extra |= _post_extra(posted) | {"events": posted.events}
        if alert_subscribers:
            result.extra["alerts_received"] = alerts_received
        if posted_a is not None and neighbour == "dead":
            result.extra |= {"dead_domain_events": posted_a.events, "dead_domain_late_posts": posted_a.late,
                             "blackhole_connections": stats["blackhole"]["connections"]}  # fmt: skip
        elif posted_a is not None:
            lost_a = _check_count(posted_a.deliveries, stats_a["count"], "to domain A")
            result.lost += lost_a
            result.duplicates += max(0, stats_a["count"] - posted_a.deliveries)
            result.extra |= {
                "b_lost": result.lost - lost_a, "neighbour_events": posted_a.events,
                "neighbour_late_posts": posted_a.late, "neighbour_expected": posted_a.deliveries,
                "neighbour_received": stats_a["count"], "neighbour_lost": lost_a,
                "neighbour_p50_ms": stats_a["p50_ms"], "neighbour_p99_ms": stats_a["p99_ms"],
                "receiver_requests": stats["count"],
            }  # fmt: skip
            if stats["count"]:  # switchhook's CPU went to A's deliveries as well as B's
                result.extra["cpu_us_per_delivery"] = round(phase["cpu_s"] * 1e6 / stats["count"], 1)
        return result

    # -- starve: issue 13's attack at its scale: one tenant's dead endpoints beside another's trickle ----

    async def scenario_starve(self, run: int) -> RunResult:
        """Domain A: ten hooks on the event, five at a port that refuses and five at one that never answers (the
        default 15 s timeout), fed `--rate` events/s for `--starve-duration` s (10 x that in deliveries: 200,000 at
        the defaults). Domain B: one answering hook, 100 events/s beside it. The figures are B's, end to end."""
        options = self.options
        domain_b, domain_a = "b." + DOMAIN, "a." + DOMAIN
        b_rate = 100.0
        body_b = events_body([make_event(domain_b) for _ in range(options.paced_batch)])
        body_a = events_body([make_event(domain_a) for _ in range(options.paced_batch)])
        with socket.socket() as closed:  # a port nothing listens on: connections are refused
            closed.bind(("127.0.0.1", 0))
            refused_url = f"http://127.0.0.1:{closed.getsockname()[1]}/a"
        async with self.switchhook() as server:
            token_b = await asyncio.to_thread(server.token, domain_b)
            token_a = await asyncio.to_thread(server.token, domain_a)
            await server.start()
            headers_b = {"X-Access-Token": token_b, "Content-Type": "application/json"}
            headers_a = {"X-Access-Token": token_a, "Content-Type": "application/json"}
            async with aiohttp.ClientSession() as session:
                hook_b = {"event": EVENT_KEY, "enable": True, "action": web_action(self.receiver.url("/b"))}
                await create_hook(session, server.url, headers_b, hook_b)
                for n in range(10):
                    # The never-answering ones keep the default timeout (15 s): they hold the domain's slots that
                    # long before a failure is counted, so the breaker is not what saves B here.
                    url = refused_url if n % 2 else self.receiver.blackhole_url("/a")
                    hook_a = {"event": EVENT_KEY, "enable": True, "action": web_action(url)}
                    await create_hook(session, server.url, headers_a, hook_a)
                await self.receiver.reset(())
                url = server.url + "/api/v2/events"

                def stream(headers: dict[str, str], body: bytes, rate: float, hooks: int) -> Awaitable[PostStats]:
                    return post_paced(
                        session, url, headers, body, rate_events_s=rate, duration_s=options.starve_duration_s,
                        batch=options.paced_batch, expect_deliveries=options.paced_batch * hooks,
                    )  # fmt: skip

                async with self.measured(server, f"starve-run{run}") as phase:
                    posted, posted_a = await asyncio.gather(
                        stream(headers_b, body_b, b_rate, 1), stream(headers_a, body_a, options.rate_events_s, 10)
                    )
                    _, stats = await self.wait_for(posted.deliveries, server)
            result = self.result(posted.deliveries, stats, posted.started_at, server, phase)
        result.extra |= _post_extra(posted) | {
            "events": posted.events, "b_rate_events_s": b_rate, "attacker_events": posted_a.events,
            "attacker_deliveries": posted_a.deliveries,
            "attacker": {key: value for key, value in _post_extra(posted_a).items()},
        }  # fmt: skip
        return result

    # -- calls, callso: a call's three events to one hook, unordered and ordered (issue 14) --------------

    async def calls(self, run: int, ordered: bool) -> RunResult:
        """`calls` concurrent calls, each CHANNEL_CREATE -> CHANNEL_ANSWER -> CHANNEL_HANGUP_COMPLETE (one
        Channel-Call-UUID, rising Event-Sequence and Event-Date-Timestamp), posted wave by wave (every call's
        CREATE, then every ANSWER, then every HANGUP_COMPLETE) in batches of 100, 4 POSTs at a time, to one hook
        on the three keys; `ordered`: the hook has `"order": "call"`. The receiver checks each call's requests
        (see bench/receiver.py, Calls): overlaps and out-of-order ones are violations (0 for an ordered hook)."""
        options = self.options
        core = str(uuid.uuid4())  # a switch of its own per run: its sequences never repeat another run's
        started_us = int(time.time() * 1_000_000)
        call_ids = [str(uuid.uuid4()) for _ in range(options.calls)]
        events: list[dict[str, Any]] = []
        for step, name in enumerate(CALL_KEYS):
            for n, call in enumerate(call_ids):
                sequence = n * len(CALL_KEYS) + step + 1
                event = make_event(DOMAIN, name)
                event.update({
                    "Core-UUID": core, "Event-Sequence": str(sequence),
                    "Event-Date-Timestamp": str(started_us + sequence),
                    "Channel-Call-UUID": call, "Unique-ID": call, "Caller-Unique-ID": call, "variable_uuid": call,
                })  # fmt: skip
                events.append(event)
        bodies = [events_body(events[i : i + options.batch]) for i in range(0, len(events), options.batch)]
        expected = len(events)
        hook: dict[str, Any] = {
            "event": list(CALL_KEYS),
            "enable": True,
            "action": web_action(self.receiver.url("/calls")),
        }
        if ordered:
            hook["order"] = "call"

        async with self.switchhook() as server:
            token = await asyncio.to_thread(server.token, DOMAIN)
            await server.start()
            headers = {"X-Access-Token": token, "Content-Type": "application/json"}
            async with aiohttp.ClientSession() as session:
                try:
                    await create_hook(session, server.url, headers, hook)
                except RuntimeError as exc:
                    if ordered and "order" in str(exc).lower():
                        raise BenchSkipped(
                            f'this build does not take "order": "call" (issue 14, item 3): {exc}'
                        ) from None
                    raise
                await self.receiver.reset(answer_delay_s=CALL_ANSWER_DELAY_S)
                async with self.measured(server, f"calls{'o' if ordered else ''}-run{run}") as phase:
                    posted = await post_flat_out(
                        session, server.url + "/api/v2/events", headers, lambda i: bodies[i], len(bodies),
                        options.posters, None,
                    )  # fmt: skip
                    _, stats = await self.wait_for(expected, server)
            result = self.result(expected, stats, posted.started_at, server, phase)
        checked = stats.get("calls", {})
        violations = int(checked.get("overlaps", 0)) + int(checked.get("out_of_order", 0))
        if ordered and violations:
            print(f"!!! {violations} per-call VIOLATIONS on the ordered hook: {checked}", flush=True)
        result.extra |= _post_extra(posted) | {"calls": options.calls, "check": checked, "violations": violations}
        return result

    async def scenario_calls(self, run: int) -> RunResult:
        return await self.calls(run, ordered=False)

    async def scenario_callso(self, run: int) -> RunResult:
        return await self.calls(run, ordered=True)

    # -- memory: many hooks stored, many deliveries pending ------------------------------------------

    async def scenario_rss(self, run: int) -> RunResult:
        options = self.options
        hooks, events, domains = options.rss_hooks, options.rss_events, options.rss_domains
        batch = options.batch
        dead_url = self.receiver.blackhole_url("/pending")

        def domain_of(hook_index: int) -> str:
            return f"d{hook_index % domains:04d}.{DOMAIN}"

        def subclass_of(hook_index: int) -> str:
            return f"bench::h{hook_index:06d}"

        def batch_body(index: int) -> bytes:
            chosen = [(index * batch + i) % hooks for i in range(batch)]
            return events_body([make_event(domain_of(h), "CUSTOM", subclass_of(h)) for h in chosen])

        async with self.switchhook() as server:
            await server.start()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                headers = await root_headers(session, server.url)
                created_at = time.monotonic()

                async def create(h: int) -> None:
                    hook = {"event": f"CUSTOM->{subclass_of(h)}", "enable": True, "timeout": 60, "retries": 3,
                            "delay": 86400, "action": web_action(dead_url)}  # fmt: skip
                    await create_hook(session, server.url, headers, hook, domain_of(h))

                await _bounded_map(create, hooks, limit=8)
                create_s = time.monotonic() - created_at
                headers = {**headers, "Content-Type": "application/json"}
                posted = await post_flat_out(
                    session, server.url + "/api/v2/events", headers, batch_body, max(1, events // batch),
                    options.posters, batch,
                )  # fmt: skip
                ingest_s = time.time() - posted.started_at
                await asyncio.sleep(3.0)  # let the worker take what it will hold in memory
                health = await server.health(session)
            peak = server.peak_rss_mb()
            rss_now = server.rss_mb()
        return RunResult(
            peak_rss_mb=peak,
            extra={"hooks": hooks, "domains": domains, "events": posted.events,
                   "deliveries_pending": posted.deliveries, "rss_now_mb": rss_now,
                   "hooks_created_per_s": round(hooks / create_s, 1),
                   "events_ingested_per_s": round(posted.events / ingest_s, 1),
                   "worker": health.get("worker")},
        )  # fmt: skip


def _check_count(expected: int, count: int, label: str = "") -> int:
    """Say so when the receiver got fewer (lost) or more (duplicates) than expected; the number lost."""
    what = f"deliveries {label}" if label else "deliveries"
    lost = max(0, expected - count)
    if lost:
        print(f"!!! LOST {lost} of {expected} {what} (the receiver got {count})", flush=True)
    if count > expected:
        print(f"!!! {count - expected} DUPLICATE {what} ({count} for {expected})", flush=True)
    return lost


def _post_extra(posted: PostStats) -> dict[str, Any]:
    ordered = sorted(posted.post_ms)
    return {
        "posts": posted.requests, "late_posts": posted.late,
        "post_p50_ms": round(ordered[len(ordered) // 2], 2) if ordered else None,
        "post_max_ms": round(ordered[-1], 2) if ordered else None,
    }  # fmt: skip


def _limit_extra(limit_stats: dict[str, Any], requests: int) -> dict[str, Any]:
    """CPU per request of the limit phase (bench process and receiver) and its latency."""
    return {
        "limit_client_cpu_us_per_request": round(limit_stats["client_cpu_s"] * 1e6 / requests, 1),
        "limit_receiver_cpu_s": round(limit_stats["cpu_s"], 2), "limit_p50_ms": limit_stats["p50_ms"],
    }  # fmt: skip


async def _cleanup(what: str, action: Callable[[], Awaitable[None]], timeout_s: float = 20.0) -> None:
    """Remove a leftover, retrying while the service is away (a broker restart); say so if it stays."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            async with asyncio.timeout(10):
                await action()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                print(f"!!! could not remove {what}: {type(exc).__name__}: {exc}; remove it by hand", flush=True)
                return
            await asyncio.sleep(1.0)


async def _bounded_map(action: Callable[[int], Awaitable[None]], count: int, limit: int) -> None:
    """`action(0..count-1)`, `limit` at a time; the first failure stops the rest."""
    cursor = 0

    async def lane() -> None:
        nonlocal cursor
        while cursor < count:
            index = cursor
            cursor += 1
            await action(index)

    await asyncio.gather(*(lane() for _ in range(limit)))


def _venv_tool(name: str) -> str | None:
    import sys

    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def _probe_event() -> dict[str, str]:
    """An event the hook's binding routes but switchhook drops (no domain): proves the binding exists."""
    event = make_event(DOMAIN)
    for header in ("variable_domain_name", "Channel-Presence-ID", "Channel-Name", "Caller-Channel-Name"):
        event.pop(header, None)
    event["bench_ts"] = "0"
    return event


async def _wait_amqp_connected(server: Switchhook, session: aiohttp.ClientSession, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        report = await server.health(session)
        if (report.get("amqp") or {}).get("state") == "connected":
            return
        await asyncio.sleep(0.1)
    raise BenchFailure(f"switchhook's AMQP source did not connect within {timeout_s:g} s")


def _raise_first(done: set[asyncio.Task[None]]) -> None:
    """Retrieve every finished task's outcome (no "never retrieved" noise); raise the first failure."""
    failures = [task.exception() for task in done]
    for failure in failures:
        if failure is not None:
            raise failure


class _Publisher:
    """mod_amqp's part: one JSON event per message on the events exchange, with publisher confirms.

    Publishes on aio-pika's underlying aiormq channel: ~15 % less CPU per message than `Exchange.publish`,
    and on 2 cores the publisher competes with switchhook for CPU.
    """

    def __init__(self, connection: Any, channel: Any, exchange_name: str) -> None:
        from pamqp.commands import Basic

        self._connection = connection
        self._channel = channel
        self._exchange_name = exchange_name
        # Non-persistent JSON, as mod_amqp sends it.
        self._properties = Basic.Properties(content_type="application/json", delivery_mode=1)
        self.elapsed_s = 0.0

    @classmethod
    async def open(cls, url: str, exchange_name: str) -> _Publisher:
        import aio_pika

        connection = await aio_pika.connect(url, timeout=10)
        channel = await connection.channel(publisher_confirms=True)
        await channel.get_exchange(exchange_name, ensure=True)  # fails early if switchhook did not declare it
        return cls(connection, channel.channel, exchange_name)

    async def _publish_one(self, body: bytes, routing_key: str) -> None:
        from pamqp.commands import Basic

        confirm = await self._channel.basic_publish(
            body, exchange=self._exchange_name, routing_key=routing_key, properties=self._properties,
            mandatory=True, timeout=30,
        )  # fmt: skip
        if not isinstance(confirm, Basic.Ack):
            raise BenchFailure(f"the broker did not route an event ({type(confirm).__name__})")

    async def wait_bound(self, routing_key: str, probe: bytes, timeout_s: float = 20) -> None:
        """Publish a domain-less probe (mandatory) until the broker routes it: the hook's binding exists."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await self._publish_one(probe, routing_key)
                return
            except BenchFailure:
                if time.monotonic() > deadline:
                    raise BenchFailure(f"no binding routes {routing_key} after {timeout_s:g} s") from None
                await asyncio.sleep(0.1)

    async def publish(self, template: bytes, routing_key: str, count: int, window: int = 512) -> float:
        """Publish `count` stamped events, `window` unconfirmed at most; the epoch time of the first."""
        assert TS_PLACEHOLDER in template
        started_at = time.time()
        started = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()
        try:
            for _ in range(count):
                pending.add(asyncio.ensure_future(self._publish_one(stamp(template), routing_key)))
                if len(pending) >= window:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    _raise_first(done)
            done, pending = await asyncio.wait(pending, timeout=60)
            _raise_first(done)
            if pending:
                raise BenchFailure(f"{len(pending)} publishes were not confirmed within 60 s")
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.elapsed_s = time.perf_counter() - started
        return started_at

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._connection.close()
