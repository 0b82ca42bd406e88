"""Hook CRUD with Webitel's response shapes, ACL and domain scoping (README, "API overview"; docs/webitel.md)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from switchhook.core.errors import ValidationFailed
from switchhook.core.hooks import event_keys, is_hook_id, normal_hook_id, public_view, validate_hook
from switchhook.services.access import Caller, effective_domain, require
from switchhook.services.index import HookIndex
from switchhook.store.base import HookRow, Store, Tx

DEFAULT_LIMIT = 40
MAX_LIMIT = 1000


def new_hook_id(clock: Callable[[], float] = time.time) -> str:
    """24 lowercase hex characters, ObjectId-shaped: 4 bytes of seconds, then 8 random bytes."""
    return f"{int(clock()) & 0xFFFFFFFF:08x}{os.urandom(8).hex()}"


_PARSE_INT = re.compile(r"[ \t\n\v\f\r\u00a0\ufeff]*([-+]?\d+)")


def check_hook_id(hook_id: str) -> str:
    """The id as stored (lower-case hex), or a 400 for anything that is not an ObjectId."""
    if not is_hook_id(hook_id):
        raise ValidationFailed("Bad request: hook id must be 24 hex characters.")
    return normal_hook_id(hook_id)


def parse_int(value: str | None) -> int | None:
    """JavaScript's `parseInt(value, 10)`: leading digits after optional space and sign, else None (NaN).

    Webitel read `limit` and `page` this way (src/db/mongodb/query/hook.js `search`): `2.9` is 2, `5x` is 5.
    """
    match = _PARSE_INT.match(value or "")
    return int(match.group(1)) if match else None


def _int_param(value: str | None, name: str, default: int, low: int, high: int) -> int:
    """A paging parameter parsed like `parseInt`, junk (NaN) meaning the default, clamped to [low, high]."""
    number = parse_int(value)
    return default if number is None else max(low, min(high, number))


def project(view: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """Mongo's inclusion projection: `_id` always, and each column a top-level key or a dotted path."""
    out: dict[str, Any] = {"_id": view["_id"]}
    for column in columns:
        source: Any = view
        target = out
        *parents, leaf = column.split(".")
        for part in parents:
            source = source.get(part) if isinstance(source, dict) else None
            if not isinstance(source, dict):
                break
            target = target.setdefault(part, {})
        else:
            if isinstance(source, dict) and leaf in source:
                target[leaf] = source[leaf]
    return {k: out[k] for k in view if k in out}  # in the document's key order, as Mongo answers


