"""switchhook's own alerts (docs/alerts.md): events of the affected hook's domain, through the normal pipeline.

Each alert reaches a subscriber of its domain and never another domain's; filters and templates apply; a dead
alert subscriber makes no alert about itself (the loop guard); a dead endpoint under load makes at most the storm
guard's alerts plus summaries; nothing is stored when no hook subscribes.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from switchhook.core.alerts import SUBCLASSES, key_of
from switchhook.services.alerts import FAILED_ALERTS_PER_HOOK, FAILED_ALERTS_WINDOW_S, AlertsService
from tests.support.app import BACKENDS, Harness, make_settings, running, running_on, store_settings
from tests.support.process import free_port
from tests.support.receiver import Receiver, Reply
from tests.support.waiting import eventually

ALERT_KEYS = [key_of(subclass) for subclass in SUBCLASSES]


def alerts_of(app: Harness) -> AlertsService:
    alerts = app.runtime.alerts
    assert alerts is not None
    return alerts


def hook(event: str | list[str], url: str, **extra: Any) -> dict[str, Any]:
    """A hook sending `event` to `url` with no retries (each failed delivery fails for good at once), unless `extra`
    says otherwise."""
    return {
        "event": event,
        "enable": True,
        "retries": 0,
        "action": {"type": "web", "method": "POST", "url": url},
        **extra,
    }


def alert_hook(url: str, **extra: Any) -> dict[str, Any]:
    return hook(ALERT_KEYS, url, **extra)


def dtmf_events(domain: str, numbers: range) -> list[dict[str, str]]:
    return [{"Event-Name": "DTMF", "variable_domain_name": domain, "n": str(n)} for n in numbers]


def web(path: str, receiver: Receiver) -> dict[str, str]:
    return {"type": "web", "method": "POST", "url": receiver.url(path)}


def event_of(request: Any) -> dict[str, Any]:
    data: dict[str, Any] = request.json()["data"]
    return data


def subclasses(received: list[dict[str, Any]]) -> list[str]:
    return [event["Event-Subclass"] for event in received]


async def stored_alerts(app: Harness) -> list[dict[str, Any]]:
    """Every alert event stored (raised), whoever received it."""
    async with app.runtime.store.transaction() as tx:
        rows = await tx.fetch("SELECT payload FROM events WHERE source = 'switchhook'")  # type: ignore[attr-defined]
    return [orjson.loads(row["payload"]) for row in rows]


async def pending_deliveries(app: Harness) -> int:
    async with app.runtime.store.transaction() as tx:
        row = await tx.fetchrow("SELECT count(*) AS n FROM deliveries WHERE status = 'pending'")  # type: ignore[attr-defined]
    return int(row["n"])


@BACKENDS
async def test_each_alert_reaches_its_domain_and_never_another(
    receiver: Receiver, tmp_path: Path, backend: str
) -> None:
    async with running_on(
        backend,
        tmp_path,
        max_in_flight_per_hook=1,
        breaker_failures=2,
        breaker_cooldown_s=0.2,
        breaker_max_cooldown_s=0.4,
    ) as app:
        hook_ids: dict[str, set[str]] = {}
        first_answers: dict[str, asyncio.Event] = {}
        for domain in ("a.example", "b.example"):
            token = await app.domain_token(domain)
            await app.create_hook(domain, alert_hook(receiver.url(f"/alerts/{domain}")), token)
            first_answers[domain] = asyncio.Event()
            receiver.routes[f"/flaky/{domain}"] = Reply(503, gate=first_answers[domain])
            receiver.routes[f"/gone/{domain}"] = Reply(410)
            # Credentials in the URL: an alert carries its origin only.
            flaky_url = receiver.url(f"/flaky/{domain}").replace("//", "//crm:pa55@") + "?key=s3"
            flaky = hook("DTMF", flaky_url, description="the CRM")
            gone = {
                "event": "DTMF",
                "enable": True,
                "disableOnGone": True,
                "action": {"type": "web", "method": "POST", "url": receiver.url(f"/gone/{domain}")},
            }
            hook_ids[domain] = {await app.create_hook(domain, flaky, token), await app.create_hook(domain, gone, token)}
            events = [
                {"Event-Name": "DTMF", "variable_domain_name": domain, "Unique-ID": f"call-{n}"} for n in range(3)
            ]
            assert (await app.post_events(events, token)).status_code == 202

        def got(domain: str) -> list[dict[str, Any]]:
            return [event_of(r) for r in receiver.on(f"/alerts/{domain}")]

        wanted = {
            "switchhook::hook_paused",
            "switchhook::hook_resumed",
            "switchhook::hook_disabled",
            "switchhook::delivery_failed",
        }

        async def fail_twice_then_answer(domain: str) -> None:
            """The flaky hook's two requests fail (the breaker pauses it) and its probe is answered. Each reply is
            chosen while the request before it is held, so no timing decides which request gets which."""
            path = f"/flaky/{domain}"
            await receiver.wait_for(1, path=path)
            second_answer = asyncio.Event()
            receiver.routes[path] = Reply(503, gate=second_answer)
            first_answers[domain].set()
            await receiver.wait_for(2, path=path)
            receiver.routes[path] = Reply(200)  # the probe's
            second_answer.set()

        await asyncio.gather(*(fail_twice_then_answer(domain) for domain in ("a.example", "b.example")))
        for domain in ("a.example", "b.example"):
            await eventually(
                partial(lambda d: wanted <= set(subclasses(got(d))), domain),
                f"{domain}'s four alerts",
                10,
                partial(lambda d: str(subclasses(got(d))), domain),
            )

        core_uuid = alerts_of(app).builder.core_uuid
        for domain in ("a.example", "b.example"):
            received = got(domain)
            assert {event["Hook-Id"] for event in received} <= hook_ids[domain]  # never another domain's hook
            assert {event["variable_domain_name"] for event in received} == {domain}
            assert {event["Core-UUID"] for event in received} == {core_uuid}
            assert subclasses(received).count("switchhook::hook_paused") == 1  # once per pause, not per probe
            for event in received:
                assert event["Event-Name"] == "CUSTOM"
                assert int(event["Event-Date-Timestamp"]) > 0
                assert "pa55" not in orjson.dumps(event).decode() and "s3" not in event.get("Hook-Url", "")
            paused = next(e for e in received if e["Event-Subclass"] == "switchhook::hook_paused")
            assert paused["Hook-Url"] == receiver.base_url
            assert paused["Failures"] == "2" and paused["Last-Status"] == "503" and paused["Pause-Seconds"] == "0.2"
            assert paused["Hook-Events"] == "DTMF" and paused["Hook-Description"] == "the CRM"
            disabled = next(e for e in received if e["Event-Subclass"] == "switchhook::hook_disabled")
            assert disabled["Disabled-By"] == "gone" and disabled["Last-Status"] == "410"
            failed = [e for e in received if e["Event-Subclass"] == "switchhook::delivery_failed"]
            assert {e["Delivery-Event-Key"] for e in failed} == {"DTMF"}
            assert all(e["Call-Id"].startswith("call-") and e["Attempts"] == "1" for e in failed)
        for domain in ("a.example", "b.example"):
            sequences = sorted(int(e["Event-Sequence"]) for e in got(domain))
            # 1, 2, 3 ... in each domain: distinct (never de-duplicated into one another), and no gap telling of
            # the other domain's alerts
            assert sequences == list(range(1, len(sequences) + 1))


@BACKENDS
async def test_a_slack_style_template_and_a_filter_shape_the_alert(
    receiver: Receiver, tmp_path: Path, backend: str
) -> None:
    async with running_on(backend, tmp_path, breaker_failures=2, breaker_cooldown_s=30) as app:
        token = await app.domain_token("slack.example")
        receiver.routes["/dead"] = Reply(503)
        dead = await app.create_hook("slack.example", hook("DTMF", receiver.url("/dead"), retries=3, delay=60), token)
        slack = {
            "event": "CUSTOM->switchhook::hook_paused",
            "enable": True,
            "action": {"type": "web", "method": "POST", "url": receiver.url("/slack")},
            "filter": {"Hook-Id": {"operation": "==", "value": dead}},
            "customBody": True,
            "headers": {"Content-Type": "application/json"},
            "rawBody": '{"text": ":warning: hook ${Hook-Id} (${Hook-Url}) paused after ${Failures} failures:'
            ' ${Last-Error}; next try in ${Pause-Seconds} s"}',
        }
        await app.create_hook("slack.example", slack, token)
        elsewhere = {
            **slack,
            "filter": {"Hook-Id": {"operation": "==", "value": "0" * 24}},
            "action": {"type": "web", "method": "POST", "url": receiver.url("/other")},
        }
        await app.create_hook("slack.example", elsewhere, token)
        assert (await app.post_events(dtmf_events("slack.example", range(3)), token)).status_code == 202

        (request,) = await receiver.wait_for(1, path="/slack")
        assert request.json() == {
            "text": f":warning: hook {dead} ({receiver.base_url}) paused after 2 failures: HTTP 503; next try in 30 s"
        }
        assert request.headers["Content-Type"] == "application/json"
        await eventually(lambda: alerts_of(app).raised["switchhook::hook_paused"] == 1, "the alert stored")
        assert receiver.on("/other") == []  # its filter held the alert back


@BACKENDS
async def test_a_dead_alert_subscriber_makes_no_alert_about_itself(
    receiver: Receiver, tmp_path: Path, backend: str
) -> None:
    domain = "loop.example"
    async with running_on(
        backend,
        tmp_path,
        max_in_flight_per_hook=1,
        breaker_failures=2,
        breaker_cooldown_s=0.05,
        breaker_max_cooldown_s=0.1,
    ) as app:
        token = await app.domain_token(domain)
        dead_port = free_port()  # nothing listens: refused
        dead_subscriber = await app.create_hook(domain, alert_hook(f"http://127.0.0.1:{dead_port}/alerts"), token)
        await app.create_hook(domain, alert_hook(receiver.url("/alerts")), token)
        receiver.routes["/flaky"] = Reply(503)
        flaky_id = await app.create_hook(domain, hook("DTMF", receiver.url("/flaky")), token)
        assert (await app.post_events(dtmf_events(domain, range(6)), token)).status_code == 202

        async def settled() -> bool:
            """Every delivery finished: the flaky hook's and the dead subscriber's (each alert it was sent)."""
            return await pending_deliveries(app) == 0 and len(receiver.on("/flaky")) >= 6

        await eventually(settled, "every delivery finished", 15)
        stored = await stored_alerts(app)
        about = {event["Hook-Id"] for event in stored}
        assert about == {flaky_id}  # the flaky hook's pause and failures: nothing about the dead subscriber
        assert dead_subscriber not in {e["Hook-Id"] for e in map(event_of, receiver.on("/alerts"))}
        assert subclasses(stored).count("switchhook::hook_paused") == 1
        assert subclasses(stored).count("switchhook::delivery_failed") == 6


@BACKENDS
async def test_a_dead_endpoint_under_load_makes_at_most_the_limit_and_summaries(
    receiver: Receiver, tmp_path: Path, backend: str
) -> None:
    """3,000 deliveries failing for good within one storm-guard window (the guard's clock is turned by the test,
    so however fast they fail): 10 alerts, then one summary counting the 2,990 others when the window ends."""
    domain = "storm.example"
    failures = 3000
    # Never paused: every event fails at once, for good.
    async with running_on(backend, tmp_path, breaker_failures=0) as app:
        alerts = alerts_of(app)
        now = [time.time()]
        alerts._clock = lambda: now[0]  # the storm guard's windows, on the test's clock
        token = await app.domain_token(domain)
        await app.create_hook(domain, alert_hook(receiver.url("/alerts")), token)
        dead_id = await app.create_hook(domain, hook("DTMF", f"http://127.0.0.1:{free_port()}/"), token)
        for first in range(0, failures, 500):
            assert (await app.post_events(dtmf_events(domain, range(first, first + 500)), token)).status_code == 202
        failed = "switchhook::delivery_failed"
        await eventually(
            lambda: alerts.raised[failed] + alerts.suppressed == failures,
            "every failure alerted or held back",
            60,
            lambda: f"{alerts.raised[failed]} raised, {alerts.suppressed} held back",
        )
        assert (alerts.raised[failed], alerts.suppressed) == (FAILED_ALERTS_PER_HOOK, failures - FAILED_ALERTS_PER_HOOK)
        singles = [event_of(r) for r in await receiver.wait_for(FAILED_ALERTS_PER_HOOK, path="/alerts")]
        assert all(e["Suppressed"] == "0" and e["Hook-Id"] == dead_id for e in singles)

        now[0] += FAILED_ALERTS_WINDOW_S  # the window is over: its summary
        received = await receiver.wait_for(FAILED_ALERTS_PER_HOOK + 1, path="/alerts")
        summary = event_of(received[-1])
        assert summary["Event-Subclass"] == failed and summary["Hook-Id"] == dead_id
        assert summary["Suppressed"] == str(failures - FAILED_ALERTS_PER_HOOK) and summary["Window-Seconds"] == "60"
        await eventually(lambda: alerts.storing == 0, "every alert stored")
        assert alerts.raised[failed] == FAILED_ALERTS_PER_HOOK + 1  # 11 alerts for 3,000 failures, no more
        assert len(alerts.limiter) == 0  # the window forgotten
        metrics = (await app.client.get("/metrics")).text
        assert f"switchhook_alerts_suppressed_total {float(failures - FAILED_ALERTS_PER_HOOK)}" in metrics


@BACKENDS
async def test_no_subscriber_means_no_alert_stored(receiver: Receiver, tmp_path: Path, backend: str) -> None:
    async with running_on(
        backend, tmp_path, breaker_failures=2, breaker_cooldown_s=0.05, breaker_max_cooldown_s=0.1
    ) as app:
        token = await app.domain_token("quiet.example")
        # Another domain's alert subscriber: this domain's alerts are not its business.
        await app.create_hook("noisy.example", alert_hook(receiver.url("/alerts")))
        receiver.routes["/down"] = Reply(503)
        await app.create_hook("quiet.example", hook("DTMF", receiver.url("/down")), token)
        assert (await app.post_events(dtmf_events("quiet.example", range(4)), token)).status_code == 202
        await receiver.wait_for(2, path="/down")  # paused after two
        receiver.routes["/down"] = Reply(200)

        async def settled() -> bool:
            return await pending_deliveries(app) == 0

        await eventually(settled, "the hook resumed and every delivery finished")
        # A pause's and a resume's alerts would have been started before their deliveries were recorded.
        assert alerts_of(app).storing == 0
        assert await stored_alerts(app) == []
        assert sum(alerts_of(app).raised.values()) == 0
        # Not even built: the next alert of this run would be its first.
        assert alerts_of(app).builder.build("switchhook::hook_paused", "quiet.example", {})["Event-Sequence"] == "1"
        assert receiver.on("/alerts") == []


@BACKENDS
async def test_fallback_used_is_told_once_per_pause_of_the_primary(
    receiver: Receiver, tmp_path: Path, backend: str
) -> None:
    domain = "fallback.example"
    async with running_on(
        backend,
        tmp_path,
        max_in_flight_per_hook=1,
        breaker_failures=2,
        breaker_cooldown_s=0.2,
        breaker_max_cooldown_s=0.2,
    ) as app:
        alerts = alerts_of(app)
        token = await app.domain_token(domain)
        await app.create_hook(domain, alert_hook(receiver.url("/alerts")), token)
        await app.create_hook("other.example", alert_hook(receiver.url("/other")))  # another domain's subscriber
        receiver.routes["/primary"] = Reply(503)
        action = {"type": "web", "method": "POST", "url": receiver.url("/primary"), "fallbackUrl": receiver.url("/fb")}
        hook_id = await app.create_hook(domain, {"event": "DTMF", "enable": True, "action": action}, token)
        sent = 0

        async def post(count: int) -> None:
            nonlocal sent
            events = dtmf_events(domain, range(sent, sent + count))
            sent += count
            assert (await app.post_events(events, token)).status_code == 202
            await receiver.wait_for(sent, path="/fb")  # each delivered by the fallback

        def told() -> list[dict[str, Any]]:
            return [
                event_of(r) for r in receiver.on("/alerts") if event_of(r)["Event-Subclass"].endswith("fallback_used")
            ]

        await post(8)  # two fail over (http 503), the primary pauses, six go straight to the fallback
        await eventually(lambda: alerts.storing == 0 and alerts.raised["switchhook::fallback_used"] == 1, "one alert")
        await eventually(lambda: len(told()) == 1, "the alert delivered")
        (first,) = told()
        assert first["Hook-Id"] == hook_id and first["Failover-Reason"] == "http 503"
        assert first["Fallback-Url"] == receiver.base_url and first["Hook-Url"] == receiver.base_url

        receiver.routes["/primary"] = Reply(200)  # the primary's probe is answered: its pause is over

        async def primary_answered() -> bool:
            """Post one event and wait for its request: True once it went to the primary (and was answered)."""
            before = len(receiver.on("/primary")) + len(receiver.on("/fb"))
            events = [{"Event-Name": "DTMF", "variable_domain_name": domain, "n": "probe"}]
            assert (await app.post_events(events, token)).status_code == 202
            await eventually(lambda: len(receiver.on("/primary")) + len(receiver.on("/fb")) > before, "sent")
            return [r.path for r in receiver.requests if r.path in ("/primary", "/fb")][-1] == "/primary"

        await eventually(primary_answered, "the primary resumed", 10)
        receiver.routes["/primary"] = Reply(503)  # a new outage: a new spell, told again
        sent = len(receiver.on("/fb"))
        await post(3)
        await eventually(lambda: len(told()) == 2, "the second outage's alert", 10, lambda: str(told()))
        assert alerts.raised["switchhook::fallback_used"] == 2
        assert receiver.on("/other") == []  # never another domain's


@BACKENDS
async def test_a_410_met_by_several_deliveries_at_once_is_one_hook_disabled(
    receiver: Receiver, tmp_path: Path, backend: str
) -> None:
    domain = "gone.example"
    async with running_on(backend, tmp_path) as app:
        alerts = alerts_of(app)
        token = await app.domain_token(domain)
        await app.create_hook(domain, alert_hook(receiver.url("/alerts")), token)
        gate = asyncio.Event()
        receiver.routes["/gone"] = Reply(410, gate=gate)  # all eight in flight before any is answered
        gone = {"event": "DTMF", "enable": True, "disableOnGone": True, "action": web("/gone", receiver)}
        hook_id = await app.create_hook(domain, gone, token)
        assert (await app.post_events(dtmf_events(domain, range(8)), token)).status_code == 202
        await receiver.wait_for(8, path="/gone")
        gate.set()
        await eventually(lambda: alerts.raised["switchhook::delivery_failed"] == 8, "each failure told")
        await eventually(lambda: alerts.storing == 0, "every alert stored")
        assert alerts.raised["switchhook::hook_disabled"] == 1
        (disabled,) = [e for e in await stored_alerts(app) if e["Event-Subclass"] == "switchhook::hook_disabled"]
        assert disabled["Hook-Id"] == hook_id and disabled["Reason"].startswith("HTTP 410")


@BACKENDS
async def test_a_hook_the_system_disables_at_start_raises_hook_disabled_once(
    receiver: Receiver, tmp_path: Path, backend: str
) -> None:
    """A stored hook over today's limits is disabled by the index at start (services/index.py): its domain's
    subscribers hear it, even from a process started with --api; the next start raises nothing again."""
    # A repetition of 50: within the default limits, over the {n} of at most 10 that the later runs allow.
    big = {"filter": {"DTMF-Digit": {"operation": "reg", "value": "^1{50}$"}}}
    async with store_settings(backend) as base:
        async with running(make_settings(tmp_path, **base)) as app:
            ids: dict[str, str] = {}
            for domain in ("a.example", "b.example"):
                token = await app.domain_token(domain)
                await app.create_hook(domain, alert_hook(receiver.url(f"/alerts/{domain}")), token)
            token = await app.domain_token("a.example")
            url = receiver.url("/crm").replace("//", "//crm:pa55@")
            ids["big"] = await app.create_hook(
                "a.example", {"event": "DTMF", "enable": True, "action": web("/crm", receiver), **big}
            )
            ids["idle"] = await app.create_hook(  # already off: its disable stops nothing, says nothing
                "a.example", {"event": "DTMF", "enable": False, "action": web("/crm", receiver), **big}
            )
            ids["secret"] = await app.create_hook(
                "a.example",
                {"event": "DTMF", "enable": True, "action": {**web("/crm", receiver), "url": url}, **big},
            )
        strict = make_settings(tmp_path, regex_max_repeat=10, **base)
        async with running(strict, worker=False) as api_only:  # the index disables them here, and tells
            alerts = alerts_of(api_only)
            await eventually(lambda: alerts.storing == 0, "the alerts stored")
            assert alerts.raised["switchhook::hook_disabled"] == 2
        async with running(strict) as app:  # a worker delivers them; this start disables nothing more
            assert alerts_of(app).storing == 0 and sum(alerts_of(app).raised.values()) == 0
            (first, second) = await receiver.wait_for(2, path="/alerts/a.example")
            read = await app.client.get(
                f"/api/v2/hooks/{ids['big']}", headers={"X-Access-Token": await app.domain_token("a.example")}
            )
        told = sorted((event_of(first), event_of(second)), key=lambda e: e["Hook-Id"] != ids["big"])
        assert [e["Hook-Id"] for e in told] == [ids["big"], ids["secret"]]
        for event in told:
            assert event["Event-Subclass"] == "switchhook::hook_disabled" and event["Disabled-By"] == "system"
            assert event["variable_domain_name"] == "a.example" and event["Hook-Events"] == "DTMF"
            assert event["Reason"].startswith("not loaded, over this server's limits:")
            assert event["Reason"] == read.json()["data"]["disabledReason"]
            assert event["Hook-Url"] == receiver.base_url and "pa55" not in orjson.dumps(event).decode()
        assert receiver.on("/alerts/b.example") == []  # never another domain's
