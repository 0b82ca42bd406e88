"""core/alerts.py: the alert events switchhook builds, and the storm guard's windows (docs/alerts.md)."""

from __future__ import annotations

from switchhook.core import ids
from switchhook.core.alerts import (
    DELIVERY_FAILED,
    HOOK_PAUSED,
    SUBCLASSES,
    AlertEvents,
    FailureAlertLimiter,
    Verdict,
    hook_headers,
    is_alert_key,
    key_of,
    outcome_headers,
    scrub,
    seconds,
    url_origin,
)
from switchhook.core.events import event_domain, event_key

NOW = 1_764_900_000.25


def test_an_alert_is_a_custom_event_of_its_domain_with_a_timestamp_and_a_sequence() -> None:
    builder = AlertEvents("11111111-2222-3333-4444-555555555555", clock=lambda: NOW)
    first = builder.build(HOOK_PAUSED, "a.example", {"Hook-Id": "h1"})
    elsewhere = builder.build(HOOK_PAUSED, "b.example", {"Hook-Id": "h2"})
    second = builder.build(HOOK_PAUSED, "a.example", {"Hook-Id": "h1"})
    assert event_key(first) == "CUSTOM->switchhook::hook_paused" == key_of(HOOK_PAUSED)
    assert event_domain(first) == "a.example"
    assert first["Core-UUID"] == "11111111-2222-3333-4444-555555555555"
    assert first["Event-Date-Timestamp"] == "1764900000250000"
    assert first["Event-Date-GMT"] == "Fri, 05 Dec 2025 02:00:00 GMT"
    # Per domain: b.example's alert leaves no gap in a.example's (its count is not a.example's business).
    assert (first["Event-Sequence"], second["Event-Sequence"], elsewhere["Event-Sequence"]) == ("1", "2", "1")
    assert first["Hook-Id"] == "h1"
    assert all(isinstance(value, str) for value in first.values())  # as FreeSWITCH's own events


def test_two_alerts_and_two_runs_are_never_one_event_to_the_dedupe() -> None:
    run1, run2 = AlertEvents(clock=lambda: NOW), AlertEvents(clock=lambda: NOW)
    assert run1.core_uuid != run2.core_uuid
    alerts = [run1.build(HOOK_PAUSED, "a.example", {}), run1.build(HOOK_PAUSED, "a.example", {})]
    alerts.append(run2.build(HOOK_PAUSED, "a.example", {}))
    event_ids = {ids.event_id(alert, "a.example", "{}", "switchhook", NOW) for alert in alerts}
    assert len(event_ids) == 3
    # The same alert tried again (the database was away) is one event.
    again = ids.event_id(alerts[0], "a.example", "{}", "switchhook", NOW + 5)
    assert again == ids.event_id(alerts[0], "a.example", "{}", "switchhook", NOW)


def test_the_loop_guard_knows_every_alert_key_and_nothing_else() -> None:
    assert all(is_alert_key(key_of(subclass)) for subclass in SUBCLASSES)
    assert not is_alert_key("CUSTOM->engine::dialer_member_end")
    assert not is_alert_key("CHANNEL_HANGUP_COMPLETE")
    assert not is_alert_key("CUSTOM")


def test_a_hook_url_is_cut_to_its_origin() -> None:
    assert url_origin("https://user:secret@hooks.example.com:8443/services/T0/B0/XYZ?token=t#f") == (
        "https://hooks.example.com:8443"
    )
    assert url_origin("http://[::1]:9000/x") == "http://[::1]:9000"
    assert url_origin("not a url") == ""
    assert url_origin("http://[bad") == ""


def test_free_text_loses_the_credentials_of_any_url_it_quotes() -> None:
    text = "invalid destination URL 'https://crm:pa55@crm.example/hook?key=s3'; then http://x.example/p?q=1"
    assert scrub(text) == "invalid destination URL 'https://crm.example'; then http://x.example"
    assert scrub(None) == ""
    assert len(scrub("x" * 5000)) == 512


