"""A hook whose endpoint is down is paused, probed, and resumed when it answers; nothing is lost meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import uvloop

from switchhook.store.base import SHELVED
from tests.support.app import BACKENDS, Harness, make_settings, running, running_on
from tests.support.receiver import Receiver, Reply


async def test_a_failing_endpoint_is_paused_then_probed_then_resumed(receiver: Receiver, tmp_path: Path) -> None:
    receiver.answer(503, 503, 503, 503)  # three failures open the circuit; the first probe fails too
    settings = make_settings(
        tmp_path,
        max_in_flight_per_hook=1,  # one at a time: the order of attempts is the order of answers
        breaker_failures=3,
        breaker_cooldown_s=0.5,
        breaker_max_cooldown_s=5,
    )
    async with running(settings) as app:
        token = await app.domain_token("down.example")
        action = {"type": "web", "method": "POST", "url": receiver.url("/down")}
        hook = {"event": "DTMF", "enable": True, "retries": 5, "delay": 1, "action": action}
        await app.create_hook("down.example", hook, token)
        events = [{"Event-Name": "DTMF", "variable_domain_name": "down.example", "n": str(n)} for n in range(10)]
        response = await app.post_events(events, token)
        assert response.status_code == 202

        requests = await receiver.wait_for(14, timeout_s=15)  # 10 events + 4 failed attempts retried

    at = [r.at for r in requests]
    assert at[3] - at[2] >= 0.45  # open: nothing sent for the first cooldown, then one probe
    assert at[4] - at[3] >= 0.95  # the probe failed: twice the cooldown
    assert at[5] - at[4] < 0.5  # the second probe succeeded: the backlog flows again
    delivered = sorted(int(r.json()["data"]["n"]) for r in requests[4:])
    assert delivered == list(range(10))  # each event once after the outage, the failed ones by their retries


async def test_a_paused_hook_keeps_one_delivery_in_memory_and_hands_the_rest_back(
    receiver: Receiver, tmp_path: Path
) -> None:
    """A dead endpoint's backlog must not hold the worker's room for the whole outage: many dead hooks would
    otherwise fill it and starve the healthy ones."""
    receiver.routes["/dead"] = Reply(503)
    settings = make_settings(
        tmp_path, max_in_flight_per_hook=2, breaker_failures=2, breaker_cooldown_s=30, breaker_max_cooldown_s=30
    )
    async with running(settings) as app:
        token = await app.domain_token("dead.example")
        action = {"type": "web", "method": "POST", "url": receiver.url("/dead")}
        await app.create_hook("dead.example", {"event": "DTMF", "enable": True, "action": action}, token)
        events = [{"Event-Name": "DTMF", "variable_domain_name": "dead.example", "n": str(n)} for n in range(30)]
        assert (await app.services.events.accept(events, source="http")).deliveries == 30

        worker = app.runtime.worker
        assert worker is not None
        deadline = asyncio.get_running_loop().time() + 5
        while worker.queued + worker.in_flight > 1 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert worker.queued + worker.in_flight == 1  # the next probe, nothing else
        await asyncio.sleep(0.3)
        async with app.runtime.store.transaction() as tx:
            row = await tx.fetchrow(  # type: ignore[attr-defined]
                "SELECT count(*) AS n FROM deliveries WHERE status = 'pending' AND leased_by = ?"
                " AND lease_until IS NULL AND next_at > ?",
                SHELVED,
                time.time() + 60,
            )
        # Handed back to the store, shelved: out of the due range claims walk (a long outage's backlog must not
        # cost every claim), taken by hook once the hook may be tried again.
        assert int(row["n"]) == 27
        assert len(receiver.on("/dead")) == 2  # paused: nothing more was sent


# -- the probe schedule, repeated on the loop `switchhook serve` runs on ---------------------------------------------
#
# uvloop (cli.py) counts timers in whole milliseconds of a loop time read at the start of each loop turn, so a
# cooldown timer can fire a millisecond before the breaker's wall clock says the cooldown is over. The worker
# once took that for "still cooling down" and dropped the probe, with nothing left to send it: a paused hook then
# waited for a retry to fall due or for its shelf's ten-minute horizon. Each round has a fresh hook (a fresh
# circuit); the failed deliveries' retries are a minute off, so only the probe schedule can deliver in time.

RECOVERY_ROUNDS = 20
FAILING_ROUNDS = 5
FAILURES = 5  # breaker_failures: five failures pause the hook
COOLDOWN_S = 0.2  # then 0.4, the max: probes every 0.2-0.4 s
SETTLE_S = 10.0  # a deadline for what the schedule promises in about a second; a lost probe waits 60 s or 600 s


def on_uvloop(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    uvloop.run(scenario())


def breaker_app(tmp_path: Path, backend: str) -> AbstractAsyncContextManager[Harness]:
    return running_on(
        backend,
        tmp_path,
        max_in_flight_per_hook=1,  # one at a time: the order of attempts is the order of answers
        breaker_failures=FAILURES,
        breaker_cooldown_s=COOLDOWN_S,
        breaker_max_cooldown_s=2 * COOLDOWN_S,
    )


async def paused_hook(app: Harness, url: str, domain: str, count: int) -> None:
    """A hook to `url` in a domain of its own and `count` events for it: 16 wait in memory (16 x cap 1), the rest
    on its shelf."""
    token = await app.domain_token(domain)
    action = {"type": "web", "method": "POST", "url": url}
    await app.create_hook(domain, {"event": "DTMF", "enable": True, "retries": 5, "delay": 60, "action": action}, token)
    events = [{"Event-Name": "DTMF", "variable_domain_name": domain, "n": str(n)} for n in range(count)]
    assert (await app.services.events.accept(events, source="http")).deliveries == count


@BACKENDS
def test_six_failures_then_an_answer_resume_the_hook_every_time(tmp_path: Path, backend: str) -> None:
    """Five failures pause the hook, the probe after 0.2 s fails too (the sixth), the one 0.4 s later is answered:
    every waiting event is then delivered at once, round after round."""

    async def rounds() -> None:
        async with Receiver() as receiver, breaker_app(tmp_path, backend) as app:
            for n in range(RECOVERY_ROUNDS):
                path = f"/recovers/{n}"
                receiver.answer(*[503] * (FAILURES + 1))
                await paused_hook(app, receiver.url(path), f"recovers-{n}.example", 30)
                try:
                    await receiver.wait_for(30, timeout_s=SETTLE_S, path=path)  # 6 failed, 24 delivered
                except AssertionError as exc:
                    raise AssertionError(f"round {n}: {exc}") from None
                answered = [r.json()["data"]["n"] for r in receiver.on(path)[FAILURES + 1 :]]
                assert len(set(answered)) == 24, f"round {n}: each waiting event once"

    on_uvloop(rounds)


@BACKENDS
def test_an_endpoint_that_keeps_failing_is_probed_at_every_cooldown(tmp_path: Path, backend: str) -> None:
    """Every cooldown ends in a probe, whatever the one before it met: six probes in a row, round after round."""

    async def rounds() -> None:
        async with Receiver() as receiver, breaker_app(tmp_path, backend) as app:
            for n in range(FAILING_ROUNDS):
                path = f"/down/{n}"
                receiver.routes[path] = Reply(503)
                await paused_hook(app, receiver.url(path), f"down-{n}.example", 30)
                try:  # the five that paused it, then a probe per cooldown (0.2 + 5 x 0.4 s)
                    await receiver.wait_for(FAILURES + 6, timeout_s=SETTLE_S, path=path)
                except AssertionError as exc:
                    raise AssertionError(f"round {n}: {exc}") from None
                receiver.routes[path] = Reply(200)  # let the round's hook drain before the next round

    on_uvloop(rounds)
