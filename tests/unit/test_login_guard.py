"""The login guard as pure logic: the per-name slow-down counting tries in flight, and the bounded password checks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from switchhook.core.errors import RateLimited
from switchhook.services.login_guard import LoginThrottle, PasswordChecks
from tests.support.waiting import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: LoginThrottle, name: str) -> None:
    assert throttle.begin(name) == 0
    throttle.end(name, False)


def test_login_slow_down_after_five_failures_doubles_and_resets() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(5):
        fail(throttle, "root")
    assert throttle.begin("root") == 1  # refused: 1 s after the last try
    clock.now += 1
    fail(throttle, "root")
    assert throttle.begin("root") == 2
    for _ in range(10):
        clock.now += 30
        fail(throttle, "root")
    assert throttle.begin("root") == 30  # capped
    assert throttle.begin("someone-else") == 0
    throttle.end("someone-else", True)
    clock.now += 901
    assert throttle.begin("root") == 0  # the window passed
    throttle.end("root", False)
    assert throttle.begin("root") == 0
    throttle.end("root", True)  # a success forgets the failures
    for _ in range(5):
        fail(throttle, "root")


def test_tries_in_flight_count_so_concurrency_buys_a_guesser_nothing() -> None:
    """30 concurrent guesses all ran after the same wait (issue 13, item 8): now only the free ones begin."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    answers = [throttle.begin("root") for _ in range(30)]
    assert answers[:5] == [0] * 5
    assert answers[5:] == [1] * 25  # refused at once, told to come back in a second
    for _ in range(5):
        throttle.end("root", False)
    clock.now += 1
    assert [throttle.begin("root") for _ in range(3)] == [0, 2, 2]  # one try per (doubling) wait


def test_a_check_that_never_ran_counts_nothing() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, free_failures=1)
    assert throttle.begin("bob@d") == 0
    assert throttle.begin("bob@d") == 1  # one in flight uses the free try
    throttle.end("bob@d", None)  # e.g. refused as busy, or the store was down
    assert throttle.begin("bob@d") == 0


async def test_password_checks_run_at_most_concurrency_at_once_and_refuse_beyond_the_queue() -> None:
    checks = PasswordChecks(concurrency=2, queue=3)
    release = threading.Event()

    def check(n: int) -> int:
        release.wait(10)
        return n

    tasks = [asyncio.create_task(checks.run(check, n)) for n in range(5)]
    await asyncio.sleep(0)
    with pytest.raises(RateLimited) as refused:
        await checks.run(check, 99)
    assert refused.value.retry_after_s == 1
    release.set()
    assert await asyncio.gather(*tasks) == [0, 1, 2, 3, 4]
    assert (checks.checks, checks.peak_running, checks.refused["busy"]) == (5, 2, 1)
    assert await checks.run(check, 7) == 7  # room again
    checks.close()


async def test_a_cancelled_check_keeps_its_slot_until_its_thread_is_done() -> None:
    """A client that goes away must not free a slot while its argon2 still runs (or disconnects bypass the bound)."""
    checks = PasswordChecks(concurrency=1, queue=0)
    started, release = threading.Event(), threading.Event()

    def check() -> None:
        started.set()
        release.wait(10)

    task = asyncio.create_task(checks.run(check))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(RateLimited):
        await checks.run(check)  # the thread still runs: no room
    release.set()

    async def room() -> bool:
        try:
            await checks.run(lambda: None)
        except RateLimited:
            return False
        return True

    await eventually(room, "the slot to free once the cancelled check's thread finished")
    checks.close()
