"""Accepting events (docs/behaviour.md): derive key and domain, match hooks, store the deliveries, hand them on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from switchhook.core import ids
from switchhook.core.admission import Goes, Plan
from switchhook.core.errors import InvalidEvent, PayloadTooLarge, PermissionDenied, SwitchhookError, Unavailable
from switchhook.core.events import DEFAULT_DOMAIN_HEADERS, Event, event_domain, event_key
from switchhook.core.filters import passes
from switchhook.core.hooks import Hook
from switchhook.services.batching import GroupCommit
from switchhook.services.catalogue import SeenKeys
from switchhook.services.index import HookIndex
from switchhook.services.limits import RateLimiter
from switchhook.store.base import SHELVED, EventRow, NewDelivery, Store

logger = logging.getLogger("switchhook.events")

#: Deliveries per transaction of one accept (RELIABILITY.md, "Hostile tenants"): an accept of many more is committed
#: in chunks of about this size, so the other domains' accepts, queued meanwhile, are committed between its chunks
#: instead of after all of it (one POST of 1,000,000 deliveries held every tenant's ingest for 17 s).
COMMIT_CHUNK = 5_000
#: Where an event's call id is found (SWITCHHOOK_CALL_HEADERS): the first non-empty of these headers. FreeSWITCH
#: puts the channel's `call_uuid` in Channel-Call-UUID of every channel event; events without it fall back to the
#: variable, then to the channel's own Unique-ID.
DEFAULT_CALL_HEADERS: tuple[str, ...] = ("Channel-Call-UUID", "variable_call_uuid", "Unique-ID")


@dataclass(slots=True)
class Job:
    """One delivery ready to send: what a worker needs without reading the store again."""

    delivery_id: str
    event_id: str
    hook: Hook
    event: Event
    event_key: str
    attempts: int
    created_at: float
    expires_at: float | None
    call_id: str | None = None  # the event's call (call_of); None: an event without one
    event_ts: int | None = None  # event order key (order_of): Event-Date-Timestamp, microseconds since the epoch
    event_seq: int | None = None  # then Event-Sequence
    call_seq: int | None = None  # an ordered hook's X-Call-Sequence, once taken (delivery/worker.py, docs/calls.md)


def call_of(event: Event, headers: Sequence[str] = DEFAULT_CALL_HEADERS) -> str | None:
    """The event's call id: the first non-empty string of `headers`, else None (an event without a call)."""
    for header in headers:
        value = event.get(header)
        if value and isinstance(value, str):
            return value
    return None


def order_of(event: Event) -> tuple[int | None, int | None]:
    """The event's order key: (Event-Date-Timestamp in microseconds, Event-Sequence), None where absent or not an
    integer. Both are decimal strings in FreeSWITCH's events (a number in a JSON POST is taken too)."""
    return _int_header(event.get("Event-Date-Timestamp")), _int_header(event.get("Event-Sequence"))


def _int_header(value: Any) -> int | None:
    if isinstance(value, str):
        if value.isdigit() and len(value) <= 18:  # fits a BIGINT
            return int(value)
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**18:
        return value
    return None


class FastPath(Protocol):
    """An in-process worker that takes fresh deliveries at once, so the common case never waits for a poll. Where
    each goes (leased to it, shelved, or left due) is its admission's decision (core/admission.py)."""

    def plan(self, now: float) -> Plan:
        """Decide, delivery by delivery, where one accept's fresh deliveries go."""
        ...

    def submit(self, jobs: list[Job], shelved: Iterable[str]) -> None:
        """Once stored: the jobs planned as leased, and the hooks some of whose deliveries were shelved."""
        ...


@dataclass(slots=True)
class _Write:
    """One accept's share of a group commit."""

    events: list[EventRow]
    deliveries: list[NewDelivery]
    jobs: list[Job]  # the deliveries handed to the fast path, once stored
    now: float
    shelved_hooks: set[str]  # hooks some of whose deliveries were shelved: the worker is told once stored


@dataclass(slots=True)
class AcceptResult:
    accepted: int = 0
    deliveries: int = 0
    dropped: int = 0
    duplicates: int = 0
    by_source: dict[str, int] = field(default_factory=dict)


class EventCounters(Protocol):
    def received(self, source: str, count: int) -> None: ...
    def dropped(self, source: str, reason: str, count: int) -> None: ...


