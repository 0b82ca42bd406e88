"""services/alerts.py's rules, one report at a time on a clock the test turns (docs/alerts.md): once per pause, the
loop guard's silent pauses, fallback spells. The accept is a stand-in that records what would be stored; the
end-to-end tests (tests/e2e/test_alerts.py) run the same rules through the real pipeline and store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from switchhook.core.alerts import key_of
from switchhook.core.breaker import Change
from switchhook.core.events import Event
from switchhook.core.hooks import Hook
from switchhook.services.alerts import AlertsService
from switchhook.services.events import AcceptResult, Job
from switchhook.services.index import HookIndex
from switchhook.store.base import Finish, HookRow

DOMAIN = "a.example"
ALL_ALERTS = [key_of(f"switchhook::{n}") for n in ("hook_paused", "hook_resumed", "fallback_used", "delivery_failed")]


class Accepted:
    """Stands in for EventsService.accept: records each event and its confinement."""

    def __init__(self) -> None:
        self.events: list[tuple[Event, str | None]] = []

    async def accept(self, events: Sequence[Event], *, source: str, confine_to: str | None = None) -> AcceptResult:
        assert source == "switchhook"
        self.events.extend((event, confine_to) for event in events)
        return AcceptResult(accepted=len(events))

    def subclasses(self) -> list[str]:
        return [event["Event-Subclass"] for event, _ in self.events]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def setup(
    *extra_hooks: dict[str, Any], accepted: Accepted | None = None
) -> tuple[AlertsService, Accepted, Clock, Hook]:
    index = HookIndex()
    index.put(HookRow("a" * 24, DOMAIN, {"event": ALL_ALERTS, "enable": True, "action": _web("/alerts")}))
    for n, doc in enumerate(extra_hooks):
        index.put(HookRow(str(n) * 24, DOMAIN, doc))
    crm = Hook.compile(
        "c" * 24, DOMAIN, {"event": "DTMF", "enable": True, "action": _web("/crm", fallbackUrl="https://standby/x")}
    )
    accepted, clock = accepted or Accepted(), Clock()
    service = AlertsService(accepted, index, clock=clock)  # type: ignore[arg-type]
    return service, accepted, clock, crm


def _web(path: str, **extra: str) -> dict[str, str]:
    return {"type": "web", "method": "POST", "url": "https://crm.example" + path, **extra}


def job(hook: Hook, key: str = "DTMF", n: int = 0) -> Job:
    return Job(f"d{n}", f"e{n}", hook, {}, key, 1, 0.0, None)


async def settle(service: AlertsService) -> None:
    while service.storing:
        await asyncio.sleep(0)


async def test_a_pause_is_told_once_and_its_end_once() -> None:
    service, accepted, clock, crm = setup()
    service.hook_paused(job(crm), 5, 503, "HTTP 503", 5.0)
    clock.now += 5
    service.hook_paused(job(crm, n=1), 5, None, "timeout", 10.0)  # a failed probe: the same pause
    clock.now += 10
    service.hook_resumed(job(crm, n=2), 200)
    service.hook_resumed(job(crm, n=3), 200)  # nothing paused any more
    await settle(service)
    assert accepted.subclasses() == ["switchhook::hook_paused", "switchhook::hook_resumed"]
    assert accepted.events[1][0]["Paused-Seconds"] == "15"
    assert {confine for _, confine in accepted.events} == {DOMAIN}


async def test_a_pause_caused_by_an_alert_delivery_is_silent_and_so_is_its_end() -> None:
    service, accepted, _clock, crm = setup()
    alert_key = key_of("switchhook::hook_paused")
    service.hook_paused(job(crm, key=alert_key), 5, 503, None, 5.0)
    service.hook_paused(job(crm), 5, 503, None, 10.0)  # an ordinary delivery's failed probe: still that pause
    service.hook_resumed(job(crm), 200)
    await service.delivery_failed(job(crm, key=alert_key), _finish())
    await settle(service)
    assert accepted.events == []


async def test_without_a_subscriber_nothing_is_built() -> None:
    service, accepted, _clock, _crm = setup()
    other = Hook.compile("d" * 24, "b.example", {"event": "DTMF", "enable": True, "action": _web("/x")})
    service.hook_paused(job(other), 5, 503, None, 5.0)
    await service.delivery_failed(job(other), _finish())
    await settle(service)
    assert accepted.events == []
    assert service.builder.build("switchhook::hook_paused", DOMAIN, {})["Event-Sequence"] == "1"


async def test_fallback_used_once_per_pause_of_the_primary_and_once_a_window_otherwise() -> None:
    service, accepted, clock, crm = setup()
    service.failover(job(crm), True, "http 503", None)  # the first failover: told
    service.failover(job(crm), True, "http 503", Change.OPENED)  # the primary pauses: the same spell
    clock.now += 3600
    service.failover(job(crm), True, "paused", None)  # an hour later, still paused: nothing new
    service.failover(job(crm), False, None, Change.CLOSED)  # its probe was answered: the spell is over
    service.failover(job(crm), True, "timeout", None)  # a new outage
    clock.now += 30
    service.failover(job(crm), True, "timeout", None)  # half a minute later, never paused: the same spell
    clock.now += 61
    await asyncio.sleep(0)
    service.failover(job(crm), True, "refused", None)  # a minute without failovers: a new spell
    await settle(service)
    assert [event["Failover-Reason"] for event, _ in accepted.events] == ["http 503", "timeout", "refused"]
    assert accepted.events[0][0]["Fallback-Url"] == "https://standby"


class Gated(Accepted):
    """An accept that commits once the test opens its gate (a slow group commit, a database coming back)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def accept(self, events: Sequence[Event], *, source: str, confine_to: str | None = None) -> AcceptResult:
        await self.gate.wait()
        return await super().accept(events, source=source, confine_to=confine_to)


