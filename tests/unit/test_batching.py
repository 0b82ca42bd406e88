"""Group commit: concurrent callers share one write; one caller's failure stays that caller's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from switchhook.services.batching import GroupCommit


class Recorder:
    """A write that takes one loop turn (like a trip to the database) and remembers each batch."""

    def __init__(self, refuse: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.refuse = refuse or set()
        self.gate: asyncio.Event | None = None

    async def write(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.refuse & set(items):
            raise ValueError(f"refused {sorted(self.refuse & set(items))}")
        return [item * 10 for item in items]


async def first_then_batch(
    group: GroupCommit[int, int], recorder: Recorder, first: int, rest: Sequence[int]
) -> tuple[asyncio.Task[int], list[asyncio.Task[int]]]:
    """`first` is written alone while `rest` arrive: they queue for the next write. Then the gate opens."""
    recorder.gate = asyncio.Event()
    leading = asyncio.create_task(group.submit(first))
    await asyncio.sleep(0)  # the first write is under way, waiting on the gate
    queued = [asyncio.create_task(group.submit(n)) for n in rest]
    await asyncio.sleep(0)
    recorder.gate.set()
    return leading, queued


async def test_callers_arriving_during_a_write_share_the_next_one() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.write)
    first, rest = await first_then_batch(group, recorder, 1, (2, 3, 4))
    assert await first == 10
    assert [await task for task in rest] == [20, 30, 40]  # each caller gets its own result
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_a_failing_item_fails_its_caller_only() -> None:
    recorder = Recorder(refuse={3})
    group = GroupCommit(recorder.write)
    blocker, tasks = await first_then_batch(group, recorder, 0, (2, 3, 4))
    assert await blocker == 0
    assert await tasks[0] == 20
    with pytest.raises(ValueError, match=r"refused \[3\]"):
        await tasks[1]
    assert await tasks[2] == 40
    assert recorder.batches == [[0], [2, 3, 4], [2], [3], [4]]  # the batch failed, then each alone


async def test_batches_are_capped_and_the_writer_stops_when_idle() -> None:
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    group = GroupCommit(recorder.write, max_items=2)
    tasks = [asyncio.create_task(group.submit(n)) for n in range(5)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40]
    assert recorder.batches == [[0, 1], [2, 3], [4]]
    assert await group.submit(7) == 70  # a new writer starts for a caller after an idle spell
    assert recorder.batches[-1] == [7]


async def test_a_caller_that_stops_waiting_does_not_cancel_the_write() -> None:
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    group = GroupCommit(recorder.write)
    impatient = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    patient = asyncio.create_task(group.submit(2))
    recorder.gate.set()
    assert await patient == 20
    assert recorder.batches == [[1], [2]]  # 1 was written all the same


async def test_an_error_that_is_nobodys_item_fails_the_batch_at_once() -> None:
    recorder = Recorder(refuse={3})
    group = GroupCommit(recorder.write, item_at_fault=lambda exc: False)  # e.g. the database is down
    blocker, tasks = await first_then_batch(group, recorder, 0, (2, 3, 4))
    assert await blocker == 0
    for task in tasks:
        with pytest.raises(ValueError):
            await task
    assert recorder.batches == [[0], [2, 3, 4]]  # not retried item by item


async def test_a_cancelled_writer_leaves_nobody_waiting() -> None:
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    group = GroupCommit(recorder.write)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(group.submit(n)) for n in (2, 3)]
    await asyncio.sleep(0)
    writer = group._writer
    assert writer is not None
    writer.cancel()  # shutdown while the first write is under way and two callers are queued
    for task in (first, *queued):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 1)
