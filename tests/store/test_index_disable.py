"""The hook index's disable at start (services/index.py `_disable`), on SQLite and PostgreSQL: a hook it read over
today's limits is disabled, and told to listeners, only if it is still the document read and not disabled yet; so a
fix written since the read is never disabled, and processes starting together raise one hook_disabled, not one each.
"""

from __future__ import annotations

from typing import Any

from switchhook.services.index import _disable
from switchhook.store.base import HookRow, Store
from tests.store.test_contract import NOW, store

__all__ = ["store"]  # the fixture, run on both backends

DOMAIN = "a.example"
REASON = "not loaded, over this server's limits: a regex repeats 50 times"


def doc(pattern: str) -> dict[str, Any]:
    return {
        "event": "DTMF",
        "enable": True,
        "filter": {"DTMF-Digit": {"operation": "reg", "value": pattern}},
        "action": {"type": "web", "method": "POST", "url": "http://x.test/h"},
    }


async def test_only_a_hook_still_as_read_and_not_yet_disabled_is_disabled(store: Store) -> None:
    read = {name: HookRow(name * 24, DOMAIN, doc("^1{50}$")) for name in ("a", "b", "c")}
    async with store.transaction() as tx:
        for row in read.values():
            await tx.insert_hook(row, NOW)
    # Since the index read them: b was fixed over the API, c disabled by another process starting.
    async with store.transaction() as tx:
        await tx.replace_hook(HookRow(read["b"].id, DOMAIN, doc("^1$")), NOW)
        await tx.disable_hook(DOMAIN, read["c"].id, REASON, NOW)

    disabled = await _disable(store, [(row, REASON) for row in read.values()])

    assert disabled == [(read["a"], REASON)]  # what listeners are told
    async with store.transaction() as tx:
        a, b = await tx.get_hook(DOMAIN, read["a"].id), await tx.get_hook(DOMAIN, read["b"].id)
    assert a is not None and a.disabled_reason == REASON and a.doc["enable"] is False
    assert b is not None and b.disabled_reason is None and b.doc["enable"] is True  # the fix is left alone