class HooksService:
    def __init__(
        self,
        store: Store,
        index: HookIndex,
        clock: Callable[[], float] = time.time,
        *,
        max_hooks_per_domain: int = 1000,
        max_hooks_per_event_key: int = 100,
    ) -> None:
        self._store = store
        self._index = index
        self._clock = clock
        # One event fans out to every hook of its domain on its key: these bound what one event, and one request,
        # can cost (RELIABILITY.md, "Hostile tenants").
        self.max_hooks_per_domain = max_hooks_per_domain
        self.max_hooks_per_event_key = max_hooks_per_event_key

    async def _check_room(self, tx: Tx, domain: str, events: Sequence[str], adding: bool) -> None:
        """A 400 when the domain has as many hooks as it may (`adding` one), or one of the event keys `events`
        has (a hook on several keys counts on each of them)."""
        count, on_keys = await tx.count_hooks(domain, events)
        if adding and count >= self.max_hooks_per_domain:
            raise ValidationFailed(
                f"Bad request: the domain has {count} hooks, the most it may have ({self.max_hooks_per_domain})."
            )
        for event, on_key in on_keys.items():
            if on_key >= self.max_hooks_per_event_key:
                raise ValidationFailed(
                    f"Bad request: the domain has {on_key} hooks on the event {event!r}, the most one event may"
                    f" have ({self.max_hooks_per_event_key})."
                )

    async def list(
        self, caller: Caller, domain: str | None, limit: str | None, page: str | None, columns: str | None
    ) -> list[dict[str, Any]]:
        require(caller, "hook", "r")
        scope = effective_domain(caller, domain)
        # Webitel: `parseInt(limit) || 40`, so 0 and junk mean the default; Mongo reads a negative limit as its
        # size. switchhook caps a page at MAX_LIMIT (docs/webitel.md).
        size = abs(_int_param(limit, "limit", DEFAULT_LIMIT, -MAX_LIMIT, MAX_LIMIT)) or DEFAULT_LIMIT
        number = _int_param(page, "page", 1, -(2**31), 2**31)
        offset = (number - 1) * size if number > 0 else 0
        async with self._store.transaction() as tx:
            rows = await tx.list_hooks(scope, size, offset)
        views = [public_view(r.doc, r.id, r.domain) for r in rows]
        wanted = [c.strip() for c in (columns or "").split(",") if c.strip()]
        if wanted:
            views = [project(view, wanted) for view in views]
        return views

    async def get(self, caller: Caller, domain: str | None, hook_id: str) -> dict[str, Any] | None:
        require(caller, "hook", "r")
        scope = effective_domain(caller, domain)
        hook_id = check_hook_id(hook_id)
        async with self._store.transaction() as tx:
            row = await tx.get_hook(scope, hook_id)
        if row is None:
            return None
        view = public_view(row.doc, row.id, row.domain)
        reason = row.disabled_reason or self._index.skipped_reason(row.id)
        if reason:
            view["disabledReason"] = reason
        return view

    async def create(self, caller: Caller, domain: str | None, body: Any) -> dict[str, Any]:
        require(caller, "hook", "c")
        scope = effective_domain(caller, domain)
        # Validating compiles the hook's regexes (bounded, yet CPU): in a thread, off the event loop.
        doc = await asyncio.to_thread(validate_hook, body, limits=self._index.limits)
        row = HookRow(new_hook_id(self._clock), scope, doc)
        compiled = await asyncio.to_thread(self._index.compile, row)
        self._index.check_regex_room(scope, compiled[0])
        async with self._store.transaction() as tx:
            await self._check_room(tx, scope, event_keys(doc.get("event")), adding=True)
            await tx.insert_hook(row, self._clock())
            await tx.notify_hook_changed(scope, row.id)
        self._index.install(row, *compiled)
        return {
            "result": {"ok": 1, "n": 1},
            "ops": [public_view(doc, row.id, scope, id_first=False)],
            "insertedCount": 1,
            "insertedIds": [row.id],
        }

    async def replace(self, caller: Caller, domain: str | None, hook_id: str, body: Any) -> dict[str, int]:
        require(caller, "hook", "u")
        scope = effective_domain(caller, domain)
        hook_id = check_hook_id(hook_id)
        limits = self._index.limits
        async with self._store.transaction() as tx:
            current = await tx.get_hook(scope, hook_id)
            if current is None:
                await asyncio.to_thread(validate_hook, body, limits=limits)  # bad input is still a 400
                return {"n": 0, "nModified": 0, "ok": 1}
            doc = await asyncio.to_thread(validate_hook, body, current.doc.get("secret"), current.doc, limits)
            had = set(event_keys(current.doc.get("event")))
            added = [key for key in event_keys(doc.get("event")) if key not in had]
            if added:  # moving to other event keys: those keys' caps
                await self._check_room(tx, scope, added, adding=False)
            row = HookRow(hook_id, scope, doc)
            compiled = await asyncio.to_thread(self._index.compile, row)
            self._index.check_regex_room(scope, compiled[0], replacing=hook_id)
            changed = await tx.replace_hook(row, self._clock())
            await tx.notify_hook_changed(scope, hook_id)
        self._index.install(row, *compiled)
        return {"n": changed, "nModified": int(changed and doc != current.doc), "ok": 1}

    async def delete(self, caller: Caller, domain: str | None, hook_id: str) -> dict[str, int]:
        require(caller, "hook", "d")
        scope = effective_domain(caller, domain)
        hook_id = check_hook_id(hook_id)
        async with self._store.transaction() as tx:
            removed = await tx.delete_hook(scope, hook_id)
            if removed:
                await tx.notify_hook_changed(scope, hook_id)
        if removed:
            self._index.remove(hook_id)
        return {"n": removed, "ok": 1}

    def forget_domain(self, domain: str) -> None:
        """After a domain was deleted: its hooks must stop firing in this process at once."""
        self._index.remove_domain(domain)
