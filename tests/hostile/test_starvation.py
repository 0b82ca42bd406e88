"""Issue 13, item 4: dead endpoints of one tenant starved another's deliveries. Ten hooks of A (half refused, half
never answering) and 200,000 deliveries in 20 s: B's POSTs still got 202, but B's deliveries sat due with 0
attempts (p50 43.8 s, max 54.5 s end to end, 3.5 ms at rest), and 167,154 of A's were stored due, not shelved.

Scaled down here (caps of 2 per hook and 4 per domain, a worker room of 500, 14,000 deliveries of A), the same
attack, before the fix: A's deliveries parked for A's domain slot filled the worker's whole room, B's fresh ones were
left due behind thousands of A's, and B waited seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switchhook.core.admission import PARKED_PER_SLOT
from switchhook.store.base import SHELVED
from tests.support.app import Harness, make_settings, running
from tests.support.process import free_port
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

PER_HOOK, PER_DOMAIN = 2, 4
A_BATCH = 250
A_TIMEOUT_S = 5  # A's hooks: a request to the never-answering endpoint holds its slots this long
B_EVENTS = 10
A_EVENTS = (4 + B_EVENTS) * A_BATCH  # x 4 hooks: 14,000 deliveries
B_BOUND_S = 2.0  # every B delivery within this of its POST: generous for a loaded 2-core machine
MAX_QUEUED = 500  # the worker's room: half of one of A's POSTs


@pytest.fixture
async def black_hole() -> AsyncIterator[str]:
    """An endpoint that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(-1)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/never"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def a_hooks(app: Harness, token: str, black_hole: str) -> None:
    refused = f"http://127.0.0.1:{free_port()}/refused"  # nothing listens there
    for url in (refused, refused, black_hole, black_hole):
        action = {"type": "web", "method": "POST", "url": url}
        await app.create_hook(
            "a.example", {"event": "DTMF", "enable": True, "timeout": A_TIMEOUT_S, "action": action}, token
        )


async def a_pending(app: Harness) -> dict[str, int]:
    """A's pending deliveries: shelved, due (in every claim's range, leased by no worker), leased."""
    async with app.runtime.store.transaction() as tx:
        rows = await tx.fetch(  # type: ignore[attr-defined]
            "SELECT CASE WHEN leased_by = ? THEN 'shelved' WHEN leased_by IS NULL THEN 'due' ELSE 'leased' END AS s,"
            " count(*) AS n FROM deliveries WHERE domain = 'a.example' AND status = 'pending' GROUP BY 1",
            SHELVED,
        )
    return {row["s"]: int(row["n"]) for row in rows}


async def test_one_tenants_dead_endpoints_do_not_starve_anothers_deliveries(
    tmp_path: Path, receiver: Receiver, black_hole: str
) -> None:
    settings = make_settings(
        tmp_path, max_in_flight_per_hook=PER_HOOK, max_in_flight_per_domain=PER_DOMAIN, max_queued=MAX_QUEUED
    )
    async with running(settings) as app:
        a, b = await app.domain_token("a.example"), await app.domain_token("b.example")
        await a_hooks(app, a, black_hole)
        action = {"type": "web", "method": "POST", "url": receiver.url("/b")}
        await app.create_hook("b.example", {"event": "DTMF", "enable": True, "action": action}, b)

        sent_by_a = 0

        async def flood(batches: int) -> None:
            nonlocal sent_by_a
            events = [
                [{"Event-Name": "DTMF", "variable_domain_name": "a.example", "n": str(sent_by_a + i * A_BATCH + n)}
                 for n in range(A_BATCH)]
                for i in range(batches)
            ]  # fmt: skip
            sent_by_a += batches * A_BATCH
            answers = await asyncio.gather(*(app.post_events(batch, a) for batch in events))
            assert [r.status_code for r in answers] == [202] * batches

        await flood(4)
        latencies: list[float] = []
        for n in range(B_EVENTS):  # a steady trickle of B's, each awaited before the next, while A keeps flooding
            await flood(1)
            posted_at = time.time()
            sent = await app.post_events({"Event-Name": "DTMF", "variable_domain_name": "b.example", "n": str(n)}, b)
            assert sent.status_code == 202
            arrived = await eventually(
                lambda n=n: next((r for r in receiver.requests if r.json()["data"].get("n") == str(n)), None),
                f"B's delivery {n}",
                timeout_s=10 * B_BOUND_S,
                details=lambda: f"A's pending deliveries: {a_pending_now}",
            )
            latencies.append(arrived.at - posted_at)
            a_pending_now.update(await a_pending(app))
        assert sent_by_a == A_EVENTS
        assert max(latencies) < B_BOUND_S, f"B's latencies {[round(s, 3) for s in latencies]}"

        pending = await a_pending(app)
        # A's excess waits shelved, out of every claim's range; what is due is at most what A's room here held.
        assert pending.get("shelved", 0) >= 4 * A_EVENTS - 2 * PER_DOMAIN * PARKED_PER_SLOT - 4 * PER_HOOK, pending
        assert pending.get("due", 0) <= PER_DOMAIN * PARKED_PER_SLOT + PER_DOMAIN, pending


a_pending_now: dict[str, Any] = {}