def test_what_an_alert_says_of_a_hook_and_an_outcome() -> None:
    headers = hook_headers("h1", ("DTMF", "CHANNEL_ANSWER"), "https://u:p@crm.example/x", "the CRM")
    assert headers == {
        "Hook-Id": "h1",
        "Hook-Events": "DTMF,CHANNEL_ANSWER",
        "Hook-Url": "https://crm.example",
        "Hook-Description": "the CRM",
    }
    assert "Hook-Description" not in hook_headers("h1", ("DTMF",), "https://crm.example", None)
    assert outcome_headers(503, None) == {"Last-Status": "503", "Last-Error": "HTTP 503"}
    assert outcome_headers(None, "connection refused") == {"Last-Error": "connection refused"}
    assert outcome_headers(None, None) == {}
    assert [seconds(s) for s in (30.0, 0.2, 1.2345, 0.0)] == ["30", "0.2", "1.234", "0"]


# -- the storm guard ---------------------------------------------------------------------------------------------------


def test_a_hook_raises_at_most_its_limit_per_window_then_one_summary() -> None:
    limiter: FailureAlertLimiter[int] = FailureAlertLimiter(per_hook=3, per_domain=100, window_s=60)
    verdicts = [limiter.admit("h1", "a.example", NOW + n / 100, n) for n in range(1000)]  # 1,000 failures in 10 s
    assert verdicts.count(Verdict.RAISE) == 3
    assert verdicts[:3] == [Verdict.RAISE] * 3
    assert limiter.due(NOW + 59.9) == []  # the window is not over
    (summary,) = limiter.due(NOW + 60)
    assert (summary.hook_id, summary.domain, summary.suppressed, summary.last) == ("h1", "a.example", 997, 999)
    assert limiter.due(NOW + 61) == []  # told once
    assert len(limiter) == 0  # and forgotten
    assert limiter.admit("h1", "a.example", NOW + 61, 0) is Verdict.RAISE  # a new window


def test_a_window_without_suppressed_failures_ends_without_a_summary() -> None:
    limiter: FailureAlertLimiter[int] = FailureAlertLimiter(per_hook=3, per_domain=100, window_s=60)
    limiter.admit("h1", "a.example", NOW, 1)
    assert limiter.due(NOW + 60) == []
    assert len(limiter) == 0


def test_a_failure_after_the_window_ends_it_with_its_summary() -> None:
    limiter: FailureAlertLimiter[int] = FailureAlertLimiter(per_hook=1, per_domain=100, window_s=60)
    limiter.admit("h1", "a.example", NOW, 1)
    limiter.admit("h1", "a.example", NOW + 1, 2)
    assert limiter.admit("h1", "a.example", NOW + 70, 3) is Verdict.RAISE  # before any `due`: a new window
    (summary,) = limiter.due(NOW + 70)
    assert (summary.suppressed, summary.last) == (1, 2)


def test_a_domain_shares_its_own_limit_among_its_hooks() -> None:
    limiter: FailureAlertLimiter[str] = FailureAlertLimiter(per_hook=10, per_domain=25, window_s=60)
    raised = 0
    for hook in range(50):
        for _ in range(10):
            raised += limiter.admit(f"h{hook}", "a.example", NOW, f"h{hook}") is Verdict.RAISE
    assert raised == 25
    assert limiter.admit("other", "b.example", NOW, "other") is Verdict.RAISE  # another domain's own limit
    summaries = limiter.due(NOW + 60)
    assert sum(s.suppressed for s in summaries) == 500 - 25
    assert len(summaries) == 48  # one per hook that had some held back (h0-h1 raised all ten, h2 half)


def test_the_limiter_holds_at_most_max_windows_and_summarises_the_oldest_it_closes() -> None:
    limiter: FailureAlertLimiter[int] = FailureAlertLimiter(per_hook=1, per_domain=10**6, window_s=60, max_windows=100)
    for hook in range(1000):
        limiter.admit(f"h{hook}", "a.example", NOW, 1)
        limiter.admit(f"h{hook}", "a.example", NOW, 2)
    assert len(limiter) == 100
    closed_early = limiter.due(NOW)  # closed early when room was needed: summarised, not lost
    assert len(closed_early) == 900 and {s.suppressed for s in closed_early} == {1}
    assert len(limiter.due(NOW + 60)) == 100


def test_next_due_is_the_oldest_window_end() -> None:
    limiter: FailureAlertLimiter[int] = FailureAlertLimiter(per_hook=1, per_domain=10, window_s=60)
    assert limiter.next_due() is None
    limiter.admit("h1", "a.example", NOW, 1)
    limiter.admit("h2", "a.example", NOW + 5, 1)
    assert limiter.next_due() == NOW + 60


def test_delivery_failed_is_the_only_limited_alert() -> None:
    assert DELIVERY_FAILED in SUBCLASSES and len(SUBCLASSES) == 5
