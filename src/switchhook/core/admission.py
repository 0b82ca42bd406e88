"""Admission: which of the deliveries a worker holds start now, which wait here, and which wait in the store.

Pure state, like `breaker.py`: no I/O, no clock (the worker passes `now`), no event loop. The worker
(`delivery/worker.py`) keeps the loops, the store calls and the timers, and asks this module every question;
ingest (`services/events.py`) asks it, through the worker, where each fresh delivery goes (`Plan`).

The lifecycle of one delivery, seen from one worker::

                              ingest's Plan
            ┌───────────────────────┼────────────────────────────┐
            │ room here             │ no room for its hook       │ no room here (full)
            │                       ▼                            ▼
            │                    shelved ── horizon passes ───▶ due ◀── recorded, to be retried
            │                       │ taken                      │ claim
            ▼                       ▼                            ▼
          ready ◀───────────────────┴────────────────────────────┘
         no  │ ▲ a slot of its hook
       slot  ▼ │ or domain opens
          parked ── its hook paused: handed back, all but the probe ──▶ shelved

          ready ── a slot free (in all, its domain, its hook): start ──▶ in flight ──▶ finished ──▶ recorded

    leased = ready + parked + in flight + finished-not-yet-recorded: everything this worker holds.

The words, each defined once here and used only so in the code:

- **due**: in the store, its `next_at` passed, leased by no worker: any worker's claim may lease it.
- **leased**: held by this worker, from its claim (or its Plan at ingest: leased from birth, or its take from a
  shelf) until its result is recorded; the worker renews the lease all that time. A leased delivery is ready,
  parked, in flight, or finished and waiting to be recorded.
- **ready**: leased and in line to start, first come first served.
- **parked**: leased and waiting for a slot: of its hook (the hook's **backlog**) or of its domain. A slot that
  opens goes to the longest waiter.
- **in flight**: its attempt started and has not finished. **Caps** bound how many are in flight: in all, per
  domain and per hook (a paused hook's cap is 0 while it cools down, 1 when half-open: `breaker.Breakers.cap`).
- **finished**: its attempt is over (the slot is free); it stays leased until **recorded**, its result written
  to the store (then it is due again for a retry, or done).
- **waiting**: leased and not started: ready or parked. Counted per hook and per domain.
- **room**: how many more deliveries may be leased here: in all (`room`), of one hook (`hook_room`: its
  backlog's free places, `PARKED_PER_SLOT` x its cap less its waiting; none while the hook is paused, and none
  for any hook while all backlogs together hold half the worker's room, which is kept for the others), or of one
  domain (`domain_room`: `PARKED_PER_SLOT` x the domain's cap less its waiting, so one tenant's many hooks
  cannot take the room every other tenant's fresh deliveries need).
- **full**: fresh deliveries were left due for lack of room (in all, or all backlogs together took their half):
  claimed as soon as there is room again.
- **shelved**: left in the store for lack of its hook's room (its own backlog full, its domain's room taken, or
  the hook paused), whether or not the worker is full, out of
  the range of due deliveries every claim walks: leased by no worker, `next_at` at the **horizon** (`shelve_s`,
  minutes off: due then anyway, should the worker that shelved it be gone). A shelf is one hook's shelved
  deliveries; the worker knows which hooks have one.
- **taken**: leased from its hook's shelf, oldest first, once the hook has room again.
- **handed back**: leased here, given up and shelved: a paused hook's backlog but its probe, or a delivery
  of a cooling-down hook that meets a probe already parked.
- **paused**: the hook's circuit is open or half-open (`breaker.py`): it **cools down** (nothing starts), then
  sends one **probe** at a time, until an answer closes the circuit (the hook **resumes**).
- **probe**: the one delivery a half-open hook sends: the longest waiter of its backlog (kept there when the rest
  is handed back), else the oldest on its shelf, else a due retry of the hook (a claim does not skip it then).
- **skipped**: hooks and domains a claim of due deliveries leaves out: claiming theirs would only park them
  (backlog or domain room full, cooling down, or a probe already here).
- **share**: the most one claim leases of one hook (its cap) and of one domain (the domain's cap), so the due
  deliveries of one tenant, however many, never fill a claim while another's wait behind them.

Ordered hooks (`"order": "call"`, docs/calls.md) add one rule before `ready`, per (hook, call)::

    leased ──▶ held (its call's line, in event order) ── the call's turn ──▶ numbered ──▶ ready ─▶ … ─▶ recorded
                    ▲                                                                                   │
                    └──── settled (delivered, failed for good, expired): the next of the line ────────────┘
                          a retry: none; the head comes back by a claim (numbered already) and goes first

- **call line**: the leased deliveries of one (hook, call) of an ordered hook. One of them is its **head**: the
  one whose turn it is, ready, parked, in flight, finished, or out in the store waiting for its retry (then not
  leased here: a claim brings it back, ready at once; a line with nothing held goes with its head, which any
  worker may claim then, store/sql.py CALL_GATE). The others are **held**: leased, waiting for the head to
  **settle** (its result recorded, not to be retried: delivered, failed for good or expired), sorted by **event
  order** (`Event-Date-Timestamp`, then `Event-Sequence`, then acceptance here); a late event, older than the
  head, waits its turn like the others and is never dropped.
- **numbered**: a head without its `X-Call-Sequence` yet waits for the worker to take it from the store
  (`to_number`, then `numbered`) before it is ready: taken as soon as it is its call's turn, while it waits for
  a slot, not in the slot (a store trip per start held each of the hook's slots that much longer). The number is
  its call's next as soon as it is the head: nothing of its call goes before it any more (a late event waits
  behind it). One that expires before it is sent gives its number back when its result is recorded (store/sql.py).
- Held deliveries count in the room (in all, of their hook and domain), not in what a claim skips for: a hook
  whose every call waits for a retry still gets its heads back by claims. Other calls of the hook, and other
  hooks, never wait for a call's head: head-of-line blocking is per call only.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from enum import Enum
from heapq import heappop, heappush
from typing import Any, Generic, Protocol, TypeVar

from switchhook.core.breaker import Breakers, Change, Health
from switchhook.core.hooks import Hook

#: A hook's backlog, in multiples of its cap: deep enough that a healthy, busy hook's fresh deliveries go
#: straight to the sender (not through the store and a claim), shallow enough that a dead endpoint's backlog
#: waits in the store rather than in memory.
PARKED_PER_SLOT = 16


class Work(Protocol):
    """What admission needs of a delivery: its id and its hook (for the hook's and the domain's caps); for an
    ordered hook, its call and the event's order (Event-Date-Timestamp in µs, Event-Sequence; None when absent),
    and its X-Call-Sequence once taken (None: not yet)."""

    @property
    def delivery_id(self) -> str: ...
    @property
    def hook(self) -> Hook: ...
    @property
    def call_id(self) -> str | None: ...
    @property
    def event_ts(self) -> int | None: ...
    @property
    def event_seq(self) -> int | None: ...
    @property
    def call_seq(self) -> int | None: ...


J = TypeVar("J", bound=Work)


class Goes(Enum):
    """Where a fresh delivery goes at ingest (see Plan)."""

    LEASED = "leased"  # to this worker, at once (the fast path)
    SHELVED = "shelved"  # its hook has no room: its own backlog is full or it is paused
    DUE = "due"  # the worker is full: claimed as soon as there is room


class Probe(Enum):
    """What a paused hook's probe needs (see Admission.probe)."""

    NONE = "none"  # not half-open, or a probe is on its way already
    READY = "ready"  # its longest waiter was made ready: dispatch
    FROM_SHELF = "from_shelf"  # none here: take the oldest of its shelf (then call probe_claimed)


