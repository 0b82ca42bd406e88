"""Delivery outcomes and the retry schedule: pure functions of status, attempts and time (docs/behaviour.md)."""

from __future__ import annotations

import datetime
import email.utils
import math
from dataclasses import dataclass

BACKOFF_START_S = 5.0
BACKOFF_CAP_S = 3600.0
JITTER = 0.2
RETRY_AFTER_MIN_S = 1.0
RETRY_AFTER_MAX_S = 3600.0


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int


@dataclass(frozen=True, slots=True)
class Retry:
    at: float  # epoch seconds of the next attempt
    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str
    disable_hook: bool = False
    #: The delivery's `ttl` ended it (before the attempt, or before the retry it would have needed): `expired`.
    expired: bool = False


Outcome = Delivered | Retry | GiveUp
_DELIVERED = {code: Delivered(code) for code in (200, 201, 202, 204)}  # immutable: shared, not rebuilt


def backoff_s(attempts_done: int, delay_s: float | None, jitter_unit: float) -> float:
    """Wait before the next attempt. `jitter_unit` in [0, 1) picks the point in the ±20 % band.

    With a hook `delay` the wait is fixed (Webitel); without, exponential from 5 s, capped at 1 h.
    """
    if delay_s is not None and delay_s > 0:
        return float(delay_s)
    base: float = min(BACKOFF_CAP_S, BACKOFF_START_S * 2.0 ** min(30, max(0, attempts_done - 1)))
    return min(BACKOFF_CAP_S, base * (1 - JITTER + 2 * JITTER * jitter_unit))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date), clamped to 1 s-1 h."""
    if not value:
        return None
    value = value.strip()
    seconds: float | None
    if value.isascii() and value.isdigit():  # str.isdigit() also accepts "²", which float() refuses
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # asctime and "-0000" dates parse naive; HTTP dates are always GMT
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return min(RETRY_AFTER_MAX_S, max(RETRY_AFTER_MIN_S, seconds))


def decide(
    *,
    status: int | None,
    error: str | None,
    terminal_error: bool,
    retry_after: str | None,
    attempts_done: int,
    max_attempts: int,
    delay_s: float | None,
    expires_at: float | None,
    now: float,
    jitter_unit: float,
    disable_on_gone: bool = False,
) -> Outcome:
    """Classify one attempt's result into Delivered, Retry(at) or GiveUp(reason).

    A 410 Gone fails the delivery for good, and disables the hook only when it opted in (`disableOnGone`).
    """
    if status is not None and 200 <= status < 300:
        return _DELIVERED.get(status) or Delivered(status)
    reason = f"HTTP {status}" if status is not None else (error or "request failed")
    if status == 410:
        if disable_on_gone:
            return GiveUp("HTTP 410 Gone: hook disabled", disable_hook=True)
        return GiveUp("HTTP 410 Gone: not retried (the hook stays enabled without disableOnGone)")
    if terminal_error:
        return GiveUp(reason)
    if attempts_done >= max_attempts:
        return GiveUp(f"{reason}; gave up after {attempts_done} attempt(s)")
    wait = parse_retry_after(retry_after, now) if status in (429, 503) else None
    if wait is None:
        wait = backoff_s(attempts_done, delay_s, jitter_unit)
    at = now + wait
    if expires_at is not None and at >= expires_at:
        return GiveUp(f"{reason}; ttl expires before the next attempt", expired=True)
    return Retry(at, reason)
