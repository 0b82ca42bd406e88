"""Issue 14 follow-up: a call's waiting deliveries must not cost every claim (docs/calls.md, "What a call's waiting
deliveries cost"; RELIABILITY.md, hostile tenants).

The attack: one domain posts thousands of events of one call id to an ordered hook (`"order": "call"`) whose
endpoint fails. The call's head waits for its retry (an hour here); everything behind it waits too. Before the fix
those deliveries lay where claims look: the ones let go at ingest and, after a restart, the ones the worker held,
among the due rows every claim of every tenant walks; the rest on the hook's shelf, which every take of the hook
walks; and each was tested against the call gate again at every claim and every take, the head's own test reading
the whole call line. Now a claim or a take sets them behind (store.base.BEHIND), out of every later claim's range.

Measured on SQLite: VM steps of one claim of 25 and of one take of 25 from the hook's shelf, with nothing of the
call claimable, and of the claim of the call's head once its retry has come; after a restart; wall time on the
loaded 2-core test machine in brackets. Before the fix (claims of 50):

| the call's deliveries (due / shelved) | claim | take | head's claim |
|---|---|---|---|
| 2,000 (538 / 1,462) | 25,931 (2.6 ms) | 54,136 (4.6 ms) | 120,515 (9.7 ms) |
| 4,000 (590 / 3,410) | 33,855 (3.6 ms) | 126,212 (13.2 ms) | 242,359 (23.6 ms) |
| 4,000 after a restart at 2,000 (2,538 / 1,462) | 93,915 (8.4 ms) | 54,136 (5.1 ms) | 236,515 (27.2 ms) |
| 20,000 (1,006 / 18,994), explored by hand | 96,887 (8.6 ms) | 702,820 (135 ms) | |

After: 95 steps (0.2 ms), 92 (0.2 ms) and 336 (0.3 ms) in every case, once the first claims and takes after the
restart have set the call's waiting deliveries behind; the first claim after the restart reads two windows of the
due range at most (200 rows each: 36,735 to 48,751 steps, 4 to 11 ms), whatever is due.

The structural properties asserted: doubling one call's waiting deliveries does not grow the work of a claim, a
take or the head's claim (beyond a small margin), nor of the first claim after a restart beyond its two windows;
and a few claims and takes leave all but one of the call's deliveries set behind.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from switchhook.store.base import BEHIND, SHELVED
from switchhook.store.sql import FAIR_WINDOW
from tests.support.app import Harness, make_settings, running
from tests.support.receiver import Receiver, Reply

DOMAIN = "flood.example"
CALL = "one-call-many-events"
TS = 1_700_000_000_000_000  # Event-Date-Timestamp, microseconds
BATCH = 500
FEW, MANY = 2_000, 4_000
PROBE_LIMIT = 25  # a window of 200 (FAIR_WINDOW x 25): under the 538 due rows of the smaller flood
RETRY_S = 3600
#: Work may grow this much when the held rows double (deeper indexes, a page more): not with their number.
MARGIN = 1.25


class _Undone(Exception):
    """Raised inside a probe's transaction so that it rolls back: the probe leases nothing."""


def event(n: int) -> dict[str, str]:
    return {
        "Event-Name": "DTMF",
        "variable_domain_name": DOMAIN,
        "Channel-Call-UUID": CALL,
        "Event-Date-Timestamp": str(TS + n),
        "Event-Sequence": str(n),
    }


async def flood(app: Harness, token: str, start: int, stop: int) -> None:
    for first in range(start, stop, BATCH):
        response = await app.post_events([event(n) for n in range(first, min(stop, first + BATCH))], token)
        assert response.status_code == 202, response.text


async def where_pending(app: Harness) -> dict[str, int]:
    """The call's pending deliveries: due (leased by no worker: in every claim's range), shelved, set behind their
    call's earlier ones (out of every claim's range, off the shelf), leased."""
    async with app.runtime.store.transaction() as tx:
        rows = await tx.fetch(  # type: ignore[attr-defined]
            "SELECT CASE WHEN leased_by IN (?, ?) THEN leased_by WHEN leased_by IS NULL THEN 'due' ELSE 'leased' END"
            " AS s, count(*) AS n FROM deliveries WHERE status = 'pending' AND call_id = ? GROUP BY 1",
            SHELVED,
            BEHIND,
            CALL,
        )
    return {row["s"]: int(row["n"]) for row in rows}


class Probe:
    """Counts the SQLite VM steps of the store's statements on its database thread, and their milliseconds. Used
    with no worker running, so that the steps counted are the probe's own."""

    def __init__(self, app: Harness) -> None:
        self.store: Any = app.runtime.store
        self.steps = 0

    def _count(self) -> int:
        self.steps += 1
        return 0  # go on

    async def measure(self, work: Callable[[Any], Awaitable[None]], keep: bool = False) -> tuple[int, float]:
        """The steps and milliseconds of `work(tx)` in one transaction, rolled back unless `keep`."""
        await self.store.call(lambda conn: conn.set_progress_handler(self._count, 1))
        self.steps, started = 0, time.perf_counter()
        try:
            async with self.store.transaction() as tx:
                await work(tx)
                if not keep:
                    raise _Undone
        except _Undone:
            pass
        finally:
            await self.store.call(lambda conn: conn.set_progress_handler(None, 1))
        return self.steps, round((time.perf_counter() - started) * 1000, 1)