_NOTHING_HANDED_BACK: tuple[None, tuple[()]] = (None, ())

#: Events without a timestamp or sequence sort after those with one, then by acceptance (see _CallLine).
_LAST = 1 << 62


class _CallLine(Generic[J]):
    """One (hook, call) of an ordered hook: its head's delivery id, and its held deliveries in event order."""

    __slots__ = ("head", "held")

    def __init__(self) -> None:
        self.head: str | None = None
        self.held: list[tuple[int, int, int, J]] = []  # a heap of (event_ts, event_seq, acceptance, job)


class Admission(Generic[J]):
    """The leased deliveries of one worker, its counts per hook, domain and in all, the shelves it knows of,
    and every decision about them. Global, per-domain and per-hook caps: one dead endpoint, or one tenant's
    many dead endpoints, cannot starve the others (docs/behaviour.md, "Backlogs and shelves")."""

    def __init__(
        self,
        breakers: Breakers,
        *,
        max_in_flight: int,
        max_in_flight_per_hook: int,
        max_in_flight_per_domain: int,
        max_leased: int,
    ) -> None:
        self.breakers = breakers
        self.max_in_flight = max_in_flight
        self.hook_cap = max_in_flight_per_hook  # a closed circuit's
        self.domain_cap = max_in_flight_per_domain
        self.max_leased = max_leased
        self.backlog_max = max_in_flight_per_hook * PARKED_PER_SLOT
        self.domain_waiting_max = max_in_flight_per_domain * PARKED_PER_SLOT
        #: Set when fresh deliveries were left due for lack of room; the worker clears it once it claims again.
        self.full = False
        self._leased: set[str] = set()  # delivery ids
        self._waiting_by_hook: dict[str, int] = {}  # leased and not started (ready or parked), per hook
        self._waiting_by_domain: dict[str, int] = {}  # the same, per domain
        # Planned at ingest and not yet leased (their accepts are being written): counted as taken room, so the
        # concurrent accepts of one group commit cannot each plan the same room.
        self._planned = 0
        self._planned_by_hook: dict[str, int] = {}
        self._planned_by_domain: dict[str, int] = {}
        self._ready: deque[J] = deque()
        self._backlogs: dict[str, deque[J]] = {}  # parked for their hook's slot, per hook
        self._backlogs_count = 0  # in all backlogs together
        self._parked_by_domain: dict[str, deque[J]] = {}  # parked for their domain's slot, per domain
        self._in_flight = 0
        self._in_flight_by_hook: dict[str, int] = {}
        self._in_flight_by_domain: dict[str, int] = {}
        # Hooks with a shelf, and how often it was told of: a take that comes back short forgets a shelf only
        # if nothing was shelved meanwhile (see shelf_news, took).
        self._shelves: dict[str, int] = {}
        self._shelf_domains: dict[str, str] = {}  # a shelf's domain, once known (shelves found in the store: not yet)
        self._take_asked: set[str] = set()  # hooks whose backlog drained and asked for a take this round
        self._skipped_full: set[str] = set()  # hooks the last claim skipped for a full backlog: their due ones wait
        self._probing: set[str] = set()  # half-open hooks whose probe is being taken from their shelf
        # Ordered hooks: the call lines, and how many are held in them, per hook and domain (see the docstring).
        self._calls: dict[tuple[str, str], _CallLine[J]] = {}
        self._heads: dict[str, tuple[str, str]] = {}  # a line's head's delivery id -> its (hook, call)
        self._held_by_hook: dict[str, int] = {}
        self._held_by_domain: dict[str, int] = {}
        self._accepted = itertools.count()  # acceptance order, the last tie-break of event order
        self._unnumbered: list[J] = []  # heads without their X-Call-Sequence yet, for the worker to number
        #: Set when a call's line ended with its head settled while its hook has a shelf: the call's next ones may
        #: wait there, kept back by the store's gate until now (store/sql.py CALL_GATE); the worker takes from the
        #: shelf at once rather than at its next poll, and clears it.
        self.shelf_gate_opened = False

    # -- counts -----------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def leased(self) -> int:
        return len(self._leased)

    def leased_ids(self) -> list[str]:
        """Every delivery leased here (for lease renewal)."""
        return list(self._leased)

    def is_leased(self, delivery_id: str) -> bool:
        return delivery_id in self._leased

    def backlog(self, hook_id: str) -> list[J]:
        """The hook's parked deliveries, longest waiter first."""
        return list(self._backlogs.get(hook_id, ()))

    @property
    def idle(self) -> bool:
        """Nothing ready and nothing in flight."""
        return not self._ready and self._in_flight == 0

    # -- room -------------------------------------------------------------------------------------
    def room(self) -> int:
        return max(0, self.max_leased - len(self._leased) - self._planned)

    def hook_room(self, hook_id: str) -> int:
        """How many more fresh deliveries of this hook may be leased here; the rest are shelved (its own backlog
        full, or paused) or left due (all backlogs together took their half), see shelves."""
        if self.breakers.reopens_at(hook_id) is not None:
            return 0  # paused: the store keeps them until a probe gets through
        if self._backlogs_count >= self.max_leased // 2:
            return 0  # many slow hooks' backlogs together: keep the rest of the room for the others
        taken = self._waiting_by_hook.get(hook_id, 0) + self._planned_by_hook.get(hook_id, 0)
        return max(0, self.backlog_max - taken - self._held_by_hook.get(hook_id, 0))

    def domain_room(self, domain: str) -> int:
        """How many more fresh deliveries of this domain's hooks may wait here; the rest are shelved by hook."""
        taken = self._waiting_by_domain.get(domain, 0) + self._planned_by_domain.get(domain, 0)
        return max(0, self.domain_waiting_max - taken - self._held_by_domain.get(domain, 0))

    def shelves(self, hook_id: str) -> bool:
        """Whether this hook's fresh deliveries are shelved when it has no room: when it is paused or its own
        backlog is full, not when only all backlogs together took the room (those are left due, claimed as soon
        as there is room, so a healthy hook never waits for another's shelf)."""
        return (
            self.breakers.reopens_at(hook_id) is not None
            or self._waiting_by_hook.get(hook_id, 0)
            + self._planned_by_hook.get(hook_id, 0)
            + self._held_by_hook.get(hook_id, 0)
            >= self.backlog_max
            or self._backlogs_count < self.max_leased // 2
        )

    def plan(self, leased_by: str, lease_until: float, shelved_until: float) -> Plan:
        """Decide, one by one, where the fresh deliveries of one accept go (see Plan)."""
        return Plan(self, leased_by, lease_until, shelved_until)

    def planned(self, by_hook: dict[str, int], by_domain: dict[str, int], sign: int) -> None:
        """A plan's leased deliveries are reserved (`sign` 1) until its accept is written and leased them (-1)."""
        for counts, taken in ((self._planned_by_hook, by_hook), (self._planned_by_domain, by_domain)):
            for key, count in taken.items():
                left = counts.get(key, 0) + sign * count
                if left > 0:
                    counts[key] = left
                else:
                    counts.pop(key, None)
        self._planned += sign * sum(by_hook.values())

    def skipped(self, now: float) -> list[str]:
        """Hooks a claim of due deliveries leaves out: claiming theirs would only park them."""
        backlog_max = self.backlog_max
        hook_ids = [hook_id for hook_id, waiting in self._waiting_by_hook.items() if waiting >= backlog_max]
        self._skipped_full = set(hook_ids)  # see wants_take: nothing else claims their due deliveries before the poll
        for hook_id in self.breakers.tripped():
            # Cooling down: nothing may start. Half-open: claim only when no probe is here yet (parked or in flight).
            if (
                self.breakers.is_open(hook_id, now)
                or self._backlogs.get(hook_id)
                or self._in_flight_by_hook.get(hook_id)
            ):
                hook_ids.append(hook_id)
        return hook_ids

    def skipped_domains(self) -> list[str]:
        """Domains a claim of due deliveries leaves out: their room here is taken."""
        most = self.domain_waiting_max
        return [domain for domain, waiting in self._waiting_by_domain.items() if waiting >= most]

    # -- leased → ready → in flight → finished → recorded -------------------------------------
    def lease(self, jobs: Iterable[J]) -> None:
        """These are leased here now (claimed, taken, or planned at ingest): ready, unless leased already; a
        delivery of an ordered hook's call is ready only when it is its call's turn (its head), else held in
        event order. Deliveries of one call leased together go in event order, whatever order they came in."""
        by_hook, by_domain = self._waiting_by_hook, self._waiting_by_domain
        lines: list[_CallLine[J]] = []
        for job in jobs:
            if job.delivery_id not in self._leased:
                self._leased.add(job.delivery_id)
                hook = job.hook
                call_id = job.call_id
                if hook.ordered and call_id is not None:
                    line = self._calls.get((hook.id, call_id))
                    if line is None:
                        line = self._calls[hook.id, call_id] = _CallLine()
                    if line.head != job.delivery_id:  # not its head coming back for a retry: held for now
                        self._hold(line, job)
                        lines.append(line)
                        continue
                    if job.call_seq is None:  # let go before its number was taken (a failed store call)
                        self._unnumbered.append(job)
                    else:
                        self._ready.append(job)
                else:
                    self._ready.append(job)
                by_hook[hook.id] = by_hook.get(hook.id, 0) + 1
                by_domain[hook.domain] = by_domain.get(hook.domain, 0) + 1
        for line in lines:
            if line.head is None:
                self._next_of(line)

    def dispatch(self, now: float) -> tuple[list[J], Sequence[J]]:
        """Start what the caps allow, in order: the jobs that start now (counted in flight), and those handed
        back (a cooling-down hook that has its probe parked already). The rest stay parked."""
        started: list[J] = []
        handed_back: list[J] = []
        ready = self._ready
        while ready and self._in_flight < self.max_in_flight:
            job = ready.popleft()
            hook = job.hook
            domain = hook.domain
            if self._in_flight_by_domain.get(domain, 0) >= self.domain_cap:
                self._parked_by_domain.setdefault(domain, deque()).append(job)
                continue
            hook_id = hook.id
            cap = self.breakers.cap(hook_id, now, self.hook_cap)
            if self._in_flight_by_hook.get(hook_id, 0) >= cap:
                if cap == 0 and self._backlogs.get(hook_id):
                    self._let_go(job.delivery_id)
                    self._not_waiting(hook_id, domain)
                    handed_back.append(job)
                    continue
                self._backlogs.setdefault(hook_id, deque()).append(job)
                self._backlogs_count += 1
                continue
            self._in_flight_by_hook[hook_id] = self._in_flight_by_hook.get(hook_id, 0) + 1
            self._in_flight_by_domain[domain] = self._in_flight_by_domain.get(domain, 0) + 1
            self._in_flight += 1
            self._not_waiting(hook_id, domain)
            started.append(job)
        return started, handed_back

    def finished(self, job: J, now: float) -> Probe:
        """Its attempt is over (it stays leased until recorded): its slots go to the longest waiters of its hook
        and of its domain, made ready first in line; and, still half-open after it (the attempt said nothing of
        the endpoint), the hook needs its next probe."""
        hook_id, domain = job.hook.id, job.hook.domain
        self._in_flight -= 1
        _decrement(self._in_flight_by_hook, hook_id)
        _decrement(self._in_flight_by_domain, domain)
        probe = self.probe(hook_id, now)
        # A slot of this hook and of this domain opened: give each its longest waiter (dispatch re-checks caps).
        if self._in_flight_by_hook.get(hook_id, 0) < self.breakers.cap(hook_id, now, self.hook_cap):
            self._unpark(self._backlogs, hook_id, 1)  # not while cooling down: the backlog stays parked
        self._unpark(self._parked_by_domain, domain, 1)
        return probe

    def wants_take(self, hook_id: str) -> bool:
        """After a finished job: whether its hook's backlog has drained to half with a shelf in the store, so the
        worker should take from the shelf now rather than at its next poll (asked once per take round), or with
        due deliveries the last claim skipped for its full backlog (a claim now gets them, not the next poll)."""
        if hook_id in self._skipped_full and self._waiting_by_hook.get(hook_id, 0) <= self.backlog_max // 2:
            self._skipped_full.discard(hook_id)
            return True
        if (
            hook_id in self._shelves
            and hook_id not in self._take_asked
            and self._waiting_by_hook.get(hook_id, 0) <= self.backlog_max // 2
            and self.shelf_room(hook_id) > 0
        ):
            self._take_asked.add(hook_id)
            return True
        return False

    def settled(self, delivery_id: str) -> bool:
        """Its result is recorded, and it is not to be retried (delivered, failed for good, expired): if it is its
        call's head, the next of the line, in event order, is its call's turn (to be numbered, see to_number); a
        line with none left is gone. Recorded, not merely finished: after a crash the store would send it again,
        and the receiver would see the call's next one before it. Whether a next one's turn came."""
        key = self._heads.pop(delivery_id, None)
        if key is None:
            return False
        line = self._calls[key]
        line.head = None
        if line.held:
            self._next_of(line)
            return True
        del self._calls[key]
        if key[0] in self._shelves:
            self.shelf_gate_opened = True
        return False

    def lone_heads(self, delivery_ids: Iterable[str]) -> list[str]:
        """Of these, the heads of call lines with nothing held here: once one settles, its call's next is not here
        but in the store (let go at ingest, set behind, on a shelf, or leased elsewhere), and the worker asks for it
        in the transaction that records the head (store claim_next_of) rather than at its next poll."""
        heads, calls = self._heads, self._calls
        return [i for i in delivery_ids if i in heads and not calls[heads[i]].held]

    def to_number(self) -> list[J]:
        """The heads that became their call's turn without an X-Call-Sequence since last asked: the worker takes
        their numbers from the store (one trip for all), then hands them to `numbered`."""
        heads, self._unnumbered = self._unnumbered, []
        return heads

    def numbered(self, heads: Iterable[J]) -> None:
        """Their numbers are taken (or, expired, they need none: the pipeline gives them up unsent): ready, last
        in line like any fresh delivery."""
        self._ready.extend(heads)

    def held(self, hook_id: str, call_id: str) -> list[J]:
        """The call's held deliveries, in event order (its head not among them)."""
        line = self._calls.get((hook_id, call_id))
        return [] if line is None else [entry[3] for entry in sorted(line.held)]

    def call_head(self, hook_id: str, call_id: str) -> str | None:
        """The delivery id whose turn it is in the call's line, if any."""
        line = self._calls.get((hook_id, call_id))
        return None if line is None else line.head

    def forget(self, delivery_ids: Iterable[str]) -> None:
        """No longer leased here: recorded, or (an attempt that crashed) left for its lease to lapse."""
        for delivery_id in delivery_ids:
            self._let_go(delivery_id)

    # -- paused hooks (breaker.py) ----------------------------------------------------------------
    def account(
        self, hook_id: str, health: Health, now: float, started: float | None = None
    ) -> tuple[Change | None, Sequence[J]]:
        """One finished attempt's health (begun at `started`): whether the hook paused or resumed because of it,
        and what is handed back. Paused: its backlog but the probe (the longest waiter) is handed back, so a
        dead endpoint's backlog never holds this worker's room, or leases, for the whole outage. Resumed: its
        backlog, up to its cap, is made ready first in line."""
        change = self.breakers.record(hook_id, health, now, started)
        if change is None:
            return _NOTHING_HANDED_BACK
        if change is Change.CLOSED:
            self._unpark(self._backlogs, hook_id, self.hook_cap)
            return change, ()
        backlog = self._backlogs.get(hook_id)
        if not backlog or len(backlog) <= 1:
            return change, ()
        probe = backlog.popleft()
        handed_back = list(backlog)
        self._backlogs[hook_id] = deque((probe,))
        self._backlogs_count -= len(handed_back)
        self.forget(job.delivery_id for job in handed_back)
        domain = probe.hook.domain
        for _ in handed_back:
            self._not_waiting(hook_id, domain)
        return change, handed_back

    def cooldown_left(self, hook_id: str, now: float) -> float | None:
        """Seconds until a paused hook is half-open (0 once it is); None when it is not paused."""
        reopens_at = self.breakers.reopens_at(hook_id)
        return None if reopens_at is None else max(0.0, reopens_at - now)

    def probe(self, hook_id: str, now: float) -> Probe:
        """A half-open hook with no probe on its way gets one: its longest waiter is made ready, else it is
        marked as probing and the worker takes one from its shelf. Asked when its cooldown ends, after each of
        its attempts (one that said nothing of the endpoint: expired, 429, refused by the egress guard) and when
        fresh deliveries of it were shelved."""
        if self.breakers.reopens_at(hook_id) is None:
            return Probe.NONE  # not paused: the common case, on every finished attempt
        if self.breakers.is_open(hook_id, now):
            return Probe.NONE  # still cooling down
        if self._in_flight_by_hook.get(hook_id, 0) or hook_id in self._probing:
            return Probe.NONE
        if self._backlogs.get(hook_id):
            self._unpark(self._backlogs, hook_id, 1)
            return Probe.READY
        self._probing.add(hook_id)
        return Probe.FROM_SHELF

    def probe_claimed(self, hook_id: str) -> None:
        """The claim of a probe from the hook's shelf is over (leased by `lease`, or none came)."""
        self._probing.discard(hook_id)

    # -- shelves ----------------------------------------------------------------------------------
    def shelved(self, hook_id: str, domain: str | None = None) -> None:
        """Deliveries of this hook (of `domain`, when known) were shelved (by ingest, by a hand back) or a shelf
        was found in the store."""
        self._shelves[hook_id] = self._shelves.get(hook_id, 0) + 1
        if domain is not None:
            self._shelf_domains[hook_id] = domain

    def shelved_domain(self, hook_id: str, domain: str) -> None:
        """The hook's domain, told by ingest's plan as it shelves (the worker is told of the shelf once stored)."""
        self._shelf_domains[hook_id] = domain

    def shelf_domain(self, hook_id: str) -> str | None:
        """The domain of the hook's shelf, once known (see shelved_domain)."""
        return self._shelf_domains.get(hook_id)

    def shelf_room(self, hook_id: str) -> int:
        """How many of the hook's shelf may be taken now: its room, and its domain's once the shelf's domain is
        known (a shelf found in the store learns it from its first take)."""
        room = self.hook_room(hook_id)
        domain = self._shelf_domains.get(hook_id)
        return room if domain is None or room == 0 else min(room, self.domain_room(domain))

    def has_shelf(self, hook_id: str) -> bool:
        return hook_id in self._shelves

    def shelves_known(self) -> list[str]:
        """Hooks with a shelf, in the order they were first told of."""
        return list(self._shelves)

    def paused_shelves(self) -> list[str]:
        """Shelves of paused hooks: the worker keeps them at the horizon while the pause lasts."""
        return [hook_id for hook_id in self._shelves if self.breakers.reopens_at(hook_id) is not None]

    def take_round(self) -> None:
        """A round of takes begins: each hook may ask for a take once more (see wants_take)."""
        self._take_asked.clear()

    def shelf_news(self, hook_id: str) -> int:
        """How often the hook's shelf was told of so far (pass it to `took`)."""
        return self._shelves.get(hook_id, 0)

    def took(self, hook_id: str, asked: int, taken: int, news: int) -> None:
        """A take of `asked` came back with `taken` off the shelf: short, and no news of the shelf since `news`,
        it is empty."""
        if taken < asked and self._shelves.get(hook_id) == news:
            del self._shelves[hook_id]
            self._shelf_domains.pop(hook_id, None)

    # -- internals --------------------------------------------------------------------------------
    def _let_go(self, delivery_id: str) -> None:
        """No longer leased here. A call's head that leaves for the store (its retry, a hand back) with nothing of
        its call held here takes its line along: any worker may claim it then (store/sql.py CALL_GATE), and a line
        left here would hold the call's next deliveries for a head that never comes back. With some held here, the
        line stays: their leases keep every other worker off the call, so the head comes back here."""
        self._leased.discard(delivery_id)
        key = self._heads.get(delivery_id)
        if key is not None:
            line = self._calls.get(key)
            if line is None or not line.held:
                del self._heads[delivery_id]
                self._calls.pop(key, None)

    def _hold(self, line: _CallLine[J], job: J) -> None:
        ts, seq = job.event_ts, job.event_seq
        entry = (_LAST if ts is None else ts, _LAST if seq is None else seq, next(self._accepted), job)
        heappush(line.held, entry)
        hook = job.hook
        self._held_by_hook[hook.id] = self._held_by_hook.get(hook.id, 0) + 1
        self._held_by_domain[hook.domain] = self._held_by_domain.get(hook.domain, 0) + 1

    def _next_of(self, line: _CallLine[J]) -> None:
        """The first of the line in event order becomes its head, waiting like any fresh delivery: ready once it
        has its number."""
        job = heappop(line.held)[3]
        line.head = job.delivery_id
        hook = job.hook
        self._heads[job.delivery_id] = (hook.id, job.call_id or "")
        _decrement(self._held_by_hook, hook.id)
        _decrement(self._held_by_domain, hook.domain)
        self._waiting_by_hook[hook.id] = self._waiting_by_hook.get(hook.id, 0) + 1
        self._waiting_by_domain[hook.domain] = self._waiting_by_domain.get(hook.domain, 0) + 1
        if job.call_seq is None:
            self._unnumbered.append(job)
        else:
            self._ready.append(job)  # numbered before: a replay, or taken by a worker that stopped

    def _not_waiting(self, hook_id: str, domain: str) -> None:
        """One of the hook's waiting deliveries started or was handed back."""
        _decrement(self._waiting_by_hook, hook_id)
        _decrement(self._waiting_by_domain, domain)

    def _unpark(self, queues: dict[str, deque[J]], key: str, count: int) -> None:
        """Move up to `count` of the longest waiters to the front of the ready line, oldest first."""
        waiting = queues.get(key)
        if not waiting:
            return
        moved: list[J] = []
        while waiting and len(moved) < count:
            moved.append(waiting.popleft())
        if not waiting:
            del queues[key]
        if queues is self._backlogs:
            self._backlogs_count -= len(moved)
        self._ready.extendleft(reversed(moved))