class EventsService:
    def __init__(
        self,
        store: Store,
        index: HookIndex,
        *,
        domain_headers: Sequence[str] = DEFAULT_DOMAIN_HEADERS,
        call_headers: Sequence[str] = DEFAULT_CALL_HEADERS,
        counters: EventCounters | None = None,
        fast_path: FastPath | None = None,
        clock: Callable[[], float] = time.time,
        max_deliveries_per_request: int = 50_000,
        commit_chunk: int = COMMIT_CHUNK,
        seen: SeenKeys | None = None,
    ) -> None:
        self._store = store
        self._index = index
        self._domain_headers = tuple(domain_headers)
        self._call_headers = tuple(call_headers)
        self._counters = counters
        self._clock = clock
        self.fast_path = fast_path  # None: every delivery waits for a worker's poll (API-only processes)
        self.max_deliveries_per_request = max_deliveries_per_request
        self.commit_chunk = commit_chunk
        self._seen = seen  # the catalogue's lastSeen and live keys (services/catalogue.py says why here)
        self._writes: GroupCommit[_Write, set[str]] = GroupCommit(self._store_writes, item_at_fault=_bad_input)

    async def match(self, event: Event, domain: str, key: str) -> list[Hook]:
        """Hooks of this domain and key whose filters pass.

        `reg` conditions take their time from the domain's matching budget (core/filters.py RegexBudgets):
        what is left once it is spent does not hold, for this event. An event that spent a millisecond or
        more of it then waits as long before the next event is matched, leaving the loop to the others: a
        hostile domain holds the loop at most half the time, one event's budget at a time, never a whole
        request's (docs/behaviour.md, Regex filters). Hooks without `reg` cost nothing more.
        """
        allowance = None
        matched = []
        for hook in self._index.find(domain, key):
            if hook.regexes:
                if allowance is None:
                    allowance = self._index.regex_budgets.allowance(domain)
                if passes(hook.conditions, event, allowance):
                    matched.append(hook)
            elif passes(hook.conditions, event):
                matched.append(hook)
        if allowance is not None and allowance.spent_ns >= 1_000_000:
            await asyncio.sleep(allowance.spent_ns / 1e9)
        return matched

    async def accept(
        self,
        events: Sequence[Event],
        *,
        source: str,
        confine_to: str | None = None,
        strict: bool = False,
        limiter: RateLimiter | None = None,
    ) -> AcceptResult:
        """Store one delivery per matching (event, hook), durably, then return.

        `confine_to`: a domain caller's domain (an event naming another domain is refused; one with none
        gets it). `strict`: one HTTP request: refuse the whole batch on an event without Event-Name (sources drop
        it), and one whose events match more than `max_deliveries_per_request` deliveries (413, nothing stored; a
        source's message is one event, bounded by the hooks one event key may have).
        `limiter`: per-domain rate limit, checked before anything is stored (the batch is all or nothing).

        An accept of more than `commit_chunk` deliveries is committed in chunks (see COMMIT_CHUNK); should a
        later chunk fail, the accept fails (no 202, no ack) with the earlier chunks stored and delivered: sent
        again, events with a stable id (a FreeSWITCH event's `Core-UUID` and `Event-Sequence`, every AMQP and ESL
        event) are de-duplicated, the others stored again (docs/behaviour.md: at least once).
        """
        now = self._clock()
        result = AcceptResult(accepted=0)
        planned: list[tuple[EventRow, Event, str, list[Hook]]] = []
        matched = 0  # deliveries the planned events would create
        for position, event in enumerate(events):
            key = event_key(event)
            if key is None:
                if strict:
                    raise InvalidEvent(f"Bad request: event {position} has no Event-Name.")
                result.dropped += 1
                self._count_dropped(source, "no_event_name")
                continue
            domain = event_domain(event, self._domain_headers)
            if "\x00" in key or (domain is not None and "\x00" in domain):
                # Text columns cannot hold NUL (PostgreSQL refuses it): a client error, never a poison loop.
                if strict:
                    raise InvalidEvent(f"Bad request: event {position} has a NUL character in its name or domain.")
                result.dropped += 1
                self._count_dropped(source, "nul_character")
                continue
            if confine_to is not None:
                if domain is not None and domain != confine_to:
                    raise PermissionDenied(f"Permission denied: event {position} belongs to another domain.")
                domain = confine_to
            result.accepted += 1
            if domain is None:
                result.dropped += 1
                self._count_dropped(source, "no_domain")
                continue
            if self._seen is not None:
                self._seen.note(domain, key, event, now)
            hooks = await self.match(event, domain, key)
            if not hooks:
                continue
            try:
                payload = orjson.dumps(event).decode()
            except orjson.JSONEncodeError:  # e.g. a lone surrogate from a "\ud800" JSON escape
                if strict:
                    raise InvalidEvent(
                        f"Bad request: event {position} contains text that is not valid Unicode."
                    ) from None
                result.dropped += 1
                self._count_dropped(source, "invalid_unicode")
                continue
            row = EventRow(ids.event_id(event, domain, payload, source, now), domain, key, source, payload, now)
            planned.append((row, event, key, hooks))
            matched += len(hooks)
        if strict and matched > self.max_deliveries_per_request:
            raise PayloadTooLarge(
                f"Request Entity Too Large: the events of this request match {matched} deliveries, more than the"
                f" {self.max_deliveries_per_request} one request may create; send them in smaller batches."
            )
        if limiter is not None:
            per_domain: dict[str, int] = {}
            for row, *_ in planned:
                per_domain[row.domain] = per_domain.get(row.domain, 0) + 1
            for domain, count in per_domain.items():
                limiter.take(domain, count)
        if self._counters is not None and len(events):
            self._counters.received(source, len(events))
        if not planned:
            return result
        unique = _unique_events(planned)
        result.duplicates = len(planned) - len(unique)
        for chunk in _chunks(unique, matched, self.commit_chunk):
            # Planned per chunk, just before its write: the worker's room is what it is then.
            deliveries, jobs, shelved_hooks, plan = self._plan_deliveries(chunk, now)
            try:
                new = await self._writes.submit(_Write([p[0] for p in chunk], deliveries, jobs, now, shelved_hooks))
            finally:
                if plan is not None:
                    plan.release()
            if len(new) < len(chunk):  # a redelivered event: stored before, its deliveries never sent twice
                deliveries = [d for d in deliveries if d.event_id in new]
                result.duplicates += len(chunk) - len(new)
            result.deliveries += len(deliveries)
        return result

    async def _store_writes(self, writes: Sequence[_Write]) -> list[set[str]]:
        """Store the events and deliveries of concurrent accepts in one transaction; per accept, the ids of the
        events it stored first (an event stored before, or by an earlier accept of this batch, is a duplicate)."""
        unique = {row.id: row for write in writes for row in write.events}
        async with self._store.transaction() as tx:
            fresh = await tx.store_events(list(unique.values()), [(w.deliveries, w.now) for w in writes])
            if any(d.leased_by is None for w in writes for d in w.deliveries):
                await tx.notify_new_deliveries()  # some are left for workers elsewhere: wake them
        new = set(fresh.value)
        stored: list[set[str]] = []
        for write in writes:
            mine = {row.id for row in write.events if row.id in new}
            new -= mine
            stored.append(mine)
        if self.fast_path is not None:
            gated = await self._gate_calls(writes, stored)
            # Straight from the writer, before the accepts resume: a loop turn sooner on the wire. Committed
            # already: a failure here must not make the group commit write it all again (then as duplicates),
            # nor keep the other accepts' deliveries from the worker.
            for write, mine in zip(writes, stored, strict=True):
                try:
                    jobs = (
                        write.jobs if len(mine) == len(write.events) else [j for j in write.jobs if j.event_id in mine]
                    )
                    if gated:
                        jobs = [j for j in jobs if j.delivery_id not in gated]
                    if jobs or write.shelved_hooks:
                        # Shelved ones are told of once stored: a worker looking for them before the commit finds none.
                        self.fast_path.submit(jobs, write.shelved_hooks)
                except Exception:
                    logger.exception(
                        "handing stored deliveries to the worker failed; they are claimed when leases lapse"
                    )
        return stored

    async def _gate_calls(self, writes: Sequence[_Write], stored: list[set[str]]) -> set[str]:
        """Ordered hooks' fresh deliveries leased to this worker at birth whose call has another pending delivery
        not leased here before them (older ones waiting in the store or on a shelf) or leased by another worker (in
        flight there) are left due instead, so the store's gate sends the call one delivery at a time, in order
        (docs/calls.md); the worker that settles the call's earlier one takes them (store claim_next_of). Their
        ids; none when the store fails (the worker sends them then, as before the gate)."""
        new = set().union(*stored)
        leased = {
            d.id: d.leased_by
            for w in writes
            for d in w.deliveries
            if d.call_seq == 0 and d.leased_by not in (None, SHELVED) and d.event_id in new
        }
        if not leased:
            return set()
        gated: set[str] = set()
        try:
            async with self._store.transaction() as tx:
                for worker_id in set(leased.values()):
                    ids = sorted(i for i, w in leased.items() if w == worker_id)
                    gated |= await tx.ungate_calls(str(worker_id), ids)
                if gated:
                    await tx.notify_new_deliveries()
        except Exception:
            logger.exception("checking ordered calls at ingest failed; their fresh deliveries are sent as leased")
            return set()
        return gated

    def _plan_deliveries(
        self, planned: list[tuple[EventRow, Event, str, list[Hook]]], now: float
    ) -> tuple[list[NewDelivery], list[Job], set[str], Plan | None]:
        plan = self.fast_path.plan(now) if self.fast_path is not None else None
        deliveries: list[NewDelivery] = []
        jobs: list[Job] = []
        for row, event, key, hooks in planned:
            call_id = call_of(event, self._call_headers)  # once per event, not per delivery
            event_ts, event_seq = order_of(event)
            for hook in hooks:
                ttl = hook.ttl_s
                expires_at = now + ttl if ttl is not None else None
                delivery_id = ids.delivery_id(row.id, hook.id)
                next_at, leased_by, lease_until = now, None, None
                if plan is not None:
                    goes = plan.admit(hook.id, hook.domain)
                    if goes is Goes.LEASED:
                        jobs.append(
                            Job(delivery_id, row.id, hook, event, key, 0, now, expires_at, call_id, event_ts, event_seq)
                        )
                        leased_by, lease_until = plan.leased_by, plan.lease_until
                    elif goes is Goes.SHELVED:
                        next_at, leased_by = plan.shelved_until, SHELVED
                deliveries.append(
                    NewDelivery(
                        delivery_id,
                        row.id,
                        hook.id,
                        row.domain,
                        next_at,
                        expires_at,
                        leased_by,
                        lease_until,
                        call_id,
                        event_ts,
                        event_seq,
                        0 if hook.ordered and call_id is not None else None,  # its call's gate (docs/calls.md)
                    )
                )
        if plan is None:
            return deliveries, jobs, set(), None
        plan.reserve()  # until the write is over: concurrent accepts' plans see this one's room as taken
        return deliveries, jobs, plan.shelved, plan

    def _count_dropped(self, source: str, reason: str) -> None:
        if self._counters is not None:
            self._counters.dropped(source, reason, 1)


