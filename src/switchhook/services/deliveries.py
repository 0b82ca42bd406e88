"""Deliveries: claiming and recording for workers; the delivery log, replay and dry run (docs/behaviour.md)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

from switchhook.core.errors import Conflict, InvalidEvent, NotFound, ValidationFailed
from switchhook.core.events import Event, event_key
from switchhook.core.filters import explain
from switchhook.core.hooks import Hook
from switchhook.core.ids import delivery_id
from switchhook.services.access import Caller, effective_domain, require
from switchhook.services.events import Job
from switchhook.services.hooks import _int_param, check_hook_id
from switchhook.services.index import HookIndex
from switchhook.store.base import (
    BEHIND_AT,
    AttemptRow,
    ClaimedDelivery,
    DeliveryQuery,
    DeliveryRow,
    Fair,
    Finish,
    Recoverable,
    Store,
)

STATUSES = ("pending", "delivered", "failed", "expired")

#: Bulk recovery (`recover`): deliveries looked at and made due per store transaction (each a short hold of the
#: writer, so accepts and workers go on in between), and at most this many per request; what matched beyond is
#: counted in the answer (`beyondCap`): the same request again takes the next ones.
RECOVER_CHUNK = 500
RECOVER_CAP = 10_000
RECOVER_STATUSES = ("failed", "expired")
RECOVER_FIELDS = frozenset({"hook", "call", "status", "since", "until"})
CALL_ID_MAX_CHARS = 255
MAX_TIME_MS = 2**53  # JavaScript's safe integers: beyond them a time is not a time


def recover_filter(body: Any) -> Recoverable:
    """The JSON filter of a bulk recovery (docs/behaviour.md), or a 400 that says what is wrong with it."""
    if not isinstance(body, dict):
        raise ValidationFailed("Bad request: the recover body must be a JSON object.")
    unknown = sorted(set(body) - RECOVER_FIELDS)
    if unknown:
        raise ValidationFailed(f"Bad request: unknown recover field {unknown[0]!r}.")
    hook_id, call_id = body.get("hook"), body.get("call")
    if hook_id is None and call_id is None:
        raise ValidationFailed("Bad request: recover needs a hook or a call.")
    if hook_id is not None:
        if not isinstance(hook_id, str):
            raise ValidationFailed("Bad request: hook must be a string.")
        hook_id = check_hook_id(hook_id)
    if call_id is not None and (not isinstance(call_id, str) or not 0 < len(call_id) <= CALL_ID_MAX_CHARS):
        raise ValidationFailed(f"Bad request: call must be a string of 1 to {CALL_ID_MAX_CHARS} characters.")
    statuses = body.get("status", list(RECOVER_STATUSES))
    if (
        not isinstance(statuses, list)
        or not statuses
        or not all(isinstance(x, str) and x in STATUSES for x in statuses)
    ):
        raise ValidationFailed(f"Bad request: status must be a non-empty list of {', '.join(STATUSES)}.")
    window = [_time_ms(body.get(name), name) for name in ("since", "until")]
    since, until = window
    if since is not None and until is not None and since > until:
        raise ValidationFailed("Bad request: since is after until.")
    return Recoverable(
        hook_id, call_id, tuple(dict.fromkeys(statuses)), *(None if t is None else t / 1000 for t in window)
    )


def _time_ms(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIME_MS:
        raise ValidationFailed(f"Bad request: {name} must be milliseconds since the epoch (an integer >= 0).")
    return value


def call_chunks(rows: Sequence[DeliveryRow], size: int) -> list[list[str]]:
    """The ids of `rows` in chunks of about `size`, never parting a call's deliveries (one chunk is one
    transaction: an ordered hook's worker sees all of a call's recovered deliveries due at once, and sends them
    in event order, never a later one ahead of an earlier one still to be recovered)."""
    calls: dict[str | None, list[str]] = {}
    lone: list[list[str]] = []
    for row in rows:
        if row.call_id is None:
            lone.append([row.id])
        else:
            calls.setdefault(row.call_id, []).append(row.id)
    chunks: list[list[str]] = []
    current: list[str] = []
    for group in [*calls.values(), *lone]:
        if current and len(current) + len(group) > size:
            chunks.append(current)
            current = []
        current += group
    if current:
        chunks.append(current)
    return chunks


def _log_ms(value: str | None, name: str) -> int | None:
    """A time of the delivery log's query: whole milliseconds since the epoch, up to 2**53."""
    if value is None:
        return None
    if not value.isdigit() or len(value) > 16 or int(value) > 2**53:
        raise ValidationFailed(f"Bad request: {name} must be milliseconds since the epoch (an integer >= 0).")
    return int(value)


