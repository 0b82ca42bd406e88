"""The worker's background loops: a store outage (Unavailable) is one warning line and the loop goes on; any
other failure is a bug and is logged with its traceback, so that it never reads as an outage."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from switchhook.core.errors import Unavailable
from switchhook.delivery.worker import DeliveryWorker
from switchhook.services.events import Job
from switchhook.store.base import Fair
from tests.delivery.test_shelf_care import NothingSent, ShelfStore
from tests.support.waiting import eventually


class FailingClaims(ShelfStore):
    def __init__(self, error: Exception) -> None:
        super().__init__([])
        self.error = error

    async def claim(
        self, worker_id: str, limit: int, lease_s: float, skip_hooks: Sequence[str] = (), fair: Fair | None = None
    ) -> list[Job]:
        await super().claim(worker_id, limit, lease_s, skip_hooks, fair)
        raise self.error


@pytest.mark.parametrize(
    ("error", "level", "traceback"),
    [(Unavailable("database unavailable: ConnectionRefusedError"), logging.WARNING, False),
     (KeyError("a bug"), logging.ERROR, True)],
)  # fmt: skip
async def test_an_outage_is_one_line_and_anything_else_has_its_traceback(
    caplog: pytest.LogCaptureFixture, error: Exception, level: int, traceback: bool
) -> None:
    store = FailingClaims(error)
    worker = DeliveryWorker(
        store, NothingSent(), lease_s=90, max_in_flight=10, max_in_flight_per_hook=1, poll_interval_s=3600
    )
    with caplog.at_level(logging.WARNING, logger="switchhook.delivery"):
        worker.start()
        try:
            await eventually(lambda: store.turns() == 1, "a claim")
            worker.poke()
            await eventually(lambda: store.turns() == 2, "the poll loop went on after the failure")
        finally:
            await worker.stop(grace_s=1)
    records = [r for r in caplog.records if r.getMessage().startswith("claiming due deliveries failed")]
    assert len(records) == 2
    assert all(r.levelno == level and (r.exc_info is not None) == traceback for r in records)
    assert ("database unavailable" in records[0].getMessage()) is not traceback  # the outage's reason, on its line
