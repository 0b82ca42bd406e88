"""The in-memory hook index: hooks by (domain, event key), kept in step with every change, in every process."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable

from switchhook.domain.errors import SwitchhookError
from switchhook.domain.hooks import Hook
from switchhook.store.base import HookRow, Store

logger = logging.getLogger("switchhook.index")

Listener = Callable[[], None]


class HookIndex:
    """Matching reads `find(domain, key)`: a dict lookup, no database round trip on the hot path."""

    def __init__(self) -> None:
        self._by_id: dict[str, Hook] = {}
        self._by_key: dict[tuple[str, str], tuple[Hook, ...]] = {}
        self._listeners: list[Listener] = []
        self._event_keys: frozenset[str] = frozenset()
        self._groups_per_event: Counter[str] = Counter()  # (domain, key) groups per event key

    def on_change(self, listener: Listener) -> None:
        """`listener()` runs after every change (sources re-bind / re-subscribe)."""
        self._listeners.append(listener)

    def find(self, domain: str, event_key: str) -> tuple[Hook, ...]:
        return self._by_key.get((domain, event_key), ())

    def get(self, hook_id: str) -> Hook | None:
        return self._by_id.get(hook_id)

    def event_keys(self) -> frozenset[str]:
        """Event keys that some delivering hook uses (what sources subscribe to)."""
        return self._event_keys

    def __len__(self) -> int:
        return len(self._by_id)

    def replace_all(self, rows: Iterable[HookRow]) -> None:
        by_id = {}
        for row in rows:
            hook = _compile(row)
            if hook is not None:
                by_id[hook.id] = hook
        self._by_id = by_id
        self._rebuild()

    def put(self, row: HookRow) -> None:
        """Add or replace one hook: only its (domain, event key) group is touched, O(hooks of that group)."""
        hook = _compile(row)
        old = self._by_id.pop(row.id, None)
        if old is not None:
            self._ungroup(old)
        if hook is not None:
            self._by_id[hook.id] = hook
            if hook.delivers:
                key = (hook.domain, hook.event)
                group = self._by_key.get(key, ())
                if not group:
                    self._groups_per_event[hook.event] += 1
                self._by_key[key] = (*group, hook)
        self._keys_changed()

    def remove(self, hook_id: str) -> None:
        old = self._by_id.pop(hook_id, None)
        if old is not None:
            self._ungroup(old)
            self._keys_changed()

    def _ungroup(self, hook: Hook) -> None:
        key = (hook.domain, hook.event)
        if key not in self._by_key:
            return
        group = tuple(h for h in self._by_key[key] if h.id != hook.id)
        if group:
            self._by_key[key] = group
        else:
            del self._by_key[key]
            self._groups_per_event[hook.event] -= 1
            if not self._groups_per_event[hook.event]:
                del self._groups_per_event[hook.event]

    def remove_domain(self, domain: str) -> None:
        """Forget every hook of `domain` (the domain was deleted)."""
        kept = {hook_id: hook for hook_id, hook in self._by_id.items() if hook.domain != domain}
        if len(kept) != len(self._by_id):
            self._by_id = kept
            self._rebuild()

    def _rebuild(self) -> None:
        """Regroup everything: after a full reload or a domain's removal (a single change uses `put`)."""
        grouped: dict[tuple[str, str], list[Hook]] = {}
        for hook in self._by_id.values():
            if hook.delivers:
                grouped.setdefault((hook.domain, hook.event), []).append(hook)
        self._by_key = {k: tuple(v) for k, v in grouped.items()}
        self._groups_per_event = Counter(key[1] for key in self._by_key)
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
        """Refresh from the store: everything, or one hook (after another process changed it)."""
        async with store.transaction() as tx:
            if hook_id == "*":
                self.replace_all(await tx.all_hooks())
                return
            row = await tx.get_hook(domain, hook_id)
        if row is None:
            self.remove(hook_id)
        else:
            self.put(row)


def _compile(row: HookRow) -> Hook | None:
    try:
        return Hook.compile(row.id, row.domain, row.doc)
    except SwitchhookError as exc:  # a row written by an older version with rules we now reject
        logger.warning("hook %s skipped: %s", row.id, exc.message)
        return None