def _log_int(value: str | None, name: str, default: int, high: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or len(value) > 10 or not 1 <= int(value) <= high:
        raise ValidationFailed(f"Bad request: {name} must be an integer from 1 to {high}.")
    return int(value)


class TestSender(Protocol):
    """The delivery pipeline as the dry run needs it (implemented in `delivery/`)."""

    def preview(self, hook: Hook, event: Event, key: str, message_id: str) -> dict[str, Any]: ...
    async def send_test(self, hook: Hook, event: Event, key: str, message_id: str) -> dict[str, Any]: ...


def delivery_view(row: DeliveryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "hookId": row.hook_id,
        "eventId": row.event_id,
        "domain": row.domain,
        "status": row.status,
        "attempts": row.attempts,
        # A delivery set behind its call's earlier ones (store.base.BEHIND) has no time: it goes when they settle.
        "nextAttemptAt": row.next_at if row.status == "pending" and row.next_at < BEHIND_AT else None,
        "expiresAt": row.expires_at,
        "lastStatus": row.last_status,
        "lastError": row.last_error,
        "createdAt": row.created_at,
        "updatedAt": row.updated_at,
        "callId": row.call_id,
    }


def attempt_view(row: AttemptRow) -> dict[str, Any]:
    view: dict[str, Any] = {
        "n": row.n,
        "at": row.started_at,
        "durationMs": round(row.duration_ms, 3),
        "statusCode": row.status_code,
        "error": row.error,
        "response": row.response_excerpt,
    }
    if row.legs:  # a hook with a fallback URL sent it (docs/fallback.md): each request, its URL password masked
        view["legs"] = [
            {
                "leg": leg.leg,
                "url": leg.url,
                "statusCode": leg.status_code,
                "durationMs": leg.duration_ms,
                "error": leg.error,
                "reason": leg.reason,
            }
            for leg in row.legs
        ]
    return view


class DeliveriesService:
    def __init__(
        self,
        store: Store,
        index: HookIndex,
        clock: Callable[[], float] = time.time,
        *,
        tester: TestSender | None = None,
    ) -> None:
        self._store = store
        self._index = index
        self._clock = clock
        self.tester = tester  # what `test` sends with; None where no test is ever sent (offline tools, tests)

    # -- for workers ------------------------------------------------------------------------------
    async def claim(
        self, worker_id: str, limit: int, lease_s: float, skip_hooks: Sequence[str] = (), fair: Fair | None = None
    ) -> list[Job]:
        """Lease due deliveries (each hook's and domain's share bounded by `fair`); ones whose hook is gone or
        disabled are finished as failed right here."""
        now = self._clock()
        async with self._store.transaction() as tx:
            claimed = await tx.claim_due(worker_id, now, now + lease_s, limit, skip_hooks, fair)
        return await self._jobs(claimed, worker_id, now)

    async def claim_shelved(self, worker_id: str, hook_id: str, limit: int, lease_s: float) -> tuple[list[Job], int]:
        """Lease up to `limit` of one hook's shelved deliveries (see store.base.SHELVED), oldest first; the jobs,
        and how many came off the shelf (more than the jobs when the hook is gone: those are finished here)."""
        now = self._clock()
        async with self._store.transaction() as tx:
            claimed = await tx.claim_shelved(worker_id, hook_id, now, now + lease_s, limit)
        return await self._jobs(claimed, worker_id, now), len(claimed)

    async def claim_shelves(
        self, worker_id: str, rooms: Sequence[tuple[str, int]], lease_s: float
    ) -> tuple[list[Job], dict[str, int]]:
        """`claim_shelved` for several hooks at once: one transaction, and each event decoded once however many of
        the hooks it fanned out to (a round of takes after a burst is one event's deliveries to every hook).

        Per hook, how many came off its shelf; as many as asked when fewer came but some are left: an ordered
        hook's call's first shelved delivery waits there while another of its call is leased by another worker
        (store/sql.py CALL_GATE; its later ones are set behind, off the shelf, store.base.BEHIND), and a short
        take must not make the worker forget a shelf that is not empty (it is taken from again once the call's
        head settles, see delivery/worker.py _flush)."""
        now = self._clock()
        async with self._store.transaction() as tx:
            claimed = await tx.claim_shelves(worker_id, rooms, now, now + lease_s)
            taken: dict[str, int] = {}
            for item in claimed:
                taken[item.delivery.hook_id] = taken.get(item.delivery.hook_id, 0) + 1
            short = [hook_id for hook_id, room in rooms if taken.get(hook_id, 0) < room]
            for hook_id in await tx.still_shelved(short) if short else ():
                taken[hook_id] = dict(rooms)[hook_id]
        return await self._jobs(claimed, worker_id, now), taken

    async def number_calls(self, jobs: Sequence[Job]) -> None:
        """Give each job of an ordered hook its X-Call-Sequence (`job.call_seq`): the one it has, else its call's
        next, stored on the delivery (docs/calls.md). One transaction for all."""
        async with self._store.transaction() as tx:
            numbers = await tx.number_calls([(j.delivery_id, j.hook.id, j.call_id or "") for j in jobs])
        for job in jobs:
            job.call_seq = numbers.get(job.delivery_id)

    async def shelve(self, worker_id: str, delivery_ids: Sequence[str], shelve_s: float) -> None:
        async with self._store.transaction() as tx:
            await tx.shelve(worker_id, delivery_ids, self._clock() + shelve_s)

    async def reshelve(self, hook_id: str, shelve_s: float) -> int:
        """Keep a paused hook's shelf out of the due range for another `shelve_s` (what falls due within half)."""
        now = self._clock()
        async with self._store.transaction() as tx:
            return await tx.reshelve(hook_id, now + shelve_s / 2, now + shelve_s)

    async def shelved_hooks(self) -> list[str]:
        async with self._store.transaction() as tx:
            return await tx.shelved_hooks()

    async def _jobs(self, claimed: Sequence[ClaimedDelivery], worker_id: str, now: float) -> list[Job]:
        jobs, orphans = [], []
        events: dict[str, Event] = {}  # decoded once per claim: a fanned-out event's deliveries share it
        for item in claimed:
            row = item.delivery
            hook = self._index.get(row.hook_id)
            if hook is None or not hook.delivers or hook.domain != row.domain:
                # This process may not have heard of the change yet (NOTIFY in flight, listener
                # reconnecting): the store decides, never a stale index.
                hook = await self._refresh_hook(row.domain, row.hook_id)
            if hook is None or not hook.delivers:
                reason = "hook deleted" if hook is None else "hook disabled"
                orphans.append(Finish(row.id, "failed", row.attempts, now, None, reason, None))
                continue
            event = events.get(row.event_id)
            if event is None:
                event = events[row.event_id] = orjson.loads(item.payload)
            key = event_key(event) or hook.event
            jobs.append(
                Job(
                    row.id,
                    row.event_id,
                    hook,
                    event,
                    key,
                    row.attempts,
                    row.created_at,
                    row.expires_at,
                    row.call_id,
                    row.event_ts,
                    row.event_seq,
                    row.call_seq or None,  # a retry or a replay keeps its number: no store trip to read it again
                )
            )
        if orphans:
            await self.record(orphans, worker_id)
        return jobs

    async def _refresh_hook(self, domain: str, hook_id: str) -> Hook | None:
        async with self._store.transaction() as tx:
            row = await tx.get_hook(domain, hook_id)
        if row is None:
            self._index.remove(hook_id)
            return None
        self._index.put(row)
        return self._index.get(hook_id)

    async def record(self, results: Sequence[Finish], worker_id: str | None) -> None:
        async with self._store.transaction() as tx:
            await tx.finish(results, worker_id, self._clock())

    async def record_and_take_next(
        self, results: Sequence[Finish], worker_id: str, heads: Sequence[str], lease_s: float
    ) -> list[Job]:
        """`record`, and in the same transaction lease to `worker_id` the next delivery of each ordered call whose
        head among `heads` these results settle, when it may go now (store claim_next_of): due, let through by this
        transaction or let go at ingest. The worker that sent a call's delivery sends its next at once, not at its
        next poll (SWITCHHOOK_POLL_INTERVAL_S), and no other call's: a whole claim would take many calls' heads."""
        now = self._clock()
        wanted = set(heads)
        settled = [r.delivery_id for r in results if r.status != "pending" and r.delivery_id in wanted]
        async with self._store.transaction() as tx:
            await tx.finish(results, worker_id, now)
            claimed = await tx.claim_next_of(worker_id, settled, now, now + lease_s) if settled else []
        return await self._jobs(claimed, worker_id, now)

    async def extend(self, worker_id: str, delivery_ids: Sequence[str], lease_s: float) -> None:
        async with self._store.transaction() as tx:
            await tx.extend_leases(worker_id, delivery_ids, self._clock() + lease_s)

    async def release(self, worker_id: str | None) -> int:
        async with self._store.transaction() as tx:
            return await tx.release_leases(worker_id)

    async def disable_hook(self, hook: Hook, reason: str) -> None:
        async with self._store.transaction() as tx:
            await tx.disable_hook(hook.domain, hook.id, reason, self._clock())
            await tx.notify_hook_changed(hook.domain, hook.id)
            row = await tx.get_hook(hook.domain, hook.id)
        if row is not None:
            self._index.put(row)

    async def purge(self, retention_s: float) -> int:
        async with self._store.transaction() as tx:
            return await tx.purge_finished(self._clock() - retention_s)

    async def pending(self) -> int:
        async with self._store.transaction() as tx:
            return await tx.count_pending()

    # -- for the API ------------------------------------------------------------------------------
    async def search(
        self,
        caller: Caller,
        domain: str | None,
        params: dict[str, str | None],
    ) -> list[dict[str, Any]]:
        """The delivery log across the domain's hooks (`GET /api/v2/deliveries`): `call`, `hook`, `status`,
        `since`/`until` (ms since the epoch, on creation time), `limit` (1-1000, 40), `page` (from 1). Of one call:
        in event order (see `search_deliveries`); else newest first. A bad value is a 400."""
        require(caller, "delivery", "r")
        scope = effective_domain(caller, domain)
        call_id, hook_id, status = params.get("call"), params.get("hook"), params.get("status")
        if call_id is not None and not 0 < len(call_id) <= 255:
            raise ValidationFailed("Bad request: call must be 1 to 255 characters.")
        if hook_id is not None:
            hook_id = check_hook_id(hook_id)
        if status is not None and status not in STATUSES:
            raise ValidationFailed(f"Bad request: status must be one of {', '.join(STATUSES)}.")
        since, until = _log_ms(params.get("since"), "since"), _log_ms(params.get("until"), "until")
        if since is not None and until is not None and since > until:
            raise ValidationFailed("Bad request: since is after until.")
        size = _log_int(params.get("limit"), "limit", 40, 1000)
        number = _log_int(params.get("page"), "page", 1, 2**31)
        query = DeliveryQuery(
            call_id, hook_id, status, None if since is None else since / 1000, None if until is None else until / 1000
        )
        async with self._store.transaction() as tx:
            rows = await tx.search_deliveries(scope, query, size, (number - 1) * size)
        return [{**delivery_view(row), "eventKey": key} for row, key in rows]

    async def list_for_hook(
        self,
        caller: Caller,
        domain: str | None,
        hook_id: str,
        status: str | None,
        limit: str | None,
        page: str | None,
    ) -> list[dict[str, Any]]:
        require(caller, "delivery", "r")
        scope = effective_domain(caller, domain)
        hook_id = check_hook_id(hook_id)
        if status and status not in STATUSES:
            raise ValidationFailed(f"Bad request: status must be one of {', '.join(STATUSES)}.")
        size = _int_param(limit, "limit", 40, 1, 1000)
        number = _int_param(page, "page", 1, 1, 2**31)
        async with self._store.transaction() as tx:
            rows = await tx.list_deliveries(scope, hook_id, status or None, size, (number - 1) * size)
        return [delivery_view(r) for r in rows]

    async def get(self, caller: Caller, domain: str | None, delivery_id: str) -> dict[str, Any] | None:
        require(caller, "delivery", "r")
        scope = effective_domain(caller, domain)
        async with self._store.transaction() as tx:
            row = await tx.get_delivery(scope, delivery_id)
            if row is None:
                return None
            attempts = await tx.list_attempts(row.id)
            event = await tx.get_event(row.event_id)
        view = delivery_view(row)
        view["event"] = orjson.loads(event.payload) if event else None
        view["attempts_log"] = [attempt_view(a) for a in attempts]
        return view

    async def retry(self, caller: Caller, domain: str | None, delivery_id: str) -> dict[str, int]:
        require(caller, "delivery", "u")
        scope = effective_domain(caller, domain)
        async with self._store.transaction() as tx:
            changed = await tx.requeue(scope, delivery_id, self._clock())
            exists = changed or await tx.get_delivery(scope, delivery_id) is not None
        if not exists:
            raise NotFound("Delivery not found.")
        if not changed:
            raise Conflict("Delivery is being sent right now; retry it once this attempt is recorded.")
        return {"n": changed, "ok": 1}

    async def recover(self, caller: Caller, domain: str | None, body: Any) -> dict[str, int]:
        """Bulk replay: every delivery of the caller's domain the filter takes becomes due again, as `retry`
        makes one (same message id, a fresh ttl window); ones in flight are skipped and counted.

        Read in chunks of RECOVER_CHUNK (keyset: each an index range, a short transaction), at most RECOVER_CAP
        per request, then made due in chunks that keep each call whole (see `call_chunks`)."""
        require(caller, "delivery", "u")
        scope = effective_domain(caller, domain)
        match = recover_filter(body)
        found: list[DeliveryRow] = []
        after: tuple[float, str] | None = None
        more = True
        while more and len(found) < RECOVER_CAP:
            size = min(RECOVER_CHUNK, RECOVER_CAP - len(found))
            async with self._store.transaction() as tx:
                rows = await tx.find_recoverable(scope, match, after, size)
            found += rows
            more = len(rows) == size
            if rows:
                after = (rows[-1].created_at, rows[-1].id)
        beyond = 0
        if more:
            async with self._store.transaction() as tx:
                beyond = await tx.count_recoverable(scope, match, after)
        queued = in_flight = 0
        for ids in call_chunks(found, RECOVER_CHUNK):
            async with self._store.transaction() as tx:
                done, busy = await tx.recover(scope, ids, match.statuses, self._clock())
                if done:
                    await tx.notify_new_deliveries()  # workers of other processes: they are due now
            queued, in_flight = queued + done, in_flight + busy
        return {"queued": queued, "inFlight": in_flight, "beyondCap": beyond}

    async def test(self, caller: Caller, domain: str | None, hook_id: str, event: Any, send: bool) -> dict[str, Any]:
        """Dry run: filter result per key and the request that would go out; `send` really sends it."""
        require(caller, "hook", "r")
        scope = effective_domain(caller, domain)
        hook_id = check_hook_id(hook_id)
        if not isinstance(event, dict):
            raise InvalidEvent("Bad request: the test body must be one event (a JSON object).")
        key = event_key(event)
        if key is None:
            raise InvalidEvent("Bad request: event has no Event-Name.")
        async with self._store.transaction() as tx:
            row = await tx.get_hook(scope, hook_id)
        if row is None:
            raise NotFound("Hook not found.")
        hook = Hook.compile(row.id, row.domain, row.doc, self._index.limits)
        assert self.tester is not None
        message_id = delivery_id("test", hook.id)  # UUID-shaped as real ones, stable per hook
        # Regexes take their time from the domain's matching budget, as when events are accepted (every
        # condition is tried here, so without it a dry run of many slow patterns held the event loop for seconds).
        allowance = self._index.regex_budgets.allowance(hook.domain, notes=True)
        results = explain(hook.conditions, event, allowance)
        report: dict[str, Any] = {
            "eventKey": key,
            "eventMatches": key in hook.events,
            "enabled": hook.delivers,
            "filter": results,
            "filterPasses": all(results.values()),
            **({"filterUnknown": dict(hook.filter_notes)} if hook.filter_notes else {}),
            **({"filterNotEvaluated": allowance.notes} if allowance.notes else {}),
            "request": self.tester.preview(hook, event, key, message_id),
        }
        if send:
            require(caller, "hook", "u")
            report["response"] = await self.tester.send_test(hook, event, key, message_id)
        return report
