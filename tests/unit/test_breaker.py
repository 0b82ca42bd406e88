"""The per-hook circuit breaker: when it opens, what it lets through, when it closes."""

from __future__ import annotations

import pytest

from switchhook.core.breaker import Breakers, Change, Health, health_of

H, U, N = Health.HEALTHY, Health.UNHEALTHY, Health.UNKNOWN


@pytest.mark.parametrize(
    ("status", "terminal", "health"),
    [
        (200, False, H),
        (204, False, H),
        (302, False, H),  # a redirect is a failed delivery, but the endpoint is up
        (404, False, H),
        (410, False, H),
        (429, False, N),  # rate limiting says nothing about being down
        (500, False, U),
        (503, False, U),
        (None, False, U),  # timeout, refused, reset
        (None, True, N),  # refused by our egress guard or an unbuildable request: not the endpoint's doing
    ],
)
def test_what_an_attempt_says_about_the_endpoint(status: int | None, terminal: bool, health: Health) -> None:
    assert health_of(status, terminal) is health


def test_opens_after_threshold_consecutive_failures_and_a_success_in_between_resets() -> None:
    breakers = Breakers(threshold=3, first_cooldown_s=5, max_cooldown_s=60)
    assert [breakers.record("h", U, 0.0) for _ in range(2)] == [None, None]
    assert breakers.record("h", H, 0.1) is None  # closed all along: nothing to report
    assert [breakers.record("h", U, 1.0) for _ in range(2)] == [None, None]
    assert breakers.record("h", N, 1.0) is None  # unknown does not count either way
    assert breakers.cap("h", 1.0, 32) == 32
    assert breakers.record("h", U, 1.0) is Change.OPENED
    assert breakers.is_open("h", 1.0) and breakers.tripped() == ["h"]
    assert breakers.cap("h", 5.9, 32) == 0
    assert breakers.cap("other", 5.9, 32) == 32  # per hook


def test_late_failures_of_requests_sent_before_it_opened_do_not_extend_the_pause() -> None:
    breakers = Breakers(threshold=1, first_cooldown_s=5, max_cooldown_s=60)
    assert breakers.record("h", U, 0.0) is Change.OPENED
    assert breakers.record("h", U, 2.0) is None
    assert breakers.reopens_at("h") == 5.0


def test_half_open_lets_one_probe_through_and_its_answer_decides() -> None:
    breakers = Breakers(threshold=1, first_cooldown_s=5, max_cooldown_s=15)
    breakers.record("h", U, 0.0)
    assert breakers.cap("h", 5.0, 32) == 1  # cooldown over: one request at a time
    assert not breakers.is_open("h", 5.0) and breakers.tripped() == ["h"]
    assert breakers.record("h", U, 6.0) is Change.OPENED  # the probe failed: twice as long
    assert breakers.reopens_at("h") == 16.0
    assert breakers.record("h", U, 16.5) is Change.OPENED
    assert breakers.reopens_at("h") == 31.5  # capped at max_cooldown_s
    assert breakers.record("h", H, 32.0) is Change.CLOSED
    assert breakers.cap("h", 32.0, 32) == 32 and breakers.tripped() == []
    assert breakers.record("h", U, 33.0) is Change.OPENED  # a fresh start: the first cooldown again
    assert breakers.reopens_at("h") == 38.0


def test_threshold_zero_never_opens() -> None:
    breakers = Breakers(threshold=0, first_cooldown_s=5, max_cooldown_s=60)
    assert all(breakers.record("h", U, float(n)) is None for n in range(100))
    assert breakers.cap("h", 100.0, 32) == 32


def test_a_request_sent_before_the_circuit_opened_is_not_a_failed_probe() -> None:
    breakers = Breakers(threshold=1, first_cooldown_s=5, max_cooldown_s=60)
    assert breakers.record("h", U, 15.0, started=0.0) is Change.OPENED  # 15 s timeouts, all sent at 0
    assert breakers.record("h", U, 21.0, started=0.0) is None  # cooldown over, but this one is old news
    assert breakers.reopens_at("h") == 20.0
    assert breakers.record("h", U, 22.0, started=20.5) is Change.OPENED  # the real probe failed
    assert breakers.reopens_at("h") == 32.0
