"""A hook's fallback URL (`action.fallbackUrl`, docs/fallback.md): when an attempt fails over, and which leg it
starts with while the primary is paused.

Pure, like `breaker.py`: the pipeline (`delivery/pipeline.py`) passes `now` and the legs' results.

One attempt is one or two **legs**, sent one after the other with the same request::

    primary ── 2xx, 3xx, 4xx: an answer (the attempt's result, no failover)
       │     ── refused by the egress guard, an invalid URL: switchhook's own refusal (no failover)
       │ no answer (timeout, refused, reset, unreachable) or a 5xx
       ▼
    fallback (+ X-Original-Url, X-Failover-Reason) ── 2xx: delivered; anything else: the primary's failure decides

The **primary's circuit** (`PrimaryCircuits`, a `breaker.Breakers` of its own) counts the primary's health only,
whether or not the fallback then answered: `threshold` consecutive failures pause the primary, and the attempts
that start while it cools down go straight to the fallback (reason `paused`). Once the cooldown is over, the
first attempt to start is the primary's **probe** (one at a time, and it fails over like any other); the others
keep going straight to the fallback until the probe's primary answers (the circuit closes) or fails (it opens
again for twice as long). The worker's own circuit (`worker.py`, admission) sees each attempt's last leg, so a
hook is shelved only when its fallback is down too.
"""

from __future__ import annotations

from enum import Enum

from switchhook.core.breaker import Breakers, Change, Health

#: Why a request got no answer, as the sender names it (`HttpResult.no_answer`) and X-Failover-Reason says it:
#: the connection was refused, reset (or the answer cut short), the host could not be reached (DNS, route, TLS).
NO_ANSWER_REASONS = ("timeout", "refused", "reset", "unreachable")
#: X-Failover-Reason of an attempt sent straight to the fallback: the primary's circuit is open.
PAUSED = "paused"


class Route(Enum):
    """Where an attempt starts."""

    PRIMARY = "primary"  # the primary; the fallback on its failure
    FALLBACK = "fallback"  # straight to the fallback: the primary is paused


def failover_reason(status: int | None, terminal: bool, no_answer: str | None) -> str | None:
    """X-Failover-Reason for a primary result, or None when it does not fail over.

    It fails over exactly when the primary's circuit counts the result as unhealthy (`breaker.health_of`): a 5xx
    (`http 503`), or no answer (`no_answer`, the sender's name for it: NO_ANSWER_REASONS, else `error`). A 4xx is
    an answer; a `terminal` failure is switchhook's own refusal (the egress guard, an invalid URL or redirect):
    the destination did not fail, and the fallback is not a way around the guard.
    """
    if status is None:
        return None if terminal else (no_answer or "error")
    return f"http {status}" if status >= 500 else None


class PrimaryCircuits:
    """The circuit of each fallback hook's primary URL, and the one probe of a half-open one.

    Only hooks with a fallback ever hold state here: the others are paused by the worker's own circuit.
    """

    def __init__(self, breakers: Breakers) -> None:
        self.breakers = breakers
        self._probes: dict[str, str] = {}  # hook id -> the delivery id probing its primary

    def route(self, hook_id: str, delivery_id: str, now: float) -> Route:
        """Where this attempt starts. A half-open primary takes this attempt as its probe when none is on its way
        (call `finished` with the same ids when the attempt is over)."""
        reopens_at = self.breakers.reopens_at(hook_id)
        if reopens_at is None:
            return Route.PRIMARY
        if now < reopens_at or hook_id in self._probes:
            return Route.FALLBACK
        self._probes[hook_id] = delivery_id
        return Route.PRIMARY

    def finished(
        self, hook_id: str, delivery_id: str, health: Health, now: float, started: float | None = None
    ) -> Change | None:
        """Account the primary leg of an attempt begun at `started` (`Health.UNKNOWN` when it was not sent or
        said nothing); whether the primary paused (OPENED) or resumed (CLOSED) because of it."""
        if self._probes.get(hook_id) == delivery_id:
            del self._probes[hook_id]
        return self.breakers.record(hook_id, health, now, started)

    def probing(self, hook_id: str) -> str | None:
        """The delivery id whose attempt is probing the hook's primary, if any."""
        return self._probes.get(hook_id)
