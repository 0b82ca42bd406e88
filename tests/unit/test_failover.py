"""A hook's fallback URL, the pure decisions: when an attempt fails over, and where it starts while the primary is
paused (core/failover.py); the fallbackUrl field of the hook document (core/hooks.py, core/redact.py)."""

from __future__ import annotations

from typing import Any

import pytest

from switchhook.core.breaker import Breakers, Change, Health
from switchhook.core.errors import InvalidHook
from switchhook.core.failover import PAUSED, PrimaryCircuits, Route, failover_reason
from switchhook.core.hooks import MAX_FALLBACK_URL_CHARS, Hook, public_view, validate_hook
from switchhook.core.redact import MASK

H, U, N = Health.HEALTHY, Health.UNHEALTHY, Health.UNKNOWN


@pytest.mark.parametrize(
    ("status", "terminal", "no_answer", "reason"),
    [
        (None, False, "timeout", "timeout"),
        (None, False, "refused", "refused"),
        (None, False, "reset", "reset"),
        (None, False, "unreachable", "unreachable"),
        (None, False, None, "error"),  # no answer the sender could name (too many redirects, a bad response)
        (500, False, None, "http 500"),
        (503, False, None, "http 503"),
        (None, True, None, None),  # refused by our egress guard, an invalid URL: not the endpoint's doing
        (200, False, None, None),
        (302, False, None, None),
        (404, False, None, None),  # a 4xx is an answer
        (410, False, None, None),
        (429, False, None, None),
    ],
)
def test_which_primary_results_fail_over(
    status: int | None, terminal: bool, no_answer: str | None, reason: str | None
) -> None:
    assert failover_reason(status, terminal, no_answer) == reason


def test_the_primary_pauses_after_its_failures_and_attempts_go_straight_to_the_fallback() -> None:
    circuits = PrimaryCircuits(Breakers(threshold=2, first_cooldown_s=5, max_cooldown_s=20))
    assert circuits.route("h", "d1", 0.0) is Route.PRIMARY
    assert circuits.finished("h", "d1", U, 0.1) is None
    assert circuits.route("h", "d2", 0.2) is Route.PRIMARY
    assert circuits.finished("h", "d2", U, 0.3) is Change.OPENED  # its fallback answered or not: the primary is down
    assert [circuits.route("h", d, 1.0) for d in ("d3", "d4")] == [Route.FALLBACK, Route.FALLBACK]
    assert circuits.finished("h", "d3", N, 1.1) is None  # not sent: says nothing of the primary
    assert circuits.route("other", "d5", 1.0) is Route.PRIMARY  # one hook's primary only


def test_once_cooled_down_one_attempt_at_a_time_probes_the_primary_and_its_answer_resumes_it() -> None:
    circuits = PrimaryCircuits(Breakers(threshold=1, first_cooldown_s=5, max_cooldown_s=20))
    circuits.route("h", "d1", 0.0)
    assert circuits.finished("h", "d1", U, 0.0) is Change.OPENED
    assert circuits.route("h", "probe", 5.0) is Route.PRIMARY  # the cooldown is over: the probe
    assert circuits.probing("h") == "probe"
    assert circuits.route("h", "d2", 5.1) is Route.FALLBACK  # the probe is on its way: the others do not wait for it
    assert circuits.finished("h", "d2", N, 5.2) is None and circuits.probing("h") == "probe"
    assert circuits.finished("h", "probe", U, 5.5, started=5.0) is Change.OPENED  # failed: twice as long
    assert circuits.probing("h") is None
    assert circuits.route("h", "d3", 14.0) is Route.FALLBACK  # 5.5 + 10 s
    assert circuits.route("h", "probe2", 15.5) is Route.PRIMARY
    assert circuits.finished("h", "probe2", H, 15.6, started=15.5) is Change.CLOSED
    assert circuits.route("h", "d4", 15.7) is Route.PRIMARY


def test_a_probe_that_said_nothing_of_the_primary_lets_the_next_attempt_probe() -> None:
    circuits = PrimaryCircuits(Breakers(threshold=1, first_cooldown_s=1, max_cooldown_s=1))
    circuits.route("h", "d1", 0.0)
    circuits.finished("h", "d1", U, 0.0)
    assert circuits.route("h", "probe", 2.0) is Route.PRIMARY
    assert circuits.finished("h", "probe", N, 2.1) is None  # a 429, or the auth pre-request failed
    assert circuits.route("h", "next", 2.2) is Route.PRIMARY


