"""The retry schedule and outcome classification (docs/behaviour.md): pure functions of status, attempts, time."""

from __future__ import annotations

import datetime
from email.utils import format_datetime
from typing import Any

import pytest

from switchhook.core.retry import (
    BACKOFF_CAP_S,
    BACKOFF_START_S,
    JITTER,
    RETRY_AFTER_MAX_S,
    RETRY_AFTER_MIN_S,
    Delivered,
    GiveUp,
    Outcome,
    Retry,
    backoff_s,
    decide,
    parse_retry_after,
)

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
ALMOST_ONE = 0.999_999_999


def http_date(epoch_s: float) -> str:
    return format_datetime(datetime.datetime.fromtimestamp(epoch_s, datetime.UTC), usegmt=True)


def outcome(**overrides: Any) -> Outcome:
    """decide() for the first failed attempt of a hook with default retries (3: four attempts)."""
    arguments: dict[str, Any] = {
        "status": 500,
        "error": None,
        "terminal_error": False,
        "retry_after": None,
        "attempts_done": 1,
        "max_attempts": 4,
        "delay_s": None,
        "expires_at": None,
        "now": NOW,
        "jitter_unit": 0.5,
    }
    arguments.update(overrides)
    return decide(**arguments)


def test_constants_match_the_spec() -> None:
    assert BACKOFF_START_S == 5.0
    assert BACKOFF_CAP_S == 3600.0
    assert JITTER == 0.2
    assert (RETRY_AFTER_MIN_S, RETRY_AFTER_MAX_S) == (1.0, 3600.0)


# --- backoff_s -----------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts_done", [1, 2, 5, 50])
@pytest.mark.parametrize("delay_s", [1, 60, 60.5, 86_400])
def test_fixed_delay_ignores_attempts_and_jitter(attempts_done: int, delay_s: float) -> None:
    for jitter_unit in (0.0, 0.5, ALMOST_ONE):
        assert backoff_s(attempts_done, delay_s, jitter_unit) == float(delay_s)


@pytest.mark.parametrize("delay_s", [None, 0, -5])
def test_no_positive_delay_means_exponential_backoff(delay_s: float | None) -> None:
    assert backoff_s(1, delay_s, 0.5) == 5.0


@pytest.mark.parametrize(
    ("attempts_done", "expected_s"),
    [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (5, 80.0), (8, 640.0), (10, 2560.0), (11, 3600.0)],
)
def test_exponential_backoff_doubles_from_five_seconds(attempts_done: int, expected_s: float) -> None:
    assert backoff_s(attempts_done, None, 0.5) == pytest.approx(expected_s)


def test_backoff_before_any_attempt_is_the_start() -> None:
    assert backoff_s(0, None, 0.5) == 5.0


@pytest.mark.parametrize("attempts_done", [11, 12, 30, 31, 100, 10_000])
def test_backoff_is_capped_at_one_hour(attempts_done: int) -> None:
    for jitter_unit in (0.0, 0.5, ALMOST_ONE):
        assert backoff_s(attempts_done, None, jitter_unit) <= BACKOFF_CAP_S
    assert backoff_s(attempts_done, None, 0.5) == BACKOFF_CAP_S


@pytest.mark.parametrize("attempts_done", [1, 2, 3, 6, 10])
def test_jitter_stays_within_twenty_percent(attempts_done: int) -> None:
    base = BACKOFF_START_S * 2 ** (attempts_done - 1)
    low = backoff_s(attempts_done, None, 0.0)
    high = backoff_s(attempts_done, None, ALMOST_ONE)
    assert low == pytest.approx(base * 0.8)
    assert high == pytest.approx(base * 1.2, rel=1e-6)
    assert high < base * 1.2
    for step in range(101):
        wait = backoff_s(attempts_done, None, step / 101)
        assert base * 0.8 <= wait < base * 1.2


def test_jitter_is_monotonic_in_the_unit() -> None:
    waits = [backoff_s(3, None, step / 20) for step in range(20)]
    assert waits == sorted(waits)
    assert len(set(waits)) == 20


def test_jitter_near_the_cap_never_exceeds_it() -> None:
    assert backoff_s(10, None, ALMOST_ONE) == pytest.approx(3072.0, rel=1e-6)  # 2560 s + 20 %
    # At the cap the base is 1 h and jitter still spreads retries below it (no herd at exactly 1 h).
    assert backoff_s(11, None, 0.0) == pytest.approx(2880.0)
    assert backoff_s(11, None, ALMOST_ONE) == BACKOFF_CAP_S
    assert backoff_s(1000, None, 0.0) == pytest.approx(2880.0)


