"""Polling with a deadline, for tests that wait on something asynchronous to happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest


async def eventually(
    predicate: Callable[[], Any], what: str, timeout_s: float = 5.0, details: Callable[[], str] | None = None
) -> None:
    """Poll `predicate` (its result may be awaitable) until it holds; fail after `timeout_s` saying what."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            extra = f"\n{details()}" if details is not None else ""
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}{extra}")
        await asyncio.sleep(0.02)
