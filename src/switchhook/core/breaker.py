"""Per-hook circuit breaker: stop hammering an endpoint that is down, probe it now and then (docs/breaker.md).

Pure state: the worker asks how many requests a hook may have in flight and reports each attempt's health.

- closed: the hook's normal in-flight cap. `threshold` consecutive unhealthy attempts open it.
- open: nothing is sent for the cooldown (first `first_cooldown_s`, doubling per failed probe up to
  `max_cooldown_s`); the hook's deliveries wait with their retry schedule untouched (they are not attempted,
  so no attempt is spent).
- half-open (the cooldown is over): one request at a time, a probe. A healthy answer closes the circuit;
  an unhealthy one opens it again for twice as long.

Unhealthy means the endpoint itself is in trouble: no HTTP answer (timeout, refused, reset) or a 5xx. A 2xx,
3xx or 4xx proves it is up; a 429 and a refusal by our own egress guard say nothing either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Health(Enum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


def health_of(status: int | None, terminal: bool) -> Health:
    """What one attempt says about the endpoint."""
    if status is None:
        return Health.UNKNOWN if terminal else Health.UNHEALTHY
    if status == 429:
        return Health.UNKNOWN
    return Health.UNHEALTHY if status >= 500 else Health.HEALTHY


class Change(Enum):
    OPENED = "opened"
    CLOSED = "closed"


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float | None = None  # set while open or half-open
    opened_at: float = 0.0
    cooldown_s: float = 0.0


class Breakers:
    """One circuit per hook id; hooks never seen (or healthy) hold no state."""

    def __init__(self, threshold: int, first_cooldown_s: float, max_cooldown_s: float) -> None:
        self.threshold = threshold  # 0: never open
        self._first_cooldown_s = first_cooldown_s
        self._max_cooldown_s = max(first_cooldown_s, max_cooldown_s)
        self._states: dict[str, _State] = {}

    def cap(self, hook_id: str, now: float, normal: int) -> int:
        state = self._states.get(hook_id)
        if state is None or state.open_until is None:
            return normal
        return 0 if now < state.open_until else 1

    def is_open(self, hook_id: str, now: float) -> bool:
        """Open and still cooling down: no request may start."""
        state = self._states.get(hook_id)
        return state is not None and state.open_until is not None and now < state.open_until

    def tripped(self) -> list[str]:
        """Hooks whose circuit is open or half-open (their backlog waits in the store)."""
        return [hook_id for hook_id, state in self._states.items() if state.open_until is not None]

    def reopens_at(self, hook_id: str) -> float | None:
        state = self._states.get(hook_id)
        return None if state is None else state.open_until

    def record(self, hook_id: str, health: Health, now: float, started: float | None = None) -> Change | None:
        """Account one finished attempt (begun at `started`, default `now`); say when the circuit opened or
        closed because of it. A failure of a request sent before the circuit last opened is old news: it
        neither extends the pause nor counts as a failed probe (slow timeouts outlive a short cooldown)."""
        if health is Health.UNKNOWN or self.threshold <= 0:
            return None
        state = self._states.get(hook_id)
        if health is Health.HEALTHY:
            if state is None:
                return None
            del self._states[hook_id]
            return Change.CLOSED if state.open_until is not None else None
        if state is None:
            state = self._states[hook_id] = _State()
        state.failures += 1
        if state.open_until is None:
            if state.failures < self.threshold:
                return None
            state.cooldown_s = self._first_cooldown_s
        elif now < state.open_until or (started if started is not None else now) < state.opened_at:
            return None  # sent before the circuit opened: already counted as down
        else:
            state.cooldown_s = min(self._max_cooldown_s, state.cooldown_s * 2)  # the probe failed
        state.opened_at = now
        state.open_until = now + state.cooldown_s
        return Change.OPENED