# --- parse_retry_after ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 120 ", 120.0),
        ("1", 1.0),
        ("0", 1.0),  # clamped up
        ("3600", 3600.0),
        ("3601", 3600.0),  # clamped down
        ("99999999999999999999999", 3600.0),
    ],
)
def test_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_http_date() -> None:
    assert parse_retry_after(http_date(NOW + 90), NOW) == pytest.approx(90.0)
    assert parse_retry_after(http_date(NOW - 90), NOW) == 1.0
    assert parse_retry_after(http_date(NOW + 7200), NOW) == 3600.0


def test_retry_after_obsolete_http_date_formats_are_gmt() -> None:
    when = datetime.datetime.fromtimestamp(NOW + 300, datetime.UTC)
    asctime = when.strftime("%a %b %d %H:%M:%S %Y")
    rfc850 = when.strftime("%A, %d-%b-%y %H:%M:%S GMT")
    minus_zero = when.strftime("%a, %d %b %Y %H:%M:%S -0000")
    for value in (asctime, rfc850, minus_zero):
        assert parse_retry_after(value, NOW) == pytest.approx(300.0), value


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "-5", "1.5", "²", "١٢", "Mon, 01 Jan 99999 00:00:00 GMT", "Wed, 32 Oct 2015"],
)
def test_unusable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


# --- decide: success and failure -----------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert outcome(status=status) == Delivered(status)


def test_2xx_is_delivered_even_on_the_last_attempt_and_past_ttl() -> None:
    assert outcome(status=200, attempts_done=4, max_attempts=4, expires_at=NOW - 1) == Delivered(200)


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
def test_3xx_is_a_failure_not_followed(status: int) -> None:
    result = outcome(status=status)
    assert isinstance(result, Retry)
    assert result.reason == f"HTTP {status}"


@pytest.mark.parametrize("status", [100, 199, 400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504, 599])
def test_other_statuses_retry(status: int) -> None:
    result = outcome(status=status)
    assert isinstance(result, Retry)
    assert result.at == NOW + 5.0
    assert result.reason == f"HTTP {status}"


def test_410_gone_gives_up_and_leaves_the_hook_enabled_by_default() -> None:
    result = outcome(status=410)
    assert isinstance(result, GiveUp)
    assert result.disable_hook is False
    assert "410" in result.reason
    assert "disableOnGone" in result.reason


def test_410_gone_disables_the_hook_when_it_opts_in() -> None:
    result = outcome(status=410, disable_on_gone=True)
    assert isinstance(result, GiveUp)
    assert result.disable_hook is True
    assert result.reason == "HTTP 410 Gone: hook disabled"


@pytest.mark.parametrize("disable_on_gone", [False, True])
def test_410_gives_up_even_with_attempts_left_or_on_the_last_one(disable_on_gone: bool) -> None:
    first = outcome(status=410, attempts_done=1, max_attempts=101, disable_on_gone=disable_on_gone)
    assert first == outcome(status=410, attempts_done=4, disable_on_gone=disable_on_gone)
    assert isinstance(first, GiveUp)


def test_other_give_ups_do_not_disable_the_hook() -> None:
    for result in (
        outcome(status=500, attempts_done=4),
        outcome(status=None, error="refused", terminal_error=True),
        outcome(status=500, expires_at=NOW + 1),
    ):
        assert isinstance(result, GiveUp)
        assert result.disable_hook is False


def test_transport_error_retries_with_its_message() -> None:
    result = outcome(status=None, error="connect timeout")
    assert result == Retry(NOW + 5.0, "connect timeout")


def test_transport_error_without_a_message() -> None:
    result = outcome(status=None, error=None)
    assert isinstance(result, Retry)
    assert result.reason == "request failed"


def test_terminal_error_gives_up_at_once() -> None:
    result = outcome(status=None, error="egress refused: 169.254.169.254 is link-local", terminal_error=True)
    assert result == GiveUp("egress refused: 169.254.169.254 is link-local")


# --- decide: attempts ----------------------------------------------------------------------------


@pytest.mark.parametrize("retries", [0, 1, 3, 100])
def test_retries_means_one_plus_retries_attempts(retries: int) -> None:
    max_attempts = 1 + retries
    for attempts_done in range(1, max_attempts):
        assert isinstance(outcome(attempts_done=attempts_done, max_attempts=max_attempts), Retry)
    final = outcome(attempts_done=max_attempts, max_attempts=max_attempts)
    assert isinstance(final, GiveUp)
    assert f"gave up after {max_attempts} attempt(s)" in final.reason
    assert final.reason.startswith("HTTP 500")


def test_zero_retries_never_retries() -> None:
    assert isinstance(outcome(attempts_done=1, max_attempts=1), GiveUp)


def test_attempts_beyond_the_maximum_give_up() -> None:
    assert isinstance(outcome(attempts_done=9, max_attempts=4), GiveUp)


