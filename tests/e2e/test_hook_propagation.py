"""A hook changed through one process is what every other process matches, with no reload by hand.

Two `switchhook serve` processes on one PostgreSQL schema: hooks are created, replaced and deleted through
the first one's API while events are posted to the second. Each process keeps its hooks in memory; only
the change notices (PostgreSQL LISTEN/NOTIFY, see store/postgres.py) tell the second one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.process import Cluster, postgres_cluster
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DOMAIN = "propagation.example"
_serial = itertools.count()


def hook(url: str) -> dict[str, Any]:
    return {"event": "CHANNEL_CREATE", "enable": True, "action": {"type": "web", "method": "POST", "url": url}}


class Poster:
    """Posts fresh CHANNEL_CREATE events to one process and remembers its answers."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.answers: list[tuple[str, int]] = []  # (Unique-ID, deliveries stored)

    async def post(self) -> int:
        unique_id = f"call-{next(_serial)}"
        event = {"Event-Name": "CHANNEL_CREATE", "Unique-ID": unique_id, "variable_domain_name": DOMAIN}
        answer = await self.client.post("/api/v2/events", json=event)
        assert answer.status_code == 202, answer.text
        deliveries: int = answer.json()["data"]["deliveries"]
        self.answers.append((unique_id, deliveries))
        return deliveries

    async def until(self, holds: Callable[[int], bool], what: str, cluster: Cluster) -> str:
        """Post one event after another until `holds(the answer's delivery count)`; that event's Unique-ID."""

        async def post_one() -> bool:
            return holds(await self.post())

        await eventually(post_one, what, 10, lambda: f"{self.answers[-3:]}\n{cluster.logs()}", interval_s=0.1)
        return self.answers[-1][0]


async def test_hook_changes_in_one_process_are_matched_by_another(tmp_path: Path, receiver: Receiver) -> None:
    roles = {"one": (), "two": ()}
    async with (
        postgres_cluster(tmp_path, DOMAIN, roles) as cluster,
        cluster.client("one") as one,
        cluster.client("two") as two,
    ):
        events_to_two = Poster(two)
        created = await one.post("/api/v2/hooks", json=hook(receiver.url("/first")))
        assert created.status_code == 200, created.text
        hook_id = created.json()["data"]["insertedIds"][0]

        matched = await events_to_two.until(lambda n: n == 1, "the other process to match the new hook", cluster)
        (request,) = await receiver.wait_for(1, path="/first")
        assert request.json()["data"]["Unique-ID"] == matched

        replaced = await one.put(f"/api/v2/hooks/{hook_id}", json=hook(receiver.url("/second")))
        assert replaced.status_code == 200, replaced.text

        async def sent_to_the_new_url() -> bool:
            await events_to_two.post()
            return bool(receiver.on("/second"))

        await eventually(sent_to_the_new_url, "the other process to send to the replaced URL", 10, cluster.logs, 0.1)

        deleted = await one.delete(f"/api/v2/hooks/{hook_id}")
        assert deleted.status_code == 200, deleted.text
        await events_to_two.until(lambda n: n == 0, "the other process to forget the deleted hook", cluster)
