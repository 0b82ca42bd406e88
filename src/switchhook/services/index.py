"""The in-memory hook index: hooks by (domain, event key), kept in step with every change, in every process.

A hook on several event keys (`event` an array) is in the group of each of its keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

from switchhook.core.errors import SwitchhookError, ValidationFailed
from switchhook.core.filters import RegexBudgets
from switchhook.core.hooks import DEFAULT_LIMITS, Hook, HookLimits
from switchhook.store.base import HookRow, Store

logger = logging.getLogger("switchhook.index")

Listener = Callable[[], None]
#: Told of each hook the index disabled (`reload`: over today's limits) after the disable committed: the row as it
#: was read (its document still enabled) and the reason written. The runtime raises switchhook::hook_disabled.
DisabledListener = Callable[[HookRow, str], None]


class HookIndex:
    """Matching reads `find(domain, key)`: a dict lookup, no database round trip on the hot path."""

    def __init__(
        self,
        limits: HookLimits = DEFAULT_LIMITS,
        regex_budgets: RegexBudgets | None = None,
        *,
        max_regexes_per_domain: int = 200,
    ) -> None:
        #: What a hook may cost today; a stored hook over them is skipped and disabled (see `reload`).
        self.limits = limits
        #: The matching time each domain's `reg` filters may take, shared by accepts and dry runs of this process.
        self.regex_budgets = regex_budgets if regex_budgets is not None else RegexBudgets()
        #: `reg` conditions a domain's hooks may hold together (RELIABILITY.md, hostile tenants).
        self.max_regexes_per_domain = max_regexes_per_domain
        self._regexes: Counter[str] = Counter()  # domain -> `reg` conditions of its indexed hooks
        self._skipped: dict[str, str] = {}  # hook id -> why it is not in the index
        self._by_id: dict[str, Hook] = {}
        self._by_key: dict[tuple[str, str], tuple[Hook, ...]] = {}
        self._listeners: list[Listener] = []
        self._disabled_listeners: list[DisabledListener] = []
        self._event_keys: frozenset[str] = frozenset()
        self._groups_per_event: Counter[str] = Counter()  # (domain, key) groups per event key

    def on_change(self, listener: Listener) -> None:
        """`listener()` runs after every change (sources re-bind / re-subscribe)."""
        self._listeners.append(listener)

    def on_disabled(self, listener: DisabledListener) -> None:
        """`listener(row, reason)` runs for each hook `reload` disabled, once its disable has committed."""
        self._disabled_listeners.append(listener)

    def find(self, domain: str, event_key: str) -> tuple[Hook, ...]:
        return self._by_key.get((domain, event_key), ())

    def get(self, hook_id: str) -> Hook | None:
        return self._by_id.get(hook_id)

    def regexes(self, domain: str) -> int:
        """The `reg` conditions of `domain`'s hooks in this index (enabled or not)."""
        return self._regexes.get(domain, 0)

    def check_regex_room(self, domain: str, hook: Hook | None, replacing: str | None = None) -> None:
        """A 400 when `hook` (replacing the hook `replacing`) would give `domain` more `reg` conditions than
        `max_regexes_per_domain`. Counted in this process's index: a concurrent write elsewhere may pass by one."""
        if hook is None or not hook.regexes:
            return
        current = self.regexes(domain)
        old = self._by_id.get(replacing) if replacing is not None else None
        if old is not None and old.domain == domain:
            current -= old.regexes
        if current + hook.regexes > self.max_regexes_per_domain:
            raise ValidationFailed(
                f"Bad request: the domain's hooks have {current} conditions with operation reg besides this hook's"
                f" {hook.regexes}, more than the {self.max_regexes_per_domain} a domain may have."
            )

    def skipped_reason(self, hook_id: str) -> str | None:
        """Why a stored hook is not in the index (over today's limits), or None."""
        return self._skipped.get(hook_id)

    def compile(self, row: HookRow) -> tuple[Hook | None, str | None]:
        """(the compiled hook, None) or (None, why it cannot be): CPU work, safe to run in a thread."""
        try:
            return Hook.compile(row.id, row.domain, row.doc, self.limits), None
        except SwitchhookError as exc:  # a row written by an older version with rules we now reject
            reason = exc.message.removeprefix("Bad request: ")
            logger.warning("hook %s skipped: %s", row.id, reason)
            return None, f"not loaded, over this server's limits: {reason}"

    def event_keys(self) -> frozenset[str]:
        """Event keys that some delivering hook uses (what sources subscribe to)."""
        return self._event_keys

    def __len__(self) -> int:
        return len(self._by_id)

    def replace_all(self, rows: Iterable[HookRow]) -> None:
        self._install_all([(row, *self.compile(row)) for row in rows])

    def _install_all(self, compiled: list[tuple[HookRow, Hook | None, str | None]]) -> None:
        self._by_id = {hook.id: hook for _row, hook, _reason in compiled if hook is not None}
        self._skipped = {row.id: reason for row, _hook, reason in compiled if reason is not None}
        self._rebuild()

    def put(self, row: HookRow) -> None:
        """Add or replace one hook: only its (domain, event key) groups are touched, O(hooks of those groups)."""
        self.install(row, *self.compile(row))

    def install(self, row: HookRow, hook: Hook | None, reason: str | None = None) -> None:
        """`put` with the hook compiled beforehand (`compile`, in a thread): None for one that cannot be."""
        if reason is None:
            self._skipped.pop(row.id, None)
        else:
            self._skipped[row.id] = reason
        old = self._by_id.pop(row.id, None)
        if old is not None:
            self._ungroup(old)
        if hook is not None:
            self._by_id[hook.id] = hook
            self._count_regexes(hook, 1)
            if hook.delivers:
                for event in hook.events:
                    key = (hook.domain, event)
                    group = self._by_key.get(key, ())
                    if not group:
                        self._groups_per_event[event] += 1
                    self._by_key[key] = (*group, hook)
        self._keys_changed()

    def remove(self, hook_id: str) -> None:
        self._skipped.pop(hook_id, None)
        old = self._by_id.pop(hook_id, None)
        if old is not None:
            self._ungroup(old)
            self._keys_changed()

    def _count_regexes(self, hook: Hook, sign: int) -> None:
        if hook.regexes:
            self._regexes[hook.domain] += sign * hook.regexes
            if self._regexes[hook.domain] <= 0:
                del self._regexes[hook.domain]

    def _ungroup(self, hook: Hook) -> None:
        self._count_regexes(hook, -1)
        for event in hook.events:
            key = (hook.domain, event)
            if key not in self._by_key:
                continue
            group = tuple(h for h in self._by_key[key] if h.id != hook.id)
            if group:
                self._by_key[key] = group
            else:
                del self._by_key[key]
                self._groups_per_event[event] -= 1
                if not self._groups_per_event[event]:
                    del self._groups_per_event[event]

    def remove_domain(self, domain: str) -> None:
        """Forget every hook of `domain` (the domain was deleted)."""
        kept = {hook_id: hook for hook_id, hook in self._by_id.items() if hook.domain != domain}
        if len(kept) != len(self._by_id):
            self._by_id = kept
            self._rebuild()
        self.regex_budgets.forget(domain)

    def _rebuild(self) -> None:
        """Regroup everything: after a full reload or a domain's removal (a single change uses `put`)."""
        grouped: dict[tuple[str, str], list[Hook]] = {}
        for hook in self._by_id.values():
            if hook.delivers:
                for event in hook.events:
                    grouped.setdefault((hook.domain, event), []).append(hook)
        self._by_key = {k: tuple(v) for k, v in grouped.items()}
        self._groups_per_event = Counter(key[1] for key in self._by_key)
        self._regexes = Counter()
        for hook in self._by_id.values():
            if hook.regexes:
                self._regexes[hook.domain] += hook.regexes
        self._keys_changed()

    def _keys_changed(self) -> None:
        if len(self._groups_per_event) == len(self._event_keys) and all(
            key in self._event_keys for key in self._groups_per_event
        ):
            return
        keys = frozenset(self._groups_per_event)
        changed = keys != self._event_keys
        self._event_keys = keys
        if changed:
            for listener in self._listeners:
                try:
                    listener()
                except Exception:
                    logger.exception("hook index listener failed")

    async def reload(self, store: Store, domain: str = "*", hook_id: str = "*") -> None:
        """Refresh from the store: everything, or one hook (after another process changed it).

        Hooks compile in a thread, off the event loop. A stored hook over today's limits (a regex an older
        version accepted) is not compiled: it is skipped, and disabled in the store with the reason, so a
        read says why it no longer fires and start-up survives it.
        """
        async with store.transaction() as tx:
            if hook_id == "*":
                rows = await tx.all_hooks()
            else:
                row = await tx.get_hook(domain, hook_id)
        if hook_id == "*":
            compiled = await asyncio.to_thread(lambda: [(row, *self.compile(row)) for row in rows])
            self._install_all(compiled)
        elif row is None:
            self.remove(hook_id)
            return
        else:
            compiled = [(row, *await asyncio.to_thread(self.compile, row))]
            self.install(*compiled[0])
        skipped = [(row, reason) for row, _hook, reason in compiled if reason and not row.disabled_reason]
        for row, reason in await _disable(store, skipped):
            for listener in self._disabled_listeners:
                try:
                    listener(row, reason)
                except Exception:
                    logger.exception("hook index listener failed")


async def _disable(store: Store, skipped: list[tuple[HookRow, str]]) -> list[tuple[HookRow, str]]:
    """Mark skipped hooks disabled with their reason; best effort (a read-only standby must still start). Those it
    disabled: each is read again first and left alone when another process disabled it meanwhile (one alert per
    disable, not one per process starting) or its document changed (a fix written since the read)."""
    if not skipped:
        return []
    disabled: list[tuple[HookRow, str]] = []
    try:
        async with store.transaction() as tx:
            for row, reason in skipped:
                current = await tx.get_hook(row.domain, row.id)
                if current is None or current.disabled_reason or current.doc != row.doc:
                    continue
                await tx.disable_hook(row.domain, row.id, reason, time.time())
                disabled.append((row, reason))
    except Exception:
        logger.exception("could not mark %d skipped hooks disabled", len(skipped))
        return []
    return disabled