async def test_deliveries_meeting_one_410_tell_it_once_and_each_disables_only_once_it_is_stored() -> None:
    """Each delivery in flight disables the hook after its hook_disabled call returns: the second must not return
    before the first one's alert is stored, or a crash between its disable and that store loses the alert."""
    subscriber = {"event": key_of("switchhook::hook_disabled"), "enable": True, "action": _web("/disabled")}
    gated = Gated()
    service, _accepted, _clock, crm = setup(subscriber, accepted=gated)
    gone = "HTTP 410 Gone: hook disabled"
    first = asyncio.create_task(service.hook_disabled(job(crm), gone, 410))
    # The same hook compiled again (the index reloads a hook when told of a change): the same disable all the same.
    copy = Hook.compile(crm.id, crm.domain, crm.doc)
    second = asyncio.create_task(service.hook_disabled(job(copy, n=1), gone, 410))
    for _ in range(20):  # every step either could take without the commit
        await asyncio.sleep(0)
    assert not first.done() and not second.done()
    gated.gate.set()
    await asyncio.gather(first, second)
    assert gated.subclasses() == ["switchhook::hook_disabled"]
    assert gated.events[0][0]["Disabled-By"] == "gone" and gated.events[0][0]["Reason"] == gone


async def test_a_bug_raising_an_alert_never_reaches_the_worker() -> None:
    """The worker reports while it accounts an attempt, before it frees the slot and records the result: an
    exception from a report would hold the hook's slot, or the delivery's lease, for good."""
    service, accepted, _clock, crm = setup()

    def broken(*_: object) -> bool:
        raise RuntimeError("a bug")

    service._subscribed = broken  # type: ignore[method-assign,assignment]
    service.hook_paused(job(crm), 5, 503, "HTTP 503", 5.0)
    service.hook_resumed(job(crm), 200)
    service.failover(job(crm), True, "http 503", None)
    service.hook_disabled_by_system(HookRow("e" * 24, DOMAIN, {"event": "DTMF", "enable": True}), "over")
    await service.hook_disabled(job(crm), "HTTP 410 Gone: hook disabled", 410)
    await service.delivery_failed(job(crm), _finish())
    assert accepted.events == []
    assert dict(service.lost) == {
        "switchhook::hook_paused": 1,
        "switchhook::hook_resumed": 1,
        "switchhook::fallback_used": 1,
        "switchhook::hook_disabled": 2,
        "switchhook::delivery_failed": 1,
    }


def _finish() -> Finish:
    return Finish("d0", "failed", 1, 0.0, 503, "HTTP 503", None)
