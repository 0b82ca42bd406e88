"""The delivery worker: the loops, the store calls and the timers around admission (core/admission.py), which
decides what starts, what waits here and what waits in the store; sends under its caps, records in batches."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol

from switchhook.core.admission import PARKED_PER_SLOT as PARKED_PER_SLOT  # re-exported: a backlog's depth
from switchhook.core.admission import Admission, Plan, Probe
from switchhook.core.breaker import Breakers, Change, Health, health_of
from switchhook.core.errors import Unavailable
from switchhook.core.hooks import Hook
from switchhook.core.retry import Delivered, GiveUp
from switchhook.delivery.pipeline import AttemptReport
from switchhook.services.batching import GroupCommit
from switchhook.services.events import Job
from switchhook.store.base import Fair, Finish

logger = logging.getLogger("switchhook.delivery")

RECORD_BATCH = 500
CLAIM_BATCH = 200
SKIP_HOOKS_MAX = 200
SKIP_DOMAINS_MAX = 200
RECORD_LINGER_S = 0.01
#: The horizon: how far off a shelved delivery's next_at is (see store.base.SHELVED). It waits for room here,
#: taken by hook, and is due on its own then only if this worker is gone; a paused hook's shelf is pushed out again
#: meanwhile.
SHELVE_S = 600.0
#: How often a paused hook's shelf is pushed out again (whatever its cooldown) and, with several workers on one
#: database, shelves no worker here knows of are looked for (their worker stopped or died).
SHELF_CARE_S = 60.0
#: A paused hook's probe that could not be taken from the store (the database failed) is tried again this much later.
PROBE_RETRY_S = 1.0
#: Ordered calls' heads whose X-Call-Sequence could not be taken (the database failed) ask again this much later.
NUMBER_RETRY_S = 1.0
#: The shortest wait when a paused hook's timer fired before its cooldown was over by the breaker's clock (see
#: _probe_due): uvloop counts timers in whole milliseconds, so a shorter one could fire at once, again and again.
PROBE_REARM_MIN_S = 0.002


def _log_failure(exc: Exception, message: str, *args: object) -> None:
    """A failed store call in a background loop: an outage (Unavailable) is one warning line and the loop goes
    on; anything else is a bug, logged with its traceback so that it never reads as an outage."""
    if isinstance(exc, Unavailable):
        logger.warning(message + ": %s", *args, exc)
    else:
        logger.error(message, *args, exc_info=exc)


def _cut_short(jobs: Sequence[Job], fair: Fair) -> bool:
    """Whether a claim may have left due deliveries behind for a hook's or a domain's share."""
    by_hook: dict[str, int] = {}
    by_domain: dict[str, int] = {}
    for job in jobs:
        hook = job.hook
        by_hook[hook.id] = by_hook.get(hook.id, 0) + 1
        by_domain[hook.domain] = by_domain.get(hook.domain, 0) + 1
    return any(n >= fair.per_hook for n in by_hook.values()) or any(n >= fair.per_domain for n in by_domain.values())


class Deliveries(Protocol):
    """What the worker asks of the store (services.deliveries.DeliveriesService)."""

    async def claim(
        self, worker_id: str, limit: int, lease_s: float, skip_hooks: Sequence[str] = (), fair: Fair | None = None
    ) -> list[Job]: ...
    async def claim_shelved(
        self, worker_id: str, hook_id: str, limit: int, lease_s: float
    ) -> tuple[list[Job], int]: ...
    async def claim_shelves(
        self, worker_id: str, rooms: Sequence[tuple[str, int]], lease_s: float
    ) -> tuple[list[Job], dict[str, int]]: ...
    async def shelve(self, worker_id: str, delivery_ids: Sequence[str], shelve_s: float) -> None: ...
    async def reshelve(self, hook_id: str, shelve_s: float) -> int: ...
    async def shelved_hooks(self) -> list[str]: ...
    async def record(self, results: Sequence[Finish], worker_id: str | None) -> None: ...
    async def record_and_take_next(
        self, results: Sequence[Finish], worker_id: str, heads: Sequence[str], lease_s: float
    ) -> list[Job]: ...
    async def extend(self, worker_id: str, delivery_ids: Sequence[str], lease_s: float) -> None: ...
    async def release(self, worker_id: str | None) -> int: ...
    async def disable_hook(self, hook: Hook, reason: str) -> None: ...
    async def number_calls(self, jobs: Sequence[Job]) -> None: ...


class Pipeline(Protocol):
    """One attempt of one delivery (delivery.pipeline.DeliveryPipeline)."""

    async def attempt(self, job: Job) -> AttemptReport: ...


class Alerts(Protocol):
    """What the worker tells switchhook's own alerts of (services.alerts.AlertsService, docs/alerts.md). The two
    awaited ones are stored before the worker records the failure or disables the hook."""

    def hook_paused(
        self, job: Job, failures: int, last_status: int | None, last_error: str | None, pause_s: float
    ) -> None: ...
    def hook_resumed(self, job: Job, last_status: int | None) -> None: ...
    async def hook_disabled(self, job: Job, reason: str, last_status: int | None) -> None: ...
    async def delivery_failed(self, job: Job, finish: Finish) -> None: ...
    def failover(self, job: Job, used: bool, reason: str | None, primary_change: Change | None) -> None: ...


class NoAlerts:
    """A worker without alerts (tests' stand-ins, a build that raises none)."""

    def hook_paused(
        self, job: Job, failures: int, last_status: int | None, last_error: str | None, pause_s: float
    ) -> None:
        pass

    def hook_resumed(self, job: Job, last_status: int | None) -> None:
        pass

    async def hook_disabled(self, job: Job, reason: str, last_status: int | None) -> None:
        pass

    async def delivery_failed(self, job: Job, finish: Finish) -> None:
        pass

    def failover(self, job: Job, used: bool, reason: str | None, primary_change: Change | None) -> None:
        pass


class Observer:
    """Hooks for metrics; the runtime passes a Prometheus-backed one."""

    def attempt(self, report: AttemptReport, latency_s: float | None) -> None: ...
    def in_flight(self, count: int) -> None: ...


class DeliveryWorker:
    """Runs admission's decisions: claims and takes from the store, starts sends, records results, renews leases,
    keeps one probe timer per paused hook and shelves what admission hands back."""

    def __init__(
        self,
        deliveries: Deliveries,
        pipeline: Pipeline,
        *,
        lease_s: float,
        max_in_flight: int,
        max_in_flight_per_hook: int,
        poll_interval_s: float,
        max_in_flight_per_domain: int = 128,
        max_queued: int = 20_000,
        breakers: Breakers | None = None,
        observer: Observer | None = None,
        alerts: Alerts | None = None,
        clock: Callable[[], float] = time.time,
        shelve_s: float = SHELVE_S,
        shared_store: bool = False,
    ) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = lease_s
        self.shelve_s = shelve_s
        self.admission: Admission[Job] = Admission(
            breakers or Breakers(0, 0.0, 0.0),
            max_in_flight=max_in_flight,
            max_in_flight_per_hook=max_in_flight_per_hook,
            max_in_flight_per_domain=max_in_flight_per_domain,
            max_leased=max_queued,
        )
        self._shared_store = shared_store  # other workers use the same database (PostgreSQL)
        self._shelf_care_at = 0.0  # the first turn of the poll loop looks for shelves in any case
        self._deliveries = deliveries
        self._pipeline = pipeline
        self._poll_interval_s = poll_interval_s
        self._observer = observer or Observer()
        #: Told of pauses, resumes, disables and failures; the runtime sets it once the events service exists.
        self.alerts: Alerts = alerts or NoAlerts()
        self._clock = clock
        # One timer per paused hook, the only owner of its probe schedule (see _probe_due).
        self._probe_timers: dict[str, asyncio.TimerHandle] = {}
        self._results: list[Finish] = []
        self._wake = asyncio.Event()
        self._poke = asyncio.Event()
        self._record_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Ordered hooks' X-Call-Sequence, taken in the store when a delivery becomes its call's turn (before it is
        # ready, core/admission.py "numbered"): the heads made at once share one transaction, and so do concurrent
        # batches of them.
        self._numbering: GroupCommit[Sequence[Job], None] = GroupCommit(self._number, item_at_fault=lambda exc: False)
        # Numbered here and not yet attempted: one given up unsent (expired) gives its number back
        # (Finish.return_number). Only these: one claimed with its number may have been sent by a process that died
        # before recording it.
        self._numbered_here: set[str] = set()

    # -- the fast path (services.events.FastPath) -------------------------------------------------
    def plan(self, now: float) -> Plan:
        """Where an accept's fresh deliveries go: leased here from birth, shelved, or left due."""
        return self.admission.plan(self.worker_id, now + self.lease_s, now + self.shelve_s)

    def submit(self, jobs: Sequence[Job], shelved: Iterable[str] = ()) -> None:
        """Lease these here and start what the caps allow; `shelved`: hooks some of whose deliveries were just
        shelved (told once stored: a take before the commit finds none)."""
        self.admission.lease(jobs)
        self._number_heads()
        if not self._stopping:
            self._dispatch()  # now, not when the dispatch loop next runs: one loop turn sooner on the wire
        for hook_id in shelved:
            self._shelved(hook_id)

    def poke(self) -> None:
        """New deliveries are due (another process stored them): poll now rather than at the next tick."""
        self._poke.set()

    @property
    def in_flight(self) -> int:
        return self.admission.in_flight

    @property
    def queued(self) -> int:
        """Leased here and not in flight: ready, parked, or finished and not yet recorded."""
        return self.admission.leased - self.admission.in_flight

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="dispatch"),
            asyncio.create_task(self._poll_loop(), name="poll"),
            asyncio.create_task(self._record_loop(), name="record"),
            asyncio.create_task(self._lease_loop(), name="lease"),
        ]

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking work, let in-flight sends finish (up to `grace_s`), record, release the rest."""
        self._stopping = True
        for timer in self._probe_timers.values():
            timer.cancel()
        self._probe_timers.clear()
        for task in self._tasks[:2]:
            task.cancel()
        if self._sends:
            await asyncio.wait(self._sends, timeout=grace_s)
        for task in self._sends:
            task.cancel()
        for task in self._tasks[2:]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._flush()
        with contextlib.suppress(Exception):
            await self._deliveries.release(self.worker_id)

    # -- dispatch ---------------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._dispatch()

    def _dispatch(self) -> None:
        started, handed_back = self.admission.dispatch(self._clock())
        for job in started:
            task = asyncio.create_task(self._send(job))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
        if handed_back:
            self._hand_back(handed_back)

    async def _send(self, job: Job) -> None:
        report: AttemptReport | None = None
        try:
            report = await self._pipeline.attempt(job)
        except Exception:
            logger.exception("delivery attempt crashed", extra={"delivery_id": job.delivery_id})
        finally:
            if report is not None:
                self._account(job, report)
            self._finished(job)
        numbered_here = job.delivery_id in self._numbered_here
        self._numbered_here.discard(job.delivery_id)
        if report is None:  # nothing to record: let the lease lapse so the delivery is claimed again
            self.admission.forget((job.delivery_id,))
            return
        finish = report.finish
        if numbered_here and finish.status == "expired" and finish.attempts == job.attempts:
            finish = dataclasses.replace(finish, return_number=True)  # given up before its request went out
        latency = self._clock() - job.created_at if isinstance(report.outcome, Delivered) else None
        self._observer.attempt(report, latency)
        if report.legs or report.primary_change is not None:  # a hook with a fallback URL (docs/fallback.md)
            self.alerts.failover(job, report.fallback_used, report.failover_reason, report.primary_change)
        # Alerts are stored before the failure is recorded and before the hook is disabled: a crash in between
        # repeats the attempt after the restart, and with it the alert (docs/alerts.md, "Durability").
        if finish.status == "failed" or finish.status == "expired":
            await self.alerts.delivery_failed(job, finish)
        if isinstance(report.outcome, GiveUp) and report.outcome.disable_hook:
            await self.alerts.hook_disabled(job, report.outcome.reason, finish.last_status)
            with contextlib.suppress(Exception):
                await self._deliveries.disable_hook(job.hook, report.outcome.reason)
        level = logging.DEBUG if finish.status == "delivered" else logging.WARNING
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "delivery %s attempt %d: %s",
                job.delivery_id,
                finish.attempts,
                "retry scheduled" if finish.status == "pending" else finish.status,
                extra={
                    "delivery_id": job.delivery_id,
                    "hook_id": job.hook.id,
                    "domain": job.hook.domain,
                    "status_code": finish.last_status,
                    "error": finish.last_error,
                },
            )
        self._results.append(finish)
        if len(self._results) >= RECORD_BATCH:
            self._record_wake.set()

    def _expired(self, job: Job) -> bool:
        """Past its ttl: the pipeline gives it up without sending, so it takes no X-Call-Sequence (no gap)."""
        return job.expires_at is not None and self._clock() >= job.expires_at

    # -- ordered hooks' X-Call-Sequence (core/admission.py, "numbered") ---------------------------
    def _number_heads(self) -> None:
        """Calls whose turn came to a delivery without its number: take their numbers, then they are ready."""
        heads = self.admission.to_number()
        if heads:
            self._background(self._take_numbers(heads))

    async def _take_numbers(self, heads: list[Job]) -> None:
        while True:
            try:
                due = [job for job in heads if not self._expired(job)]  # expired: given up unsent, no number (no gap)
                if due:
                    await self._numbering.submit(due)
                    self._numbered_here.update(job.delivery_id for job in due)
                break
            except Exception as exc:  # still leased here, lease renewed: asked again, its call waiting meanwhile
                _log_failure(exc, "taking X-Call-Sequence numbers of %d ordered calls failed; retrying", len(heads))
                if self._stopping:
                    return  # released by stop: another worker numbers them
                await asyncio.sleep(NUMBER_RETRY_S)
        self.admission.numbered(heads)
        if not self._stopping:
            self._dispatch()

    async def _number(self, batches: Sequence[Sequence[Job]]) -> list[None]:
        await self._deliveries.number_calls([job for jobs in batches for job in jobs])
        return [None] * len(batches)

    def _finished(self, job: Job) -> None:
        # Still leased until its result is recorded (see _flush): the lease keeps being renewed meanwhile, so a
        # database outage longer than the lease cannot hand a finished delivery to another worker.
        hook_id = job.hook.id
        self._probe_needs(hook_id, self.admission.finished(job, self._clock()))
        if self.admission.wants_take(hook_id):
            self._poke.set()  # room in its backlog again, its shelf or due ones in the store: now, not at the next poll
        self._wake.set()
        if self.admission.idle:
            self._record_wake.set()  # idle: record now rather than after the linger

    # -- paused hooks (domain.breaker, docs/breaker.md) -------------------------------------------
    def _account(self, job: Job, report: AttemptReport) -> None:
        response = report.response
        health = health_of(response.status, response.terminal) if response is not None else Health.UNKNOWN
        hook_id = job.hook.id
        attempt = report.finish.attempt
        now = self._clock()
        change, handed_back = self.admission.account(hook_id, health, now, attempt.started_at if attempt else None)
        if change is Change.OPENED:
            if handed_back:
                self._hand_back(handed_back)
            if self.admission.has_shelf(hook_id):
                self._background(self._keep_shelved(hook_id))
            pause = self.admission.cooldown_left(hook_id, now) or 0.0
            logger.warning(
                "hook %s: endpoint down (%s); pausing its deliveries for %.0f s, then probing",
                hook_id,
                report.finish.last_error or f"HTTP {report.finish.last_status}",
                pause,
                extra={"hook_id": hook_id, "domain": job.hook.domain},
            )
            self._arm_probe(hook_id, pause)
            finish = report.finish
            self.alerts.hook_paused(
                job, self.admission.breakers.threshold, finish.last_status, finish.last_error, pause
            )
        elif change is Change.CLOSED:
            logger.info("hook %s: endpoint answers again; deliveries resume", hook_id, extra={"hook_id": hook_id})
            self.alerts.hook_resumed(job, report.finish.last_status)
            self._disarm_probe(hook_id)
            self._poke.set()  # its shelf and its due retries: claim them now
            self._wake.set()

    def _hand_back(self, jobs: Sequence[Job]) -> None:
        """Shelve in the store what admission handed back (no longer leased here) until their hooks resume."""
        hooks = {job.hook.id: job.hook.domain for job in jobs}
        self._numbered_here.difference_update(job.delivery_id for job in jobs)  # whoever takes them: sent or not
        self._background(self._shelve(hooks, [job.delivery_id for job in jobs]))

    async def _shelve(self, hooks: dict[str, str], delivery_ids: list[str]) -> None:
        try:
            await self._deliveries.shelve(self.worker_id, delivery_ids, self.shelve_s)
        except Exception as exc:  # they come back when the lease lapses instead
            _log_failure(exc, "shelving %d deliveries of a paused hook failed", len(delivery_ids))
            return
        for hook_id, domain in hooks.items():
            self._shelved(hook_id, domain)

    def _shelved(self, hook_id: str, domain: str | None = None) -> None:
        self.admission.shelved(hook_id, domain)
        self._probe(hook_id)  # half-open with nothing to probe with until now

    async def _keep_shelved(self, hook_id: str) -> None:
        """A paused hook's shelf stays at the horizon while the pause lasts (see SHELVE_S)."""
        try:
            await self._deliveries.reshelve(hook_id, self.shelve_s)
        except Exception as exc:  # due at their horizon instead: claims skip them while the hook is paused
            _log_failure(exc, "keeping hook %s's deliveries shelved failed", hook_id)

    async def _probe_from_shelf(self, hook_id: str) -> None:
        """Half-open with no probe here: take the oldest shelved delivery of the hook, else whatever is due."""
        jobs: list[Job] = []
        try:
            jobs, _ = await self._deliveries.claim_shelved(self.worker_id, hook_id, 1, self.lease_s)
        except Exception as exc:
            _log_failure(exc, "taking a probe for hook %s from the store failed; trying again", hook_id)
            self._arm_probe(hook_id, PROBE_RETRY_S)  # nothing else would: the hook would wait for its shelf's horizon
        finally:
            self.admission.probe_claimed(hook_id)
        if jobs:
            self.submit(jobs)
        else:
            self._poke.set()  # a due retry of the hook can be the probe

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._sends.add(task)  # awaited on stop like a send
        task.add_done_callback(self._sends.discard)

    def _arm_probe(self, hook_id: str, delay_s: float) -> None:
        """(Re)set the paused hook's one timer to fire in `delay_s` (see _probe_due)."""
        self._disarm_probe(hook_id)
        self._probe_timers[hook_id] = asyncio.get_running_loop().call_later(delay_s, self._probe_due, hook_id)

    def _disarm_probe(self, hook_id: str) -> None:
        timer = self._probe_timers.pop(hook_id, None)
        if timer is not None:
            timer.cancel()

    def _probe_due(self, hook_id: str) -> None:
        """A paused hook's timer: its cooldown is over, a probe goes (see _probe).

        The timer runs on the event loop's clock, the breaker on the wall clock (`self._clock`), and they do not
        agree to the millisecond: uvloop, which `switchhook serve` runs on, counts timers in whole milliseconds of
        a loop time read at the start of the loop's turn, so a timer can fire a millisecond early. This timer used
        to call _probe, which found the hook "still cooling down" and returned; nothing else was armed, so the
        probe was lost until a retry fell due, a fresh event came, or the shelf's horizon (SHELVE_S) passed. A
        timer that fires early now waits out the rest: every cooldown ends in a probe at its time."""
        self._probe_timers.pop(hook_id, None)
        left_s = self.admission.cooldown_left(hook_id, self._clock())
        if self._stopping or left_s is None:
            return  # resumed meanwhile: nothing to probe
        if left_s > 0:
            self._arm_probe(hook_id, max(left_s, PROBE_REARM_MIN_S))
            return
        self._probe(hook_id)

    def _probe(self, hook_id: str) -> None:
        """Ask admission for the hook's next probe (see Admission.probe) and fetch it if it must come from the
        shelf. Called when the cooldown ends (_probe_due) and when fresh deliveries of the hook were shelved."""
        if not self._stopping:
            self._probe_needs(hook_id, self.admission.probe(hook_id, self._clock()))

    def _probe_needs(self, hook_id: str, probe: Probe) -> None:
        if probe is Probe.NONE or self._stopping:
            return
        if probe is Probe.READY:
            self._wake.set()
        else:
            self._background(self._probe_from_shelf(hook_id))

    # -- polling for due deliveries (retries, other processes' leftovers, restarts) ---------------
    async def _poll_loop(self) -> None:
        first = True
        while True:
            await self._care_for_shelves(look_for_others=first or self._shared_store)
            first = False
            await self._take_shelved()
            # Small claims, one after another: a large one decodes hundreds of events in one go and stalls
            # the loop (and everyone's latency) for milliseconds.
            room = min(self.admission.room(), CLAIM_BATCH)
            claimed = 0
            if room > 0 and not self._stopping:
                try:
                    admission = self.admission
                    skipped = admission.skipped(self._clock())[:SKIP_HOOKS_MAX]
                    # Each hook's and each domain's share of the claim is bounded (what its caps can start), and
                    # domains with no room here are left out: one tenant's due deliveries never fill a claim.
                    fair = Fair(
                        admission.hook_cap, admission.domain_cap, admission.skipped_domains()[:SKIP_DOMAINS_MAX]
                    )
                    jobs = await self._deliveries.claim(self.worker_id, room, self.lease_s, skipped, fair)
                    claimed = room if _cut_short(jobs, fair) else len(jobs)  # more may be due: claim again at once
                    self.submit(jobs)
                except Exception as exc:
                    _log_failure(exc, "claiming due deliveries failed")
            if claimed < room or room == 0:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel (stop would hang)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_interval_s):
                        await self._poke.wait()
                self._poke.clear()

    async def _care_for_shelves(self, look_for_others: bool) -> None:
        """Now and then: keep paused hooks' shelves at the horizon, and adopt shelves no worker here knows of
        (left by the last run, or by another worker that stopped): taken by hook as any other."""
        now = self._clock()
        if now < self._shelf_care_at:
            return
        self._shelf_care_at = now + min(SHELF_CARE_S, self.shelve_s / 4)
        for hook_id in self.admission.paused_shelves():
            await self._keep_shelved(hook_id)
        if look_for_others:
            try:
                for hook_id in await self._deliveries.shelved_hooks():
                    self._shelved(hook_id)
            except Exception as exc:  # due at their horizon instead
                _log_failure(exc, "looking for shelved deliveries failed")

    async def _take_shelved(self) -> None:
        """Take shelved deliveries of every hook that has room again, by hook, oldest first."""
        admission = self.admission
        admission.take_round()
        if self._stopping:
            return
        # One store trip for every hook with room: a burst fanned out to many hooks is taken back in one
        # transaction, each event decoded once (a trip per hook cost a commit and a decode per hook per event).
        rooms: list[tuple[str, int]] = []
        news: dict[str, int] = {}
        room_left = admission.room()
        domain_left: dict[str, int] = {}
        for hook_id in admission.shelves_known():
            room = min(admission.shelf_room(hook_id), room_left, CLAIM_BATCH)
            domain = admission.shelf_domain(hook_id)
            if domain is not None:
                room = min(room, domain_left.setdefault(domain, admission.domain_room(domain)))
            if room <= 0:
                continue
            rooms.append((hook_id, room))
            news[hook_id] = admission.shelf_news(hook_id)
            room_left -= room
            if domain is not None:
                domain_left[domain] -= room
        if not rooms:
            return
        try:
            jobs, taken = await self._deliveries.claim_shelves(self.worker_id, rooms, self.lease_s)
        except Exception as exc:
            _log_failure(exc, "taking shelved deliveries of %d hooks failed", len(rooms))
            return
        for job in jobs:
            admission.shelved_domain(job.hook.id, job.hook.domain)
        self.submit(jobs)
        for hook_id, room in rooms:
            admission.took(hook_id, room, taken.get(hook_id, 0), news[hook_id])

    # -- recording, batched -----------------------------------------------------------------------
    async def _record_loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel (stop would hang)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECORD_LINGER_S * 10):
                    await self._record_wake.wait()
            self._record_wake.clear()
            await asyncio.sleep(RECORD_LINGER_S)
            try:
                await self._flush()
            except Exception as exc:  # database down: keep the results and try again
                _log_failure(exc, "recording %d results failed; retrying", len(self._results))
                await asyncio.sleep(1.0)

    async def _flush(self) -> None:
        while self._results:
            batch, self._results = self._results[:RECORD_BATCH], self._results[RECORD_BATCH:]
            # Calls whose head settles with nothing of theirs held here: their next waits in the store (let go at
            # ingest, set behind, leased elsewhere). The recording transaction leases it here if it may go now, so
            # it goes at once, not at the next poll, and stays with the worker that sent the call's last one.
            heads = self.admission.lone_heads(f.delivery_id for f in batch if f.status != "pending")
            nexts: list[Job] = []
            try:
                if heads:
                    nexts = await self._deliveries.record_and_take_next(batch, self.worker_id, heads, self.lease_s)
                else:
                    await self._deliveries.record(batch, self.worker_id)
            except BaseException:
                self._results[:0] = batch
                raise
            # Recorded and not to be retried: an ordered hook's call may send its next (core/admission.py, "call line").
            if any([self.admission.settled(f.delivery_id) for f in batch if f.status != "pending"]):
                self._number_heads()
                self._wake.set()  # a next one numbered before (a replay) is ready already
            if self.admission.shelf_gate_opened:
                self.admission.shelf_gate_opened = False
                self._poke.set()  # a take now: those calls' next ones the store's gate kept on the shelf may go
            self.admission.forget(finish.delivery_id for finish in batch)
            if nexts and not self._stopping:  # stopping: they are released with the rest of what is leased here
                self.submit(nexts)  # after the heads settled here: each starts a line of its call again
            if self.admission.full and self.admission.room() >= CLAIM_BATCH:
                self.admission.full = False
                self._poke.set()
            if any(f.status == "pending" for f in batch):
                self._wake.set()

    async def _lease_loop(self) -> None:
        """Renew the lease of every delivery leased here, so a long queue never lets another worker take it."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            leased = self.admission.leased_ids()
            if leased:
                try:
                    await self._deliveries.extend(self.worker_id, leased, self.lease_s)
                except Exception as exc:
                    _log_failure(exc, "renewing %d leases failed", len(leased))
