"""Group commit: callers that arrive while a write is running share the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Run `write(items) -> results` (one result per item, same order) for everything queued meanwhile.

    A transaction costs a few trips between the event loop and the database whatever its size, and writes
    are serialised (SQLite has one writer), so concurrent small writes wait on each other's trips: one
    request's events stored while three others queue. Batching them makes one trip serve all four.

    If a batch of several fails because of an item (`item_at_fault`), each item is written again on its own,
    so one caller's bad input (say, a value the database refuses) fails that caller only; any other error
    (the database is down) fails the whole batch at once. A caller that stops waiting (cancelled) does not
    stop the write its item is part of.
    """

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        max_items: int = 64,
        item_at_fault: Callable[[Exception], bool] = lambda exc: True,
    ) -> None:
        self._write = write
        self._max_items = max_items
        self._item_at_fault = item_at_fault  # else the error is everyone's (database down): no retry per item
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name="group-commit")
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_items], self._queue[self._max_items :]
                await self._run(batch)
        except BaseException as exc:  # cancelled (shutdown) or a bug: nobody may wait forever
            waiting, self._queue = batch + self._queue, []
            for _, future in waiting:
                _settle(future, exc)
            raise
        finally:
            self._writer = None

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or not self._item_at_fault(exc):
                for _, future in batch:
                    _settle(future, exc)
                return
            for one in batch:  # find who it was: everyone else still gets stored
                await self._run([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _settle(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)
            future.exception()  # retrieved: a caller that stopped waiting must not log "never retrieved"
