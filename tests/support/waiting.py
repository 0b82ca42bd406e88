"""Polling with a deadline: the one helper tests use to wait for something asynchronous to happen.

Tests wait on a condition (a request arrived, a status recorded, a gate opened), never for a number of
seconds: a sleep either wastes time or races the code under test, and an assertion on how long something
took fails on a loaded machine. To show that something did *not* happen, wait for a later thing that must
come after it (a marker event delivered behind it, a recorded result) and then look.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest


async def eventually(
    predicate: Callable[[], Any],
    what: str,
    timeout_s: float = 5.0,
    details: Callable[[], str] | None = None,
    interval_s: float = 0.02,
) -> Any:
    """Poll `predicate` (its result may be awaitable) until it is truthy and return that result; fail after
    `timeout_s` saying `what` was awaited (and `details()`, when given, e.g. the servers' logs)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            extra = f"\n{details()}" if details is not None else ""
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}{extra}")
        await asyncio.sleep(interval_s)
