"""Store protocols and records. Store methods never commit; services own the transactions.

Every domain-scoped method takes the domain explicitly, so tenant isolation lives in the store API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class AtCommit(Generic[T]):
    """A result the transaction has by the time it commits, to read after the `async with` block.

    SQLite reads it in the same trip to the database thread as the COMMIT (one trip for a whole ingest);
    PostgreSQL has it at once.
    """

    __slots__ = ("_ready", "_value")

    def __init__(self) -> None:
        self._ready = False
        self._value: T | None = None

    @classmethod
    def of(cls, value: T) -> AtCommit[T]:
        ready: AtCommit[T] = cls()
        ready.set(value)
        return ready

    def set(self, value: T) -> None:
        self._value, self._ready = value, True

    @property
    def value(self) -> T:
        if not self._ready:
            raise RuntimeError("read before the transaction committed")
        return self._value  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class HookRow:
    id: str
    domain: str
    doc: dict[str, Any]
    disabled_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AccountRow:
    domain: str
    username: str
    password_hash: str
    role: str


@dataclass(frozen=True, slots=True)
class SessionRow:
    key: str
    token_hash: str
    username: str
    domain: str | None
    role: str
    expires_at: float
    credential: str = ""  # a digest of the password hash it was made with (services/auth.py `credential_of`)


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: str
    domain: str
    role: str
    expires_ms: int
    enabled: bool
    created_by: str
    created_at: float


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    domain: str
    event_key: str
    source: str
    payload: str  # the event as JSON text
    received_at: float


#: `leased_by` of a delivery waiting in the store for room in a worker (its hook's backlog was full or its
#: endpoint paused): no worker holds it, its `next_at` is a horizon minutes away (it is due then anyway, should
#: the worker that shelved it be gone), and a worker takes it by hook (`claim_shelved`) as soon as there is room.
SHELVED = "shelved"
#: `leased_by` of an ordered hook's delivery set aside behind an earlier delivery of its (hook, call) (docs/calls.md,
#: "What a call's waiting deliveries cost"): no worker holds it and its `next_at` is BEHIND_AT, out of the range of
#: every claim and off every shelf, so a call's thousands of waiting deliveries cost no claim or take a look. The
#: transaction that lets its call move on (an earlier one settled, a lease ended) lets it through (due now).
BEHIND = "behind"
BEHIND_AT = float(2**52)  # seconds: never reached, exact in a double


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    event_id: str
    hook_id: str
    domain: str
    next_at: float
    expires_at: float | None
    leased_by: str | None  # set when handed straight to an in-process worker (fast path), or SHELVED
    lease_until: float | None
    call_id: str | None = None  # the event's call (services/events.py `call_of`); None: an event without one
    event_ts: int | None = None  # event order key: Event-Date-Timestamp, microseconds since the epoch
    event_seq: int | None = None  # then Event-Sequence
    #: An ordered hook's delivery of a call: 0 until its X-Call-Sequence is taken (`number_calls`), then that
    #: number; None for every other delivery (see CALL_GATE in store/sql.py, docs/calls.md).
    call_seq: int | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    event_id: str
    hook_id: str
    domain: str
    status: str
    attempts: int
    next_at: float
    expires_at: float | None
    last_status: int | None
    last_error: str | None
    created_at: float
    updated_at: float
    call_id: str | None = None
    event_ts: int | None = None  # event order key, as NewDelivery
    event_seq: int | None = None
    call_seq: int | None = None  # an ordered hook's X-Call-Sequence once taken; 0 not yet, None another hook's


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    """Which of a domain's deliveries the delivery log lists (`search_deliveries`); None: any. Times are
    creation times, epoch seconds, `since` inclusive and `until` exclusive."""

    call_id: str | None = None
    hook_id: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class AttemptLeg:
    """One request of an attempt of a hook with a fallback URL (docs/fallback.md): `leg` is `primary` or
    `fallback`, `url` its destination with the password masked, `reason` why the fallback was sent."""

    leg: str
    url: str
    status_code: int | None
    duration_ms: float
    error: str | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    delivery_id: str
    n: int
    started_at: float
    duration_ms: float
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    #: Its requests, when its hook has a fallback URL (attempts.legs, migration 0006); none otherwise.
    legs: tuple[AttemptLeg, ...] = ()


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    delivery: DeliveryRow
    payload: str


@dataclass(frozen=True, slots=True)
class Fair:
    """A claim's shares (core/admission.py, "share"): at most `per_hook` deliveries of one hook and `per_domain`
    of one domain, and none of `skip_domains` (their room in the claiming worker is taken)."""

    per_hook: int
    per_domain: int
    skip_domains: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Finish:
    """The recorded result of one attempt: new status and when to try again."""

    delivery_id: str
    status: str  # pending | delivered | failed | expired
    attempts: int
    next_at: float
    last_status: int | None
    last_error: str | None
    attempt: AttemptRow | None
    #: An ordered hook's delivery numbered by this worker's lease and given up before its request went out
    #: (expired): its X-Call-Sequence goes back to its call's counter (store/sql.py give_back_numbers).
    return_number: bool = False


@dataclass(frozen=True, slots=True)
class Recoverable:
    """Which deliveries of a domain a bulk recovery takes (services/deliveries.py `recover`): of `hook_id`
    and/or of `call_id`, in one of `statuses`, created in [`since`, `until`) (epoch seconds, None: open).
    Shelved deliveries (SHELVED) are never among them: they wait for room already."""

    hook_id: str | None
    call_id: str | None
    statuses: tuple[str, ...]
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class HookStats:
    """One hook's recent deliveries (`hook_stats`, the console's hook list): of its newest at most `cap` created
    since the window's start, how many were delivered, failed or expired, and are still pending (`sampled` counts
    them all: equal to the cap, the window held more); its newest delivery of any age; and whether some of its
    deliveries wait on a shelf (SHELVED: its endpoint paused, or its backlog full)."""

    hook_id: str
    delivered: int
    failed: int  # failed or expired
    pending: int
    sampled: int
    last: DeliveryRow | None
    shelved: bool


class Tx(Protocol):
    """One transaction's view of the store."""

    # settings
    async def get_setting(self, name: str) -> str | None: ...
    async def put_setting_if_absent(self, name: str, value: str) -> str: ...
    async def set_setting(self, name: str, value: str) -> None: ...

    # domains and accounts
    async def add_domain(self, name: str, now: float) -> bool: ...
    async def list_domains(self) -> list[str]: ...
    async def domain_exists(self, name: str) -> bool: ...
    async def delete_domain(self, name: str) -> int: ...
    async def add_account(self, row: AccountRow, now: float) -> bool: ...
    async def get_account(self, domain: str, username: str) -> AccountRow | None: ...
    async def list_accounts(self, domain: str) -> list[AccountRow]: ...
    async def delete_account(self, domain: str, username: str) -> int: ...
    async def update_account(self, domain: str, username: str, password_hash: str | None, role: str | None) -> int: ...

    # sessions and domain tokens
    async def add_session(self, row: SessionRow, now: float) -> None: ...
    async def get_session(self, key: str) -> SessionRow | None: ...
    async def delete_session(self, key: str, now: float) -> int: ...
    async def delete_sessions(self, domain: str | None, username: str | None) -> int: ...
    async def add_token(self, row: TokenRow) -> None: ...
    async def get_token(self, domain: str, token_id: str) -> TokenRow | None: ...
    async def list_tokens(self, domain: str) -> list[TokenRow]: ...
    async def delete_token(self, domain: str, token_id: str) -> int: ...
    async def set_token_enabled(self, domain: str, token_id: str, enabled: bool) -> int: ...

    # hooks
    async def insert_hook(self, row: HookRow, now: float) -> None: ...
    async def get_hook(self, domain: str, hook_id: str) -> HookRow | None: ...
    async def list_hooks(self, domain: str, limit: int, offset: int) -> list[HookRow]: ...
    async def count_hooks(self, domain: str, events: Sequence[str]) -> tuple[int, dict[str, int]]: ...
    async def replace_hook(self, row: HookRow, now: float) -> int: ...
    async def delete_hook(self, domain: str, hook_id: str) -> int: ...
    async def disable_hook(self, domain: str, hook_id: str, reason: str, now: float) -> int: ...
    async def all_hooks(self) -> list[HookRow]: ...
    async def notify_hook_changed(self, domain: str, hook_id: str) -> None: ...
    async def notify_new_deliveries(self) -> None: ...
    async def notify_token_changed(self, domain: str, token_id: str) -> None: ...

    # events and deliveries
    async def insert_events(self, rows: Sequence[EventRow]) -> set[str]: ...
    async def insert_deliveries(self, rows: Sequence[NewDelivery], now: float) -> None: ...
    async def store_events(
        self, events: Sequence[EventRow], deliveries: Sequence[tuple[Sequence[NewDelivery], float]]
    ) -> AtCommit[set[str]]: ...
    async def claim_due(
        self,
        worker_id: str,
        now: float,
        lease_until: float,
        limit: int,
        skip_hooks: Sequence[str] = (),
        fair: Fair | None = None,
    ) -> list[ClaimedDelivery]: ...
    async def claim_shelved(
        self, worker_id: str, hook_id: str, now: float, lease_until: float, limit: int
    ) -> list[ClaimedDelivery]: ...
    async def claim_shelves(
        self, worker_id: str, rooms: Sequence[tuple[str, int]], now: float, lease_until: float
    ) -> list[ClaimedDelivery]: ...
    async def shelve(self, worker_id: str, delivery_ids: Sequence[str], until: float) -> None: ...
    async def reshelve(self, hook_id: str, before: float, until: float) -> int: ...
    async def shelved_hooks(self) -> list[str]: ...
    async def still_shelved(self, hook_ids: Sequence[str]) -> set[str]: ...
    async def finish(self, results: Sequence[Finish], worker_id: str | None, now: float) -> None: ...
    async def claim_next_of(
        self, worker_id: str, settled: Sequence[str], now: float, lease_until: float
    ) -> list[ClaimedDelivery]: ...
    async def get_delivery(self, domain: str, delivery_id: str) -> DeliveryRow | None: ...
    async def get_event(self, event_id: str) -> EventRow | None: ...
    async def list_deliveries(
        self, domain: str, hook_id: str, status: str | None, limit: int, offset: int
    ) -> list[DeliveryRow]: ...
    async def search_deliveries(
        self, domain: str, query: DeliveryQuery, limit: int, offset: int
    ) -> list[tuple[DeliveryRow, str | None]]: ...
    async def list_attempts(self, delivery_id: str) -> list[AttemptRow]: ...
    async def requeue(self, domain: str, delivery_id: str, now: float) -> int: ...
    async def find_recoverable(
        self, domain: str, match: Recoverable, after: tuple[float, str] | None, limit: int
    ) -> list[DeliveryRow]: ...
    async def count_recoverable(self, domain: str, match: Recoverable, after: tuple[float, str] | None) -> int: ...
    async def recover(
        self, domain: str, delivery_ids: Sequence[str], statuses: Sequence[str], now: float
    ) -> tuple[int, int]: ...
    async def extend_leases(self, worker_id: str, delivery_ids: Sequence[str], lease_until: float) -> None: ...
    async def release_leases(self, worker_id: str | None) -> int: ...
    async def purge_finished(self, before: float) -> int: ...
    async def count_pending(self) -> int: ...
    async def number_calls(self, deliveries: Sequence[tuple[str, str, str]]) -> dict[str, int]: ...
    async def ungate_calls(self, worker_id: str, delivery_ids: Sequence[str]) -> set[str]: ...
    async def hook_stats(self, domain: str, hook_ids: Sequence[str], since: float, cap: int) -> list[HookStats]: ...


class Store(Protocol):
    """A backend: transactions plus change notifications between processes."""

    backend: str

    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...
    async def migrate(self) -> list[str]: ...
    async def ping(self) -> bool: ...
    async def listen_hook_changes(
        self,
        callback: Callable[[str, str], Awaitable[None]],
        on_new_deliveries: Callable[[], None] | None = None,
        on_token_changed: Callable[[str, str], None] | None = None,
    ) -> None: ...
    async def close(self) -> None: ...


HookChangeStream = AsyncIterator[tuple[str, str]]
