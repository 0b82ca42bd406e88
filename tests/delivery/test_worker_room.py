"""The worker's in-memory room: per hook 16 x its in-flight cap, and all hooks' backlogs together at most half
of the worker's room, so slow hooks cannot take the room the others' fresh deliveries need."""

from __future__ import annotations

from switchhook.core.admission import PARKED_PER_SLOT, Admission, Goes
from switchhook.core.breaker import Breakers, Health
from switchhook.core.hooks import Hook
from switchhook.services.events import Job


def jobs(hook_id: str, count: int) -> list[Job]:
    hook = Hook.compile(hook_id, "d.example", {"event": "DTMF", "enable": True, "action": {"url": "http://x.test/"}})
    return [Job(f"{hook_id}-{n}", f"e{n}", hook, {}, "DTMF", 0, 0.0, None) for n in range(count)]


def admission(breakers: Breakers | None = None) -> Admission[Job]:
    return Admission(
        breakers or Breakers(0, 0.0, 0.0),
        max_in_flight=100, max_in_flight_per_hook=1, max_in_flight_per_domain=128, max_leased=40,
    )  # fmt: skip


def admit(state: Admission[Job], batch: list[Job]) -> None:
    """What the worker does with leased jobs: lease them and start what the caps allow (nothing finishes)."""
    state.lease(batch)
    state.dispatch(0.0)


def test_hook_room_is_per_hook_and_bounded_for_all_hooks_together() -> None:
    state = admission()
    backlog = PARKED_PER_SLOT  # cap 1
    assert state.hook_room("h1") == backlog
    admit(state, jobs("h1", backlog + 1))  # one in flight, the rest parked
    assert (state.in_flight, state.hook_room("h1"), state.hook_room("h2")) == (1, 0, backlog)
    admit(state, jobs("h2", 5))  # 16 + 4 parked: half of max_leased
    assert state.hook_room("h2") == 0 and state.hook_room("h3") == 0  # the rest is kept for others


def test_only_a_paused_hook_or_one_with_its_own_backlog_full_is_shelved() -> None:
    """Room taken by other hooks' backlogs is not a hook's doing: its deliveries stay due (claimed as soon as there
    is room), never shelved for minutes behind someone else's slow endpoint."""
    breakers = Breakers(1, 60.0, 60.0)
    state = admission(breakers)
    admit(state, jobs("h1", PARKED_PER_SLOT + 1))  # its own backlog full
    assert state.hook_room("h1") == 0 and state.shelves("h1")
    admit(state, jobs("h2", 5))  # all backlogs together: half of max_leased
    assert state.hook_room("h3") == 0 and not state.shelves("h3")
    breakers.record("h4", Health.UNHEALTHY, 0.0)  # its endpoint paused
    assert state.hook_room("h4") == 0 and state.shelves("h4")
    # And so ingest's plan, with all backlogs together at half the room: the paused hook and h1, whose own backlog
    # is full, are shelved (issue 13, item 4: a full backlog's overflow is never left due, where every claim walks
    # it); h3 is left due (the worker is full for it, not of its doing).
    plan = state.plan("w", 90.0, 600.0)
    assert [plan.admit(h, "d.example") for h in ("h1", "h3", "h4")] == [Goes.SHELVED, Goes.DUE, Goes.SHELVED]
    assert plan.shelved == {"h1", "h4"} and state.full
