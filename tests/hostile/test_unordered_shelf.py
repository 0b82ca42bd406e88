"""A take from an unordered hook's shelf reads what it takes, however long the shelf (docs/calls.md, "What a call's
waiting deliveries cost"; bench scenario 2, where every hook's backlog past its cap waits shelved).

Ordered hooks' machinery must cost unordered hooks (`call_seq` NULL) nothing. A take sets behind the candidates of
its window that are not their call's first (store/sql.py SET_BEHIND): that read went through the hook's whole shelf
looking for ordered deliveries (migration 0008 gives it an index of those alone), and the take sorted its whole
window (FAIR_WINDOW x the take's limit) to keep `limit` rows. Measured on SQLite, VM steps of a take of 25 (with
its payloads) from a shelf of 200 / 1,600 unordered deliveries: 4,416 / 4,416; without migration 0008's index
5,639 / 15,439; with the window sorted 8,622 / 8,622.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from switchhook.store.base import SHELVED
from switchhook.store.sql import FAIR_WINDOW
from tests.hostile.test_call_backlog import MARGIN, Probe
from tests.support.app import Harness, make_settings, running

DOMAIN = "shelf.example"
LIMIT = 25


async def shelf_of(app: Harness, size: int) -> str:
    """An unordered hook with `size` deliveries on its shelf (never sent: no worker runs)."""
    token = await app.domain_token(DOMAIN)
    hook_id = await app.create_hook(
        DOMAIN,
        {
            "event": "DTMF",
            "enable": True,
            "action": {"type": "web", "method": "POST", "url": "http://127.0.0.1:9/never"},
        },
    )
    for first in range(0, size, 500):
        events = [
            {"Event-Name": "DTMF", "variable_domain_name": DOMAIN, "Channel-Call-UUID": f"call-{n % 7}"}
            for n in range(first, min(size, first + 500))
        ]
        response = await app.post_events(events, token)
        assert response.status_code == 202, response.text
    async with app.runtime.store.transaction() as tx:
        await tx.execute(  # type: ignore[attr-defined]
            "UPDATE deliveries SET leased_by = ? WHERE hook_id = ? AND status = 'pending'", SHELVED, hook_id
        )
    return hook_id


async def take_cost(tmp_path: Path, size: int) -> int:
    async with running(make_settings(tmp_path / str(size)), worker=False) as app:
        hook_id = await shelf_of(app, size)

        async def take(tx: Any) -> None:
            now = time.time()
            taken = await tx.claim_shelves("probe", [(hook_id, LIMIT)], now, now + 30)
            assert len(taken) == LIMIT
            assert all(claimed.delivery.call_seq is None for claimed in taken)

        steps, _ = await Probe(app).measure(take)
        return steps


async def test_a_take_from_an_unordered_shelf_reads_what_it_takes_however_long_the_shelf(tmp_path: Path) -> None:
    window = FAIR_WINDOW * LIMIT
    short, long = await take_cost(tmp_path, window), await take_cost(tmp_path, 8 * window)
    print(f"\nsteps of a take of {LIMIT} from a shelf of {window} / {8 * window}: {short} / {long}")
    # Neither the shelf's length (a read of the whole shelf) nor the window's (a sort of all of it) shows.
    assert long <= MARGIN * short, (short, long)
    assert short <= MARGIN * await take_cost(tmp_path / "bare", LIMIT), short