class Plan:
    """Where each fresh delivery of one accept goes, decided one by one in order: leased here while there is room
    for its hook, its domain and in all; else shelved when its hook has none (its own backlog full, or paused) or
    its domain has none, whether or not this worker is full; else due (this worker is full, or all backlogs
    together took their half; it claims them once there is room). Synchronous: nothing else changes the worker's
    state while ingest plans."""

    __slots__ = (
        "_admission",
        "_domain_first",
        "_domain_rooms",
        "_hook_first",
        "_hook_rooms",
        "_reserved",
        "_room",
        "lease_until",
        "leased_by",
        "shelved",
        "shelved_until",
    )

    def __init__(self, admission: Admission[Any], leased_by: str, lease_until: float, shelved_until: float) -> None:
        self._admission = admission
        self._room = admission.room()
        self._hook_rooms: dict[str, int] = {}  # per hook: its room left, else _SHELVES or _DUE
        self._domain_rooms: dict[str, int] = {}  # per domain: its room left
        self._hook_first: dict[str, int] = {}  # per hook and domain: its room when first asked (see reserve)
        self._domain_first: dict[str, int] = {}
        self._reserved: tuple[dict[str, int], dict[str, int]] | None = None
        self.leased_by = leased_by
        self.lease_until = lease_until
        self.shelved_until = shelved_until  # the horizon
        self.shelved: set[str] = set()  # hooks some of whose deliveries were shelved: tell the worker once stored

    def admit(self, hook_id: str, domain: str) -> Goes:
        room = self._hook_rooms.get(hook_id)
        if room is None:
            room = self._hook_first[hook_id] = self._admission.hook_room(hook_id)
            if room == 0:  # no room for this hook: decided once per accept, nothing changes meanwhile
                room = self._hook_rooms[hook_id] = _SHELVES if self._admission.shelves(hook_id) else _DUE
        elif room == 0:  # this accept filled its backlog: its own backlog is full
            room = self._hook_rooms[hook_id] = _SHELVES
        if room > 0:
            domain_room = self._domain_rooms.get(domain)
            if domain_room is None:
                domain_room = self._domain_first[domain] = self._admission.domain_room(domain)
            if domain_room <= 0:  # its domain's room is taken: it waits on its hook's shelf
                self.shelved.add(hook_id)
                self._admission.shelved_domain(hook_id, domain)
                return Goes.SHELVED
            if self._room <= 0:
                self._admission.full = True
                return Goes.DUE
            self._room -= 1
            self._hook_rooms[hook_id] = room - 1
            self._domain_rooms[domain] = domain_room - 1
            return Goes.LEASED
        if room == _SHELVES:
            if hook_id not in self.shelved:
                self.shelved.add(hook_id)
                self._admission.shelved_domain(hook_id, domain)
            return Goes.SHELVED
        self._admission.full = True
        return Goes.DUE

    def reserve(self) -> None:
        """Planning is over: hold the room its leased deliveries take until they are leased (see release)."""
        rooms, domain_rooms = self._hook_rooms, self._domain_rooms
        by_hook = {h: n - max(rooms.get(h, n), 0) for h, n in self._hook_first.items()}
        by_domain = {d: n - max(domain_rooms.get(d, n), 0) for d, n in self._domain_first.items()}
        self._reserved = ({h: n for h, n in by_hook.items() if n}, {d: n for d, n in by_domain.items() if n})
        self._admission.planned(*self._reserved, 1)

    def release(self) -> None:
        """Its accept was written (the worker leased what it planned) or failed: the reservation ends."""
        if self._reserved is not None:
            self._admission.planned(*self._reserved, -1)
            self._reserved = None


_SHELVES, _DUE = -1, -2


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 1) - 1
    if left:
        counts[key] = left
    else:
        counts.pop(key, None)