def test_schedule_with_backoff_grows() -> None:
    waits = [outcome(attempts_done=n, max_attempts=20, jitter_unit=0.5) for n in range(1, 6)]
    assert [w.at - NOW for w in waits if isinstance(w, Retry)] == [5.0, 10.0, 20.0, 40.0, 80.0]


def test_schedule_with_a_fixed_delay() -> None:
    for attempts_done in (1, 2, 3):
        result = outcome(attempts_done=attempts_done, delay_s=60.0, jitter_unit=0.0)
        assert result == Retry(NOW + 60.0, "HTTP 500")


def test_jitter_reaches_decide() -> None:
    low = outcome(jitter_unit=0.0)
    high = outcome(jitter_unit=ALMOST_ONE)
    assert isinstance(low, Retry)
    assert isinstance(high, Retry)
    assert low.at == pytest.approx(NOW + 4.0)
    assert high.at == pytest.approx(NOW + 6.0, abs=1e-6)


# --- decide: Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_on_429_and_503(status: int) -> None:
    assert outcome(status=status, retry_after="120") == Retry(NOW + 120.0, f"HTTP {status}")
    result = outcome(status=status, retry_after=http_date(NOW + 42))
    assert isinstance(result, Retry)
    assert result.at == pytest.approx(NOW + 42.0)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_overrides_a_fixed_delay(status: int) -> None:
    assert outcome(status=status, retry_after="7", delay_s=600.0) == Retry(NOW + 7.0, f"HTTP {status}")


@pytest.mark.parametrize(("value", "wait_s"), [("0", 1.0), ("86400", 3600.0)])
def test_retry_after_is_clamped(value: str, wait_s: float) -> None:
    assert outcome(status=429, retry_after=value) == Retry(NOW + wait_s, "HTTP 429")


@pytest.mark.parametrize("status", [500, 502, 504, 408, 301])
def test_retry_after_is_ignored_on_other_statuses(status: int) -> None:
    assert outcome(status=status, retry_after="120") == Retry(NOW + 5.0, f"HTTP {status}")


def test_invalid_retry_after_falls_back_to_the_schedule() -> None:
    assert outcome(status=503, retry_after="later") == Retry(NOW + 5.0, "HTTP 503")
    assert outcome(status=503, retry_after="later", delay_s=30.0) == Retry(NOW + 30.0, "HTTP 503")


def test_retry_after_does_not_grant_extra_attempts() -> None:
    assert isinstance(outcome(status=429, retry_after="1", attempts_done=4, max_attempts=4), GiveUp)


# --- decide: ttl ---------------------------------------------------------------------------------


def test_retry_before_expiry_is_scheduled() -> None:
    assert outcome(expires_at=NOW + 5.001) == Retry(NOW + 5.0, "HTTP 500")


@pytest.mark.parametrize("expires_in_s", [5.0, 4.99, 1.0, 0.0, -100.0])
def test_retry_that_would_land_at_or_after_expiry_gives_up(expires_in_s: float) -> None:
    result = outcome(expires_at=NOW + expires_in_s)
    assert isinstance(result, GiveUp)
    assert "ttl" in result.reason
    assert result.reason.startswith("HTTP 500")


def test_retry_after_beyond_ttl_gives_up() -> None:
    result = outcome(status=429, retry_after="600", expires_at=NOW + 300)
    assert isinstance(result, GiveUp)
    assert "ttl" in result.reason


def test_fixed_delay_beyond_ttl_gives_up() -> None:
    assert isinstance(outcome(delay_s=60.0, expires_at=NOW + 59), GiveUp)
    assert isinstance(outcome(delay_s=60.0, expires_at=NOW + 61), Retry)


def test_outcomes_are_frozen_values() -> None:
    result = Retry(NOW, "x")
    with pytest.raises(AttributeError):
        result.at = 0.0  # type: ignore[misc]
    assert GiveUp("x") == GiveUp("x", disable_hook=False)
    assert Delivered(200) != Delivered(204)


def test_a_retry_that_would_fall_past_the_ttl_gives_up_as_expired() -> None:
    outcome = decide(
        status=503,
        error=None,
        terminal_error=False,
        retry_after=None,
        attempts_done=1,
        max_attempts=5,
        delay_s=60,
        expires_at=1_000.0 + 30,
        now=1_000.0,
        jitter_unit=0.5,
    )
    assert isinstance(outcome, GiveUp) and outcome.expired and "ttl" in outcome.reason
    plain_failure = decide(
        status=503,
        error=None,
        terminal_error=False,
        retry_after=None,
        attempts_done=5,
        max_attempts=5,
        delay_s=60,
        expires_at=None,
        now=1_000.0,
        jitter_unit=0.5,
    )
    assert isinstance(plain_failure, GiveUp) and not plain_failure.expired
