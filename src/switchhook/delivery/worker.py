"""The delivery worker: fresh jobs at once (fast path), due ones by polling, sends under caps, records in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from switchhook.delivery.pipeline import AttemptReport, DeliveryPipeline
from switchhook.domain.breaker import Breakers, Change, Health, health_of
from switchhook.domain.retry import Delivered, GiveUp
from switchhook.services.deliveries import DeliveriesService
from switchhook.services.events import Job
from switchhook.store.base import Finish

logger = logging.getLogger("switchhook.delivery")

RECORD_BATCH = 500
CLAIM_BATCH = 200
SKIP_HOOKS_MAX = 200
RECORD_LINGER_S = 0.01
#: A hook's in-memory backlog, in multiples of its in-flight cap: deep enough that a healthy, busy hook's fresh
#: deliveries go straight to the sender (not through the store and a claim), shallow enough that a dead
#: endpoint's backlog waits in the store rather than in memory.
PARKED_PER_SLOT = 16
#: How far off a shelved delivery's next_at is (see store.base.SHELVED): it waits for room here, taken by hook,
#: and is due on its own then only if this worker is gone; a paused hook's shelf is pushed out again meanwhile.
SHELVE_S = 600.0
#: How often a paused hook's shelf is pushed out again (whatever its cooldown) and, with several workers on one
#: database, shelves no worker here knows of are looked for (their worker stopped or died).
SHELF_CARE_S = 60.0
#: A paused hook's probe that could not be taken from the store (the database failed) is tried again this much later.
PROBE_RETRY_S = 1.0
#: The shortest wait when a paused hook's timer fired before its cooldown was over by the breaker's clock (see
#: _probe_due): uvloop counts timers in whole milliseconds, so a shorter one could fire at once, again and again.
PROBE_REARM_MIN_S = 0.002


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 1) - 1
    if left:
        counts[key] = left
    else:
        counts.pop(key, None)


class Observer:
    """Hooks for metrics; the runtime passes a Prometheus-backed one."""

    def attempt(self, report: AttemptReport, latency_s: float | None) -> None: ...
    def in_flight(self, count: int) -> None: ...


class DeliveryWorker:
    """Global, per-domain and per-hook in-flight caps: one dead endpoint, or one tenant's many dead endpoints,
    cannot starve the others (SPEC §8.3)."""

    def __init__(
        self,
        deliveries: DeliveriesService,
        pipeline: DeliveryPipeline,
        *,
        lease_s: float,
        max_in_flight: int,
        max_in_flight_per_hook: int,
        poll_interval_s: float,
        max_in_flight_per_domain: int = 128,
        max_queued: int = 20_000,
        breakers: Breakers | None = None,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.time,
        shelve_s: float = SHELVE_S,
        shared_store: bool = False,
    ) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = lease_s
        self.shelve_s = shelve_s
        self._shared_store = shared_store  # other workers use the same database (PostgreSQL)
        self._shelf_care_at = 0.0  # the first turn of the poll loop looks for shelves in any case
        self._deliveries = deliveries
        self._pipeline = pipeline
        self._max_in_flight = max_in_flight
        self._per_hook_cap = max_in_flight_per_hook
        self._per_hook_backlog = max_in_flight_per_hook * PARKED_PER_SLOT
        self._per_domain_cap = max_in_flight_per_domain
        self._poll_interval_s = poll_interval_s
        self._max_queued = max_queued
        self._breakers = breakers or Breakers(0, 0.0, 0.0)
        self._observer = observer or Observer()
        self._clock = clock
        self._ready: deque[Job] = deque()  # runnable now, FIFO
        self._parked: dict[str, deque[Job]] = {}  # per hook, waiting for that hook's cap
        self._parked_count = 0  # jobs in all of _parked
        # Hooks with deliveries shelved in the store, and how often they were told of (a take that comes back
        # short forgets a hook only if nothing was shelved meanwhile).
        self._shelved: dict[str, int] = {}
        self._take_asked: set[str] = set()  # hooks whose drained backlog already asked for a take
        self._probing: set[str] = set()  # half-open hooks whose probe is being taken from the shelf
        # One timer per paused hook, the only owner of its probe schedule (see _probe_due).
        self._probe_timers: dict[str, asyncio.TimerHandle] = {}
        self._full = False  # fresh deliveries were left in the store because this worker held max_queued
        self._held: set[str] = set()  # delivery ids queued, parked or in flight here
        self._in_flight_by_hook: dict[str, int] = {}
        self._in_flight_by_domain: dict[str, int] = {}
        self._parked_by_domain: dict[str, deque[Job]] = {}  # waiting for their domain's cap
        self._in_flight = 0
        self._results: list[Finish] = []
        self._wake = asyncio.Event()
        self._poke = asyncio.Event()
        self._record_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- FastPath protocol (services.events) ------------------------------------------------------
    def capacity(self) -> int:
        return max(0, self._max_queued - len(self._held))

    def hook_room(self, hook_id: str) -> int:
        """How many more fresh deliveries of this hook may wait here; the rest wait in the store, not in memory
        (a dead endpoint's backlog): shelved (see shelves) and taken once this hook's backlog has drained to half."""
        if self._breakers.reopens_at(hook_id) is not None:
            return 0  # its endpoint is down: the store keeps them until a probe gets through
        if self._parked_count >= self._max_queued // 2:
            return 0  # many slow hooks' backlogs together: keep the rest of the room for the others
        parked = self._parked.get(hook_id)
        room = self._per_hook_backlog - (len(parked) if parked else 0)
        return max(0, room)

    def shelves(self, hook_id: str) -> bool:
        """Whether this hook's fresh deliveries go on the shelf when hook_room has none for them: when its endpoint
        is paused or its own backlog is full, not when all hooks' backlogs together took the room (those are due,
        claimed as soon as there is room, so a healthy hook never waits for another's shelf)."""
        return self._breakers.reopens_at(hook_id) is not None or self._parked_count < self._max_queued // 2

    def overflowed(self, hook_id: str | None) -> None:
        """Fresh deliveries were left in the store for lack of room: this hook's (see hook_room: shelved, taken
        by hook), or (None) this worker's as a whole (see capacity: due, claimed). Either as soon as there is room."""
        if hook_id is None:
            self._full = True
        else:
            self._shelved[hook_id] = self._shelved.get(hook_id, 0) + 1
            self._probe(hook_id)  # half-open with nothing to probe with until now

    def submit(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.delivery_id not in self._held:
                self._held.add(job.delivery_id)
                self._ready.append(job)
        if not self._stopping:
            self._dispatch()  # now, not when the dispatch loop next runs: one loop turn sooner on the wire

    def poke(self) -> None:
        """New deliveries are due (another process stored them): poll now rather than at the next tick."""
        self._poke.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return len(self._held) - self._in_flight

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
        handed_back: list[Job] = []
        while self._ready and self._in_flight < self._max_in_flight:
            job = self._ready.popleft()
            domain = job.hook.domain
            if self._in_flight_by_domain.get(domain, 0) >= self._per_domain_cap:
                self._parked_by_domain.setdefault(domain, deque()).append(job)
                continue
            hook_id = job.hook.id
            cap = self._hook_cap(hook_id)
            if self._in_flight_by_hook.get(hook_id, 0) >= cap:
                if cap == 0 and self._parked.get(hook_id):
                    handed_back.append(job)  # paused, and its next probe already waits here
                    continue
                self._parked.setdefault(hook_id, deque()).append(job)
                self._parked_count += 1
                continue
            self._start(job)
        if handed_back:
            self._hand_back(handed_back)

    def _hook_cap(self, hook_id: str) -> int:
        return self._breakers.cap(hook_id, self._clock(), self._per_hook_cap)

    def _start(self, job: Job) -> None:
        hook_id, domain = job.hook.id, job.hook.domain
        self._in_flight_by_hook[hook_id] = self._in_flight_by_hook.get(hook_id, 0) + 1
        self._in_flight_by_domain[domain] = self._in_flight_by_domain.get(domain, 0) + 1
        self._in_flight += 1
        task = asyncio.create_task(self._send(job))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, job: Job) -> None:
        report: AttemptReport | None = None
        try:
            report = await self._pipeline.attempt(job)
        except Exception:
            logger.exception("delivery attempt crashed", extra={"delivery_id": job.delivery_id})
        finally:
            if report is not None:
                self._account(job, report)
            self._done(job)
        if report is None:  # nothing to record: let the lease lapse so the delivery is claimed again
            self._held.discard(job.delivery_id)
            return
        finish = report.finish
        latency = self._clock() - job.created_at if isinstance(report.outcome, Delivered) else None
        self._observer.attempt(report, latency)
        if isinstance(report.outcome, GiveUp) and report.outcome.disable_hook:
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

    def _done(self, job: Job) -> None:
        hook_id = job.hook.id
        self._in_flight -= 1
        # Still held until its result is recorded (see _flush): the lease keeps being renewed meanwhile, so a
        # database outage longer than the lease cannot hand a finished delivery to another worker.
        _decrement(self._in_flight_by_hook, hook_id)
        _decrement(self._in_flight_by_domain, job.hook.domain)
        self._probe(hook_id)  # still half-open after this attempt: it said nothing of the endpoint
        # A slot of this hook and of this domain opened: give each its longest waiter (dispatch re-checks caps).
        for queues, key in ((self._parked, hook_id), (self._parked_by_domain, job.hook.domain)):
            if queues is self._parked and self._in_flight_by_hook.get(hook_id, 0) >= self._hook_cap(hook_id):
                continue  # its circuit is open: its backlog stays parked until the cooldown ends
            self._unpark(queues, key, 1)
        if (
            hook_id in self._shelved
            and hook_id not in self._take_asked
            and len(self._parked.get(hook_id, ())) <= self._per_hook_backlog // 2
            and self.hook_room(hook_id) > 0
        ):
            # Its backlog has room again and the store holds its shelf: take from that now, not at the next poll.
            self._take_asked.add(hook_id)
            self._poke.set()
        self._wake.set()
        if not self._ready and self._in_flight == 0:
            self._record_wake.set()  # idle: record now rather than after the linger

    def _take(self, queues: dict[str, deque[Job]], key: str, count: int) -> list[Job]:
        parked = queues.get(key)
        taken: list[Job] = []
        while parked and len(taken) < count:
            taken.append(parked.popleft())
        if key in queues and not parked:
            del queues[key]
        if queues is self._parked:
            self._parked_count -= len(taken)
        return taken

    def _unpark(self, queues: dict[str, deque[Job]], key: str, count: int) -> None:
        """Move up to `count` of the longest waiters to the front of the ready queue, oldest first."""
        self._ready.extendleft(reversed(self._take(queues, key, count)))

    # -- circuit breaker (domain.breaker) ---------------------------------------------------------
    def _account(self, job: Job, report: AttemptReport) -> None:
        response = report.response
        health = health_of(response.status, response.terminal) if response is not None else Health.UNKNOWN
        hook_id = job.hook.id
        attempt = report.finish.attempt
        change = self._breakers.record(hook_id, health, self._clock(), attempt.started_at if attempt else None)
        if change is Change.OPENED:
            self._let_go_of_backlog(hook_id)
            if hook_id in self._shelved:
                self._background(self._keep_shelved(hook_id))
            reopens_at = self._breakers.reopens_at(hook_id) or self._clock()
            pause = max(0.0, reopens_at - self._clock())
            logger.warning(
                "hook %s: endpoint down (%s); pausing its deliveries for %.0f s, then probing",
                hook_id,
                report.finish.last_error or f"HTTP {report.finish.last_status}",
                pause,
                extra={"hook_id": hook_id, "domain": job.hook.domain},
            )
            self._arm_probe(hook_id, pause)
        elif change is Change.CLOSED:
            logger.info("hook %s: endpoint answers again; deliveries resume", hook_id, extra={"hook_id": hook_id})
            self._disarm_probe(hook_id)
            self._unpark(self._parked, hook_id, self._per_hook_cap)
            self._poke.set()  # its backlog in the store: claim it now
            self._wake.set()

    def _let_go_of_backlog(self, hook_id: str) -> None:
        """A paused hook keeps one delivery here (the next probe); the rest go back to the store, leases
        ended, so a dead endpoint's backlog never holds this worker's room (or leases) for the whole outage."""
        parked = self._parked.get(hook_id)
        if not parked or len(parked) <= 1:
            return
        probe = self._take(self._parked, hook_id, 1)  # the longest waiter stays for the probe
        released = self._take(self._parked, hook_id, len(parked))
        self._parked[hook_id] = deque(probe)
        self._parked_count += len(probe)
        self._hand_back(released)

    def _hand_back(self, jobs: list[Job]) -> None:
        """Forget these jobs (of paused hooks) here and shelve them in the store until their hooks answer again."""
        ids = [job.delivery_id for job in jobs]
        for delivery_id in ids:
            self._held.discard(delivery_id)
        self._background(self._shelve({job.hook.id for job in jobs}, ids))

    async def _shelve(self, hook_ids: set[str], delivery_ids: list[str]) -> None:
        try:
            await self._deliveries.shelve(self.worker_id, delivery_ids, self.shelve_s)
        except Exception as exc:  # they come back when the lease lapses instead
            logger.warning("shelving %d deliveries of a paused hook failed: %s", len(delivery_ids), exc)
            return
        for hook_id in hook_ids:
            self.overflowed(hook_id)

    async def _keep_shelved(self, hook_id: str) -> None:
        """A paused hook's shelf stays out of the due range while the outage lasts (see SHELVE_S)."""
        try:
            await self._deliveries.reshelve(hook_id, self.shelve_s)
        except Exception as exc:  # due at their horizon instead: claims skip them while the hook is paused
            logger.warning("keeping hook %s's deliveries shelved failed: %s", hook_id, exc)

    async def _probe_from_shelf(self, hook_id: str) -> None:
        """Half-open with no probe here: take the oldest shelved delivery of the hook, else whatever is due."""
        jobs: list[Job] = []
        try:
            jobs, _ = await self._deliveries.claim_shelved(self.worker_id, hook_id, 1, self.lease_s)
        except Exception as exc:
            logger.warning("taking a probe for hook %s from the store failed: %s; trying again", hook_id, exc)
            self._arm_probe(hook_id, PROBE_RETRY_S)  # nothing else would: the hook would wait for its shelf's horizon
        finally:
            self._probing.discard(hook_id)
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
        reopens_at = self._breakers.reopens_at(hook_id)
        if self._stopping or reopens_at is None:
            return  # closed meanwhile: nothing to probe
        left_s = reopens_at - self._clock()
        if left_s > 0:
            self._arm_probe(hook_id, max(left_s, PROBE_REARM_MIN_S))
            return
        self._probe(hook_id)

    def _probe(self, hook_id: str) -> None:
        """Half-open with nothing on its way: one delivery goes as a probe (one waiting here, else the oldest on
        its shelf). Called when the cooldown ends (_probe_due), and again when a probe said nothing of the endpoint
        (expired, 429, refused by the egress guard) or fresh deliveries were shelved with no probe to send."""
        if self._stopping or self._breakers.reopens_at(hook_id) is None:
            return  # closed: the common case, on every finished attempt
        if self._breakers.is_open(hook_id, self._clock()):
            return  # still cooling down
        if self._in_flight_by_hook.get(hook_id, 0) or hook_id in self._probing:
            return
        if self._parked.get(hook_id):
            self._unpark(self._parked, hook_id, 1)
            self._wake.set()
        else:
            self._probing.add(hook_id)
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
            room = min(self.capacity(), CLAIM_BATCH)
            claimed = 0
            if room > 0 and not self._stopping:
                try:
                    jobs = await self._deliveries.claim(self.worker_id, room, self.lease_s, self._saturated())
                    claimed = len(jobs)
                    self.submit(jobs)
                except Exception as exc:
                    logger.warning("claiming due deliveries failed: %s", exc)
            if claimed < room or room == 0:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel (stop would hang)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_interval_s):
                        await self._poke.wait()
                self._poke.clear()

    async def _care_for_shelves(self, look_for_others: bool) -> None:
        """Now and then: keep paused hooks' shelves out of the due range, and adopt shelves no worker here knows
        of (left by the last run, or by another worker that stopped): taken by hook as any other."""
        now = self._clock()
        if now < self._shelf_care_at:
            return
        self._shelf_care_at = now + min(SHELF_CARE_S, self.shelve_s / 4)
        for hook_id in [h for h in self._shelved if self._breakers.reopens_at(h) is not None]:
            await self._keep_shelved(hook_id)
        if look_for_others:
            try:
                for hook_id in await self._deliveries.shelved_hooks():
                    self.overflowed(hook_id)
            except Exception as exc:  # due at their horizon instead
                logger.warning("looking for shelved deliveries failed: %s", exc)

    async def _take_shelved(self) -> None:
        """Take shelved deliveries of every hook that has room again, by hook, oldest first."""
        self._take_asked.clear()
        for hook_id in list(self._shelved):
            room = min(self.hook_room(hook_id), self.capacity(), CLAIM_BATCH)
            if room <= 0 or self._stopping:
                continue
            told = self._shelved.get(hook_id)
            try:
                jobs, taken = await self._deliveries.claim_shelved(self.worker_id, hook_id, room, self.lease_s)
            except Exception as exc:
                logger.warning("taking shelved deliveries of hook %s failed: %s", hook_id, exc)
                return
            self.submit(jobs)
            if taken < room and self._shelved.get(hook_id) == told:
                del self._shelved[hook_id]  # its shelf is empty

    def _saturated(self) -> list[str]:
        """Hooks with a full backlog here: claiming more of theirs would only park them (a dead endpoint)."""
        full = [hook_id for hook_id, parked in self._parked.items() if len(parked) >= self._per_hook_backlog]
        now = self._clock()
        for hook_id in self._breakers.tripped():
            # Paused: nothing to claim. Probing: claim only when no probe is here yet (parked or in flight).
            if (
                self._breakers.is_open(hook_id, now)
                or self._parked.get(hook_id)
                or self._in_flight_by_hook.get(hook_id)
            ):
                full.append(hook_id)
        return full[:SKIP_HOOKS_MAX]

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
                logger.warning("recording %d results failed: %s; retrying", len(self._results), exc)
                await asyncio.sleep(1.0)

    async def _flush(self) -> None:
        while self._results:
            batch, self._results = self._results[:RECORD_BATCH], self._results[RECORD_BATCH:]
            try:
                await self._deliveries.record(batch, self.worker_id)
            except BaseException:
                self._results[:0] = batch
                raise
            for finish in batch:
                self._held.discard(finish.delivery_id)
            if self._full and self.capacity() >= CLAIM_BATCH:
                self._full = False
                self._poke.set()
            if any(f.status == "pending" for f in batch):
                self._wake.set()

    async def _lease_loop(self) -> None:
        """Renew leases on everything held here, so a long queue never lets another worker take it."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            held = list(self._held)
            if held:
                try:
                    await self._deliveries.extend(self.worker_id, held, self.lease_s)
                except Exception as exc:
                    logger.warning("renewing %d leases failed: %s", len(held), exc)
