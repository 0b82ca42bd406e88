"""Raising switchhook's own alerts (docs/alerts.md): which pauses, resumes, disables, failed deliveries and failovers
are worth one, and accepting each through the ingest path (EventsService.accept) so it is stored like any event.

The worker tells this service what happened (delivery/worker.py, the only caller besides the runtime); the events
themselves are built by core/alerts.py. The rules, and why:

- Nothing is built, stored or sent unless a hook of the domain subscribes to that alert's key: the check is one
  lookup in the hook index (the same dict lookup matching does), so the hot path pays nothing without subscribers.
- The loop guard: a delivery of a `switchhook::*` event raises nothing. Its failure makes no delivery_failed, its
  410 no hook_disabled, and a pause it causes is silent, its resume too. So a dead alert subscriber never makes
  alerts about itself, and alerts cannot feed themselves.
- hook_paused once per pause: the breaker re-opens a paused hook on each failed probe; that is the same pause,
  longer, and says nothing new. hook_resumed only ends a pause that was not silent.
- The storm guard: delivery_failed goes through core/alerts.py's FailureAlertLimiter (per hook and per domain per
  minute, then one summary per hook with the count of the suppressed ones).
- Durability: an alert counts as raised once the accept that stores it has committed. A delivery_failed and a
  hook_disabled are stored before the worker records the failure or disables the hook (the worker awaits them);
  a pause lives in this process's memory only, so its alert is stored just after it: see docs/alerts.md for what
  a SIGKILL can lose. While the database is away an alert is tried again (doubling waits up to RETRY_MAX_S) until
  it is stored or the process stops; a retry carries the same Core-UUID and Event-Sequence, so it is stored once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from switchhook.core.alerts import (
    DELIVERY_FAILED,
    FALLBACK_USED,
    HOOK_DISABLED,
    HOOK_PAUSED,
    HOOK_RESUMED,
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
from switchhook.core.breaker import Change
from switchhook.core.errors import Unavailable
from switchhook.core.hooks import Hook, event_keys
from switchhook.services.events import EventsService, Job
from switchhook.services.index import HookIndex
from switchhook.store.base import Finish, HookRow

logger = logging.getLogger("switchhook.alerts")

#: The source alerts are accepted under (metrics' `source` label, the event's stored source).
SOURCE = "switchhook"
#: The storm guard (docs/alerts.md): delivery_failed alerts per hook and per domain in each window, then a summary.
FAILED_ALERTS_PER_HOOK = 10
FAILED_ALERTS_PER_DOMAIN = 100
FAILED_ALERTS_WINDOW_S = 60.0
#: How often windows that are over are looked for (their summaries go out this late at most).
SUMMARY_TICK_S = 1.0
#: Waits between tries of an alert while the database is away.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
#: Hooks whose disable was alerted, kept to raise one hook_disabled when several deliveries meet its 410 at once.
DISABLED_REMEMBERED = 10_000


P = ParamSpec("P")
Report = Callable[Concatenate["AlertsService", P], None]
AwaitedReport = Callable[Concatenate["AlertsService", P], Coroutine[Any, Any, None]]


def _never_raises(subclass: str) -> Callable[[Report[P]], Report[P]]:
    """A report from the worker that cannot fail it: the worker calls these while it accounts an attempt, before it
    frees the attempt's slot and records its result, so a bug here would hold a hook's slot or a delivery's lease
    for good. Logged and counted as a lost alert of `subclass` instead."""

    def wrap(report: Report[P]) -> Report[P]:
        @functools.wraps(report)
        def guarded(self: AlertsService, /, *args: P.args, **kwargs: P.kwargs) -> None:
            try:
                report(self, *args, **kwargs)
            except Exception:
                self._bug(subclass)

        return guarded

    return wrap


def _never_fails(subclass: str) -> Callable[[AwaitedReport[P]], AwaitedReport[P]]:
    """`_never_raises` for the reports the worker awaits (a cancellation still goes through)."""

    def wrap(report: AwaitedReport[P]) -> AwaitedReport[P]:
        @functools.wraps(report)
        async def guarded(self: AlertsService, /, *args: P.args, **kwargs: P.kwargs) -> None:
            try:
                await report(self, *args, **kwargs)
            except Exception:
                self._bug(subclass)

        return guarded

    return wrap


@dataclass(slots=True)
class _Pause:
    since: float
    silent: bool  # caused by an alert's own delivery (the loop guard): neither it nor its end is alerted


@dataclass(slots=True)
class _Spell:
    """A hook's failovers to its fallback URL since the first one told (see AlertsService.failover)."""

    last_at: float
    primary_paused: bool = False


