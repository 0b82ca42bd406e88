"""Pieces shared by the stand-ins for the deliveries service that worker tests drive (no database)."""

from __future__ import annotations

from collections.abc import Sequence

from switchhook.services.events import Job


class TakesShelvesOneByOne:
    """`claim_shelves` as the service does it: each hook's take after another (here, through the stand-in's own
    `claim_shelved`), so a test counts and scripts takes per hook."""

    async def claim_shelved(self, worker_id: str, hook_id: str, limit: int, lease_s: float) -> tuple[list[Job], int]:
        raise NotImplementedError

    async def claim_shelves(
        self, worker_id: str, rooms: Sequence[tuple[str, int]], lease_s: float
    ) -> tuple[list[Job], dict[str, int]]:
        jobs: list[Job] = []
        taken: dict[str, int] = {}
        for hook_id, limit in rooms:
            hook_jobs, taken[hook_id] = await self.claim_shelved(worker_id, hook_id, limit, lease_s)
            jobs += hook_jobs
        return jobs, taken