def _bad_input(exc: Exception) -> bool:
    """An accept's own data made the write fail (e.g. text PostgreSQL cannot store), not the database."""
    return isinstance(exc, SwitchhookError) and not isinstance(exc, Unavailable)


def decode_payload(payload: str) -> Any:
    return orjson.loads(payload)


def _chunks(
    planned: list[tuple[EventRow, Event, str, list[Hook]]], deliveries: int, size: int
) -> Iterable[list[tuple[EventRow, Event, str, list[Hook]]]]:
    """The planned events in runs of about `size` deliveries (an event is never split); all at once when they fit."""
    if deliveries <= size:
        yield planned
        return
    chunk: list[tuple[EventRow, Event, str, list[Hook]]] = []
    count = 0
    for item in planned:
        chunk.append(item)
        count += len(item[3])
        if count >= size:
            yield chunk
            chunk, count = [], 0
    if chunk:
        yield chunk


def _unique_events(
    planned: list[tuple[EventRow, Event, str, list[Hook]]],
) -> list[tuple[EventRow, Event, str, list[Hook]]]:
    """The same event twice in one batch is one event."""
    seen: set[str] = set()
    unique = []
    for item in planned:
        if item[0].id not in seen:
            seen.add(item[0].id)
            unique.append(item)
    return unique