async def probe(app: Harness, hook_id: str) -> dict[str, tuple[int, float]]:
    """Right after a restart: the first claim (the call's deliveries let go by the stopped worker are due). Then,
    once claims and takes have looked at the call's waiting deliveries (as a worker's polls do): a claim, a take of
    the hook's shelf, and the claim of the call's head once its retry has come."""
    probe = Probe(app)

    async def claim(tx: Any) -> None:
        now = time.time()
        assert await tx.claim_due("probe", now, now + 30, PROBE_LIMIT) == [], "the call's head waits for its retry"

    async def take(tx: Any) -> None:
        now = time.time()
        assert await tx.claim_shelves("probe", [(hook_id, PROBE_LIMIT)], now, now + 30) == []

    async def head(tx: Any) -> None:  # its retry has come: it alone of the call is claimed
        later = time.time() + 2 * RETRY_S
        got = await tx.claim_due("probe", later, later + 30, PROBE_LIMIT)
        assert [claimed.delivery.call_seq for claimed in got] == [1], got

    measured = {"first claim": await probe.measure(claim)}
    for _ in range(2 + len(await where_pending_ids(app)) // (PROBE_LIMIT * FAIR_WINDOW)):
        await probe.measure(claim, keep=True)
        await probe.measure(take, keep=True)
    for name, work in (("claim", claim), ("take", take), ("head", head)):
        measured[name] = await probe.measure(work)
    return measured


async def where_pending_ids(app: Harness) -> list[str]:
    async with app.runtime.store.transaction() as tx:
        rows = await tx.fetch(  # type: ignore[attr-defined]
            "SELECT id FROM deliveries WHERE status = 'pending' AND call_id = ?", CALL
        )
    return [row["id"] for row in rows]


HOOK = {
    "event": "DTMF",
    "enable": True,
    "order": "call",
    "retries": 100,
    "delay": RETRY_S,  # the head's retry is an hour away: everything behind it is held back meanwhile
}
Figures = tuple[dict[str, dict[str, int]], dict[str, tuple[int, float]]]


async def held_back(settings: Any, url: str, start: int, stop: int, hook_id: str | None = None) -> tuple[str, Figures]:
    """Post events `start`..`stop` of the call to a running switchhook (creating the hook first unless given),
    stop it, start it again without a worker (what the worker held is let go, due, as after any restart; the probe
    then counts its own statements only) and measure where the call's deliveries wait and what a claim costs."""
    async with running(settings) as app:
        token = await app.domain_token(DOMAIN)
        if hook_id is None:
            hook_id = await app.create_hook(DOMAIN, {**HOOK, "action": {"type": "web", "method": "POST", "url": url}})
        await flood(app, token, start, stop)
    async with running(settings, worker=False) as app:
        held = await where_pending(app)
        assert sum(held.values()) == stop, held
        measured = await probe(app, hook_id)
        return hook_id, ({"after the restart": held, "probed": await where_pending(app)}, measured)


def assert_no_growth(few: Figures, many: Figures) -> None:
    print(f"\nthe call's pending deliveries, and the cost of a claim, a take, the head's claim: {few}, {many}")
    for (where, measured), held in ((few, FEW), (many, MANY)):
        # Each delivery waiting behind the call's head was looked at by a few claims and takes, then set aside.
        assert where["probed"] == {BEHIND: held - 1, "due": 1}, where
        assert max(steps for steps, _ in measured.values()) < 100_000, measured
    for name in ("claim", "take", "head"):
        assert many[1][name][0] <= MARGIN * few[1][name][0], (name, few, many)
    # Right after a restart: at most two windows of the due range (one set behind, one to claim from) whatever is
    # due; the smaller flood has more than one window due.
    assert many[1]["first claim"][0] <= 2 * MARGIN * few[1]["first claim"][0], (few, many)


async def test_a_calls_held_back_deliveries_do_not_grow_the_cost_of_a_claim_or_a_take(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.routes["/down"] = Reply(500)
    _, few = await held_back(make_settings(tmp_path / "few"), receiver.url("/down"), 0, FEW)
    _, many = await held_back(make_settings(tmp_path / "many"), receiver.url("/down"), 0, MANY)
    assert_no_growth(few, many)


async def test_after_a_restart_a_calls_new_deliveries_do_not_grow_the_cost_of_every_claim(
    tmp_path: Path, receiver: Receiver
) -> None:
    """After a restart, the call's head and the deliveries held behind it wait in the store, not at this worker:
    every new event of the call is let go at ingest (`ungate_calls`), due, into the range every claim walks."""
    receiver.routes["/down"] = Reply(500)
    settings = make_settings(tmp_path)
    hook_id, few = await held_back(settings, receiver.url("/down"), 0, FEW)
    _, more = await held_back(settings, receiver.url("/down"), FEW, MANY, hook_id)
    assert_no_growth(few, more)


def test_the_probe_counts_steps_on_this_sqlite() -> None:
    """The measure above relies on the progress handler being called per VM step when asked for every one."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn = sqlite3.connect(":memory:")
    conn.set_progress_handler(count, 1)
    conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) SELECT sum(i) FROM n")
    conn.close()
    assert steps > 1000