class AlertsService:
    """One per worker process: the pauses it has seen, the storm guard's windows, and the alerts being stored."""

    def __init__(
        self,
        events: EventsService,
        index: HookIndex,
        *,
        clock: Callable[[], float] = time.time,
        core_uuid: str | None = None,
        failed_per_hook: int = FAILED_ALERTS_PER_HOOK,
        failed_per_domain: int = FAILED_ALERTS_PER_DOMAIN,
        window_s: float = FAILED_ALERTS_WINDOW_S,
    ) -> None:
        self._events = events
        self._index = index
        self._clock = clock
        self.builder = AlertEvents(core_uuid, clock)
        self.limiter: FailureAlertLimiter[dict[str, str]] = FailureAlertLimiter(
            failed_per_hook, failed_per_domain, window_s
        )
        self._pauses: dict[str, _Pause] = {}  # hook id -> its pause here (as many as the breaker has open)
        self._spells: dict[str, _Spell] = {}  # hook id -> its failover spell (hooks with a fallback URL only)
        # hook id -> the hook whose disable was alerted, and that alert's storing
        self._disabled: OrderedDict[str, tuple[Hook, asyncio.Task[None]]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self.raised: Counter[str] = Counter()  # subclass -> alerts stored
        self.suppressed = 0  # delivery_failed alerts the storm guard held back (told in summaries)
        self.lost: Counter[str] = Counter()  # subclass -> alerts not stored (the process stopped, or a bug)

    # -- what the worker reports --------------------------------------------------------------------------------
    @_never_raises(HOOK_PAUSED)
    def hook_paused(
        self, job: Job, failures: int, last_status: int | None, last_error: str | None, pause_s: float
    ) -> None:
        """The breaker opened `job.hook`'s circuit after `job`'s attempt. A new pause is alerted (stored in the
        background); a re-open (a failed probe) belongs to the pause already told."""
        hook = job.hook
        if hook.id in self._pauses:
            return
        pause = self._pauses[hook.id] = _Pause(self._clock(), is_alert_key(job.event_key))
        if pause.silent or not self._subscribed(hook.domain, HOOK_PAUSED):
            return
        headers = {
            **hook_headers(hook.id, hook.events, _url(hook), hook.doc.get("description")),
            "Failures": str(failures),
            **outcome_headers(last_status, last_error),
            "Pause-Seconds": seconds(round(pause_s, 3)),
        }
        self._spawn(self._store(HOOK_PAUSED, hook.domain, headers))

    @_never_raises(HOOK_RESUMED)
    def hook_resumed(self, job: Job, last_status: int | None) -> None:
        """`job`'s attempt was answered and closed the hook's circuit: the end of a pause told is told."""
        hook = job.hook
        pause = self._pauses.pop(hook.id, None)
        if pause is None or pause.silent or not self._subscribed(hook.domain, HOOK_RESUMED):
            return
        headers = {
            **hook_headers(hook.id, hook.events, _url(hook), hook.doc.get("description")),
            "Paused-Seconds": seconds(round(self._clock() - pause.since, 3)),
        }
        if last_status is not None:
            headers["Last-Status"] = str(last_status)
        self._spawn(self._store(HOOK_RESUMED, hook.domain, headers))

    @_never_fails(HOOK_DISABLED)
    async def hook_disabled(self, job: Job, reason: str, last_status: int | None) -> None:
        """`job`'s attempt disables its hook (a 410 with `disableOnGone`): stored before the disable is (awaited)."""
        hook = job.hook
        if is_alert_key(job.event_key) or not self._subscribed(hook.domain, HOOK_DISABLED):
            return
        told = self._disabled.get(hook.id)
        if told is not None and (told[0] is hook or not told[1].done()):
            # Another delivery in flight met the same 410 (while its alert is being stored, whichever compiled copy
            # of the hook this job holds): one alert per disable. This one disables the hook too, so it waits for
            # that alert to be stored first (shielded: its own cancellation must not cancel it).
            await asyncio.shield(told[1])
            return
        headers = {
            **hook_headers(hook.id, hook.events, _url(hook), hook.doc.get("description")),
            "Reason": scrub(reason),
            "Disabled-By": "gone" if last_status == 410 else "system",
            **outcome_headers(last_status, None),
        }
        storing = self._spawn(self._store(HOOK_DISABLED, hook.domain, headers))
        self._disabled[hook.id] = (hook, storing)
        self._disabled.move_to_end(hook.id)
        if len(self._disabled) > DISABLED_REMEMBERED:
            self._disabled.popitem(last=False)
        await asyncio.shield(storing)

    @_never_raises(HOOK_DISABLED)
    def hook_disabled_by_system(self, row: HookRow, reason: str) -> None:
        """The hook index disabled a stored hook it cannot load (over today's limits, services/index.py): told in
        the background, the disable having committed already (docs/alerts.md, "Durability"). A hook that was not
        enabled stops nothing: no alert."""
        doc = row.doc
        if doc.get("enable") is not True or not self._subscribed(row.domain, HOOK_DISABLED):
            return
        action = doc.get("action")
        url = action.get("url") if isinstance(action, Mapping) else None
        headers = {
            **hook_headers(
                row.id, event_keys(doc.get("event")), url if isinstance(url, str) else "", doc.get("description")
            ),
            "Reason": scrub(reason),
            "Disabled-By": "system",
        }
        self._spawn(self._store(HOOK_DISABLED, row.domain, headers))

    @_never_fails(DELIVERY_FAILED)
    async def delivery_failed(self, job: Job, finish: Finish) -> None:
        """`job` failed for good (retries spent, refused for good) or expired: alerted, within the storm guard's
        limits, and stored before the worker records the failure (awaited)."""
        hook = job.hook
        if is_alert_key(job.event_key) or not self._subscribed(hook.domain, DELIVERY_FAILED):
            return
        headers = {
            **hook_headers(hook.id, hook.events, _url(hook), hook.doc.get("description")),
            "Delivery-Id": job.delivery_id,
            "Delivery-Status": finish.status,
            "Delivery-Event-Key": job.event_key,
            "Attempts": str(finish.attempts),
            **outcome_headers(finish.last_status, finish.last_error),
        }
        if job.call_id is not None:
            headers["Call-Id"] = job.call_id
        if self.limiter.admit(hook.id, hook.domain, self._clock(), headers) is Verdict.SUPPRESS:
            self.suppressed += 1
            return
        headers["Suppressed"] = "0"
        await self._store(DELIVERY_FAILED, hook.domain, headers)

    @_never_raises(FALLBACK_USED)
    def failover(self, job: Job, used: bool, reason: str | None, primary_change: Change | None) -> None:
        """`job`'s attempt of a hook with a fallback URL (docs/fallback.md): whether it went to the fallback (and
        why), and whether the primary URL's own circuit paused or resumed with it.

        fallback_used is told at the first failover of a spell, once: a spell lasts while the primary is paused
        (from its pause until it resumes, however many deliveries the fallback takes meanwhile), and otherwise
        until FAILED_ALERTS_WINDOW_S pass without a failover (a primary failing now and then, never paused)."""
        hook = job.hook
        if is_alert_key(job.event_key):
            return
        now = self._clock()
        spell = self._spells.get(hook.id)
        if used:
            if spell is not None and (spell.primary_paused or now - spell.last_at < self.limiter.window_s):
                spell.last_at = now
            else:
                spell = self._spells[hook.id] = _Spell(now)
                if self._subscribed(hook.domain, FALLBACK_USED):
                    headers = {
                        **hook_headers(hook.id, hook.events, _url(hook), hook.doc.get("description")),
                        "Fallback-Url": url_origin(hook.fallback_url or ""),
                        "Failover-Reason": scrub(reason),
                        "Delivery-Id": job.delivery_id,
                    }
                    self._spawn(self._store(FALLBACK_USED, hook.domain, headers))
        if primary_change is Change.OPENED:
            if spell is None:
                spell = self._spells[hook.id] = _Spell(now)
            spell.primary_paused = True
        elif primary_change is Change.CLOSED:
            self._spells.pop(hook.id, None)

    @property
    def storing(self) -> int:
        """Alerts started and not yet stored (or given up): tests wait for none before they count."""
        return len(self._tasks)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._runner = asyncio.create_task(self._summaries(), name="alert summaries")

    async def stop(self, grace_s: float = 2.0) -> None:
        """Stop retrying; give alerts being stored `grace_s` to commit (the worker has stopped: none come after)."""
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace_s)
        for task in list(self._tasks):
            task.cancel()

    def collect(self) -> Iterator[Any]:
        """Prometheus: alerts stored and lost by subclass, and what the storm guard held back."""
        raised = CounterMetricFamily("switchhook_alerts_raised", "switchhook's own alerts stored", labels=["subclass"])
        for subclass, count in sorted(self.raised.items()):
            raised.add_metric([subclass], count)
        lost = CounterMetricFamily(
            "switchhook_alerts_lost", "Alerts not stored (the process stopped first, or a bug)", labels=["subclass"]
        )
        for subclass, count in sorted(self.lost.items()):
            lost.add_metric([subclass], count)
        suppressed = CounterMetricFamily(
            "switchhook_alerts_suppressed", "delivery_failed alerts held back by the storm guard (told in summaries)"
        )
        suppressed.add_metric([], self.suppressed)
        windows = GaugeMetricFamily("switchhook_alerts_windows", "Hooks with a storm-guard window open")
        windows.add_metric([], len(self.limiter))
        yield from (raised, lost, suppressed, windows)

    # -- internals ----------------------------------------------------------------------------------------------
    def _subscribed(self, domain: str, subclass: str) -> bool:
        return bool(self._index.find(domain, key_of(subclass)))

    def _bug(self, subclass: str) -> None:
        self.lost[subclass] += 1
        logger.exception("raising an alert %s failed inside switchhook", subclass)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Store an alert in the background (`stop` gives it its grace, then cancels it)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _summaries(self) -> None:
        """Each window that is over with failures held back becomes one delivery_failed summary."""
        while True:
            await asyncio.sleep(SUMMARY_TICK_S)
            now = self._clock()
            for summary in self.limiter.due(now):
                if self._subscribed(summary.domain, DELIVERY_FAILED):
                    headers = {
                        **summary.last,
                        "Suppressed": str(summary.suppressed),
                        "Window-Seconds": seconds(summary.window_s),
                    }
                    self._spawn(self._store(DELIVERY_FAILED, summary.domain, headers))
            window_s = self.limiter.window_s
            over = [
                h for h, spell in self._spells.items() if not spell.primary_paused and now - spell.last_at >= window_s
            ]
            for hook_id in over:
                del self._spells[hook_id]

    async def _store(self, subclass: str, domain: str, headers: dict[str, str]) -> None:
        """Accept the alert into the domain (its hooks' filters decide who gets it); tried again while the
        database is away, the same event each time (de-duplicated should a try commit unseen)."""
        event = self.builder.build(subclass, domain, headers)
        wait_s = RETRY_FIRST_S
        while True:
            try:
                await self._events.accept([event], source=SOURCE, confine_to=domain)
            except Unavailable as exc:
                if self._stopping:
                    self.lost[subclass] += 1
                    logger.warning("alert %s of domain %s not stored: %s", subclass, domain, exc)
                    return
                logger.warning("storing alert %s failed (%s); trying again in %.1f s", subclass, exc, wait_s)
                await asyncio.sleep(wait_s)
                wait_s = min(RETRY_MAX_S, wait_s * 2)
                continue
            except asyncio.CancelledError:
                self.lost[subclass] += 1
                raise
            except Exception:
                self.lost[subclass] += 1
                logger.exception("storing alert %s of domain %s failed", subclass, domain)
                return
            self.raised[subclass] += 1
            return


def _url(hook: Hook) -> str:
    action = hook.doc.get("action")
    url = action.get("url") if isinstance(action, Mapping) else None
    return url if isinstance(url, str) else ""