def test_without_a_threshold_the_primary_is_never_paused() -> None:
    circuits = PrimaryCircuits(Breakers(0, 0.0, 0.0))
    for n in range(10):
        assert circuits.route("h", f"d{n}", float(n)) is Route.PRIMARY
        assert circuits.finished("h", f"d{n}", U, float(n)) is None
    assert PAUSED == "paused"


# -- the hook document ---------------------------------------------------------------------------------------------


def hook(url: str = "http://primary.example/hook", **action: Any) -> dict[str, Any]:
    return {"event": "DTMF", "enable": True, "action": {"type": "web", "method": "POST", "url": url, **action}}


def test_a_fallback_url_is_stored_and_compiled() -> None:
    doc = validate_hook(hook(fallbackUrl="https://fallback.example/hook?x=1"))
    assert doc["action"]["fallbackUrl"] == "https://fallback.example/hook?x=1"
    assert Hook.compile("a" * 24, "d", doc).fallback_url == "https://fallback.example/hook?x=1"
    assert Hook.compile("a" * 24, "d", validate_hook(hook())).fallback_url is None


def test_a_null_fallback_url_is_none() -> None:
    doc = validate_hook(hook(fallbackUrl=None))
    assert "fallbackUrl" not in doc["action"]


@pytest.mark.parametrize(
    ("fallback", "message"),
    [
        ("/relative", "action.fallbackUrl must be an absolute http or https URL."),
        ("ftp://fallback.example/x", "action.fallbackUrl must be an absolute http or https URL."),
        ("http://", "action.fallbackUrl must be an absolute http or https URL."),
        ("", "action.fallbackUrl must be an absolute http or https URL, or null."),
        (42, "action.fallbackUrl must be an absolute http or https URL, or null."),
        (["http://x/"], "action.fallbackUrl must be an absolute http or https URL, or null."),
        ("http://fallback.example:99999/", "action.fallbackUrl has an invalid port."),
        ("http://fallback.example/\nx", "action.fallbackUrl must not contain control characters."),
        ("http://[::1/", "action.fallbackUrl is not a valid URL."),
        (
            "http://fallback.example/" + "x" * MAX_FALLBACK_URL_CHARS,
            f"action.fallbackUrl must be at most {MAX_FALLBACK_URL_CHARS} characters with a fallbackUrl set.",
        ),
        ("http://primary.example/hook", "action.fallbackUrl must differ from action.url."),
    ],
)
def test_a_bad_fallback_url_is_refused(fallback: Any, message: str) -> None:
    with pytest.raises(InvalidHook) as caught:
        validate_hook(hook(fallbackUrl=fallback))
    assert str(caught.value) == "Bad request: " + message


def test_with_a_fallback_the_primary_url_is_bounded_too() -> None:
    """X-Original-Url carries it: an 8 KiB header line would be refused by most receivers."""
    long_primary = "http://primary.example/" + "x" * MAX_FALLBACK_URL_CHARS
    validate_hook(hook(long_primary))  # without a fallback: as before
    with pytest.raises(InvalidHook, match=r"action\.url must be at most"):
        validate_hook(hook(long_primary, fallbackUrl="http://fallback.example/"))


def test_the_fallback_password_is_masked_on_reads_and_kept_when_sent_back() -> None:
    stored = validate_hook(hook("http://u:p1@primary.example/", fallbackUrl="http://u:p2@fallback.example/"))
    shown = public_view(stored, "a" * 24, "d")
    assert shown["action"]["fallbackUrl"] == f"http://u:{MASK}@fallback.example/"
    assert validate_hook(shown, previous=stored)["action"] == stored["action"]  # GET then PUT


def test_a_masked_header_is_not_kept_when_the_fallback_moves_elsewhere() -> None:
    """Headers go to the fallback too: moving it with a masked credential would send the credential there."""
    stored = validate_hook({**hook(fallbackUrl="http://fallback.example/"), "headers": {"Authorization": "Bearer s"}})
    shown = public_view(stored, "a" * 24, "d")
    assert shown["headers"]["Authorization"] == MASK
    moved = {**shown, "action": {**shown["action"], "fallbackUrl": "http://attacker.example/"}}
    with pytest.raises(InvalidHook, match="Authorization"):
        validate_hook(moved, previous=stored)
    added = {**public_view(validate_hook({**hook(), "headers": {"Authorization": "Bearer s"}}), "a" * 24, "d")}
    added["action"] = {**added["action"], "fallbackUrl": "http://attacker.example/"}
    with pytest.raises(InvalidHook, match="Authorization"):
        validate_hook(added, previous=validate_hook({**hook(), "headers": {"Authorization": "Bearer s"}}))
    assert validate_hook(shown, previous=stored)["headers"] == {"Authorization": "Bearer s"}
