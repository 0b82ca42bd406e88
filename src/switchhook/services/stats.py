"""Hook stats: what a hook list needs beside the hooks (`GET /api/v2/stats/hooks`, docs/console.md).

For each hook: its deliveries of the last hour by outcome and their success rate, its newest delivery's status,
and whether its endpoint is paused. The counts come from the store and are the same whichever process answers.
The breaker is memory of a worker (core/breaker.py): a process running one reports its own circuit per hook
(`breaker`); an API-only process (`serve --api`) has none and says `null`, and `shelved` (deliveries waiting in
the store for their paused or backlogged hook, store.base.SHELVED) is what every process can tell.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from switchhook.core.breaker import Breakers
from switchhook.core.errors import ValidationFailed
from switchhook.services.access import Caller, effective_domain, require
from switchhook.services.hooks import check_hook_id
from switchhook.store.base import HookStats, Store

WINDOW_S = 3600.0  # "the last hour" of the console's success rate
#: Deliveries counted per hook: the newest of the window. A busy hook's rate is that of its latest ones, and one
#: request costs at most MAX_HOOKS x SAMPLE_CAP index rows, whatever the domain's traffic.
SAMPLE_CAP = 1000
MAX_HOOKS = 100  # hooks per request: a page of the hook list (40 by default) fits


class StatsService:
    def __init__(self, store: Store, breakers: Breakers | None = None, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._breakers = breakers  # the in-process worker's circuits; None in an API-only process
        self._clock = clock

    async def hooks(self, caller: Caller, domain: str | None, hook_ids: str | None) -> list[dict[str, Any]]:
        """Stats of the named hooks (comma-separated ids, at most MAX_HOOKS; ids not of the caller's domain are left
        out), or of the domain's first MAX_HOOKS hooks in list order."""
        require(caller, "hook", "r")
        require(caller, "delivery", "r")
        scope = effective_domain(caller, domain)
        now = self._clock()
        async with self._store.transaction() as tx:
            if hook_ids is None:
                ids = [row.id for row in await tx.list_hooks(scope, MAX_HOOKS, 0)]
            else:
                asked = list(dict.fromkeys(check_hook_id(x) for x in hook_ids.split(",") if x))
                if not 0 < len(asked) <= MAX_HOOKS:
                    raise ValidationFailed(f"Bad request: hook must name 1 to {MAX_HOOKS} hook ids.")
                ids = [x for x in asked if await tx.get_hook(scope, x) is not None]
            stats = await tx.hook_stats(scope, ids, now - WINDOW_S, SAMPLE_CAP)
        return [self._view(s, now) for s in stats]

    def _view(self, stats: HookStats, now: float) -> dict[str, Any]:
        finished = stats.delivered + stats.failed
        last = stats.last
        return {
            "hookId": stats.hook_id,
            "since": int((now - WINDOW_S) * 1000),
            "delivered": stats.delivered,
            "failed": stats.failed,
            "pending": stats.pending,
            "sampled": stats.sampled,
            "successRate": round(stats.delivered / finished, 4) if finished else None,
            "lastDelivery": None
            if last is None
            else {
                "id": last.id,
                "status": last.status,
                "lastStatus": last.last_status,
                "attempts": last.attempts,
                "createdAt": last.created_at,
                "updatedAt": last.updated_at,
            },
            "breaker": self._breaker(stats.hook_id, now),
            "shelved": stats.shelved,
        }

    def _breaker(self, hook_id: str, now: float) -> str | None:
        if self._breakers is None:
            return None
        reopens_at = self._breakers.reopens_at(hook_id)
        if reopens_at is None:
            return "closed"
        return "open" if now < reopens_at else "half-open"
