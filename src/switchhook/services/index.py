"""The in-memory hook index: hooks by (domain, event key), kept in step with every change, in every process."""

from __future__ import annotations

import logging
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
        hook = _compile(row)
        self._by_id.pop(row.id, None)
        if hook is not None:
            self._by_id[hook.id] = hook
        self._rebuild()

    def remove(self, hook_id: str) -> None:
        if self._by_id.pop(hook_id, None) is not None:
            self._rebuild()

    def remove_domain(self, domain: str) -> None:
        """Forget every hook of `domain` (the domain was deleted)."""
        kept = {hook_id: hook for hook_id, hook in self._by_id.items() if hook.domain != domain}
        if len(kept) != len(self._by_id):
            self._by_id = kept
            self._rebuild()

    def _rebuild(self) -> None:
        # Rebuilding the whole map is O(hooks) per change; changes are rare, lookups are hot.
        grouped: dict[tuple[str, str], list[Hook]] = {}
        for hook in self._by_id.values():
            if hook.delivers:
                grouped.setdefault((hook.domain, hook.event), []).append(hook)
        self._by_key = {k: tuple(v) for k, v in grouped.items()}
        keys = frozenset(k[1] for k in self._by_key)
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
