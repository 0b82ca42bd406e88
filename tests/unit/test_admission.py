"""Admission (core/admission.py) driven directly: caps, room, shelving, paused hooks, hand-backs, and what a
finished job lets start. Synchronous: no event loop, no store, no clock but the `now` passed in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from switchhook.core.admission import PARKED_PER_SLOT, Admission, Goes, Probe
from switchhook.core.breaker import Breakers, Change, Health
from switchhook.core.hooks import Hook

HOOKS: dict[tuple[str, str], Hook] = {}


def hook(hook_id: str, domain: str = "d.example") -> Hook:
    key = (hook_id, domain)
    if key not in HOOKS:
        HOOKS[key] = Hook.compile(hook_id, domain, {"event": "DTMF", "enable": True, "action": {"url": "http://x/"}})
    return HOOKS[key]


@dataclass(slots=True)
class Work:
    delivery_id: str
    hook: Hook
    call_id: str | None = None
    event_ts: int | None = None
    event_seq: int | None = None
    call_seq: int | None = 1  # numbered: the rules of a call's line; numbering itself is tested on its own below


def work(hook_id: str, count: int, domain: str = "d.example", first: int = 0) -> list[Work]:
    return [Work(f"{hook_id}-{n}", hook(hook_id, domain)) for n in range(first, first + count)]


def ids(jobs: Iterable[Work]) -> list[str]:
    return [job.delivery_id for job in jobs]


def admission(
    *,
    cap: int = 1,
    domain_cap: int = 128,
    max_in_flight: int = 100,
    max_leased: int = 1000,
    breakers: Breakers | None = None,
) -> Admission[Work]:
    return Admission(
        breakers or Breakers(2, 10.0, 60.0),
        max_in_flight=max_in_flight,
        max_in_flight_per_hook=cap,
        max_in_flight_per_domain=domain_cap,
        max_leased=max_leased,
    )


def down(state: Admission[Work], job: Work, now: float) -> tuple[Change | None, list[str]]:
    """`job` finished unhealthy (its endpoint did not answer)."""
    change, handed_back = state.account(job.hook.id, Health.UNHEALTHY, now)
    state.finished(job, now)
    return change, ids(handed_back)


# -- caps ---------------------------------------------------------------------------------------------------------
def test_the_global_cap_starts_no_more_than_max_in_flight_and_the_rest_stays_ready() -> None:
    state = admission(cap=10, max_in_flight=3)
    state.lease(work("h", 5))
    started, handed_back = state.dispatch(0.0)
    assert (ids(started), list(handed_back), state.in_flight, state.leased) == (["h-0", "h-1", "h-2"], [], 3, 5)
    assert state.backlog("h") == []  # ready, not parked: it was the global cap
    state.finished(started[0], 0.0)
    assert ids(state.dispatch(0.0)[0]) == ["h-3"]


def test_a_hooks_cap_parks_its_others_and_a_finished_one_lets_its_longest_waiter_start() -> None:
    state = admission(cap=2)
    state.lease(work("h", 5) + work("other", 1))
    started, _ = state.dispatch(0.0)
    assert ids(started) == ["h-0", "h-1", "other-0"]  # a busy hook does not hold the others up
    assert ids(state.backlog("h")) == ["h-2", "h-3", "h-4"]
    assert state.finished(started[0], 0.0) is Probe.NONE
    assert ids(state.dispatch(0.0)[0]) == ["h-2"]
    assert ids(state.backlog("h")) == ["h-3", "h-4"]


def test_a_domains_cap_holds_all_its_hooks_and_not_the_other_domains() -> None:
    state = admission(cap=5, domain_cap=2)
    state.lease(work("a1", 2, "a.example") + work("a2", 2, "a.example") + work("b1", 2, "b.example"))
    started, _ = state.dispatch(0.0)
    assert ids(started) == ["a1-0", "a1-1", "b1-0", "b1-1"]
    state.finished(started[2], 0.0)  # a slot of b.example: nothing of a.example starts
    assert ids(state.dispatch(0.0)[0]) == []
    state.finished(started[0], 0.0)  # a slot of a.example: its longest waiter
    assert ids(state.dispatch(0.0)[0]) == ["a2-0"]


def test_a_delivery_leased_twice_is_held_once_and_forgotten_once_recorded() -> None:
    state = admission()
    job = work("h", 1)
    state.lease(job)
    state.lease(job)  # claimed again while it waits here (its own lease)
    started, _ = state.dispatch(0.0)
    assert ids(started) == ["h-0"] and state.leased == 1
    state.finished(started[0], 0.0)
    assert state.is_leased("h-0") and state.idle  # finished, leased until recorded
    state.forget(["h-0"])
    assert (state.leased, state.room(), state.leased_ids()) == (0, 1000, [])


# -- room and shelving ----------------------------------------------------------------------------------------------
def test_room_in_all_and_per_hook() -> None:
    state = admission(cap=1, max_leased=40)
    state.lease(work("h1", 1 + PARKED_PER_SLOT - 3))
    state.dispatch(0.0)
    assert (state.room(), state.hook_room("h1"), state.hook_room("h2")) == (26, 3, PARKED_PER_SLOT)


def test_a_plan_leases_while_there_is_room_then_shelves_a_hooks_own_overflow() -> None:
    state = admission(cap=1, max_leased=1000)
    state.lease(work("busy", 1 + PARKED_PER_SLOT - 2))  # room for 2 more in its backlog
    state.dispatch(0.0)
    plan = state.plan("w1", 190.0, 700.0)
    goes = [plan.admit(h, "d.example") for h in ("busy", "busy", "busy", "calm", "busy")]
    assert goes == [Goes.LEASED, Goes.LEASED, Goes.SHELVED, Goes.LEASED, Goes.SHELVED]
    assert plan.shelved == {"busy"} and not state.full
    assert (plan.leased_by, plan.lease_until, plan.shelved_until) == ("w1", 190.0, 700.0)


def test_a_plan_leaves_deliveries_due_when_the_worker_has_no_room() -> None:
    state = admission(max_leased=2)
    plan = state.plan("w1", 0.0, 0.0)
    assert [plan.admit("h", "d.example") for _ in range(3)] == [Goes.LEASED, Goes.LEASED, Goes.DUE]
    assert state.full and plan.shelved == set()


def test_a_healthy_hook_is_not_shelved_because_of_other_hooks_backlogs() -> None:
    state = admission(cap=1, max_leased=40)
    state.lease(work("slow1", 1 + PARKED_PER_SLOT) + work("slow2", 1 + 4))  # 20 parked: half the room
    state.dispatch(0.0)
    assert state.hook_room("healthy") == 0 and not state.shelves("healthy")
    plan = state.plan("w1", 0.0, 0.0)
    assert plan.admit("healthy", "d.example") is Goes.DUE and state.full and plan.shelved == set()


def test_a_paused_hook_has_no_room_and_its_fresh_deliveries_are_shelved() -> None:
    breakers = Breakers(1, 10.0, 60.0)
    state = admission(breakers=breakers)
    breakers.record("dead", Health.UNHEALTHY, 0.0)
    assert state.hook_room("dead") == 0 and state.shelves("dead")
    plan = state.plan("w1", 0.0, 0.0)
    assert (plan.admit("dead", "d.example"), plan.admit("alive", "d.example")) == (Goes.SHELVED, Goes.LEASED)
    assert plan.shelved == {"dead"}


def test_deliveries_parked_for_their_domains_slot_count_in_their_hooks_room() -> None:
    """Issue 13, item 4: a domain's cap parked its deliveries before they reached their hook's backlog, so a hook's
    room never ran out and one tenant's dead hooks took the whole worker."""
    state = admission(cap=4, domain_cap=1)
    state.lease(work("a1", 1 + PARKED_PER_SLOT * 4, "a.example"))
    started, _ = state.dispatch(0.0)
    assert len(started) == 1 and state.backlog("a1") == []  # parked for the domain's slot, not the hook's
    assert state.hook_room("a1") == PARKED_PER_SLOT * 4 - PARKED_PER_SLOT * 4  # every waiting one counts
    assert state.shelves("a1") and "a1" in state.skipped(0.0)


def test_a_domains_waiting_deliveries_are_bounded_and_its_overflow_shelved_by_hook() -> None:
    state = admission(cap=100, domain_cap=2, max_leased=1000)  # a domain may hold 2 x 16 waiting
    state.lease(work("a1", 20, "a.example") + work("a2", 14, "a.example"))
    state.dispatch(0.0)  # 2 in flight, 32 waiting
    assert (state.domain_room("a.example"), state.domain_room("b.example")) == (0, 2 * PARKED_PER_SLOT)
    assert state.skipped_domains() == ["a.example"]
    plan = state.plan("w1", 0.0, 0.0)
    goes = [plan.admit("a3", "a.example"), plan.admit("b1", "b.example"), plan.admit("a1", "a.example")]
    assert goes == [Goes.SHELVED, Goes.LEASED, Goes.SHELVED]  # a fresh hook of a full domain too
    assert plan.shelved == {"a1", "a3"} and not state.full
    assert state.shelf_room("a3") == 0  # its shelf is taken once the domain has room again
    state.finished(work("a1", 1, "a.example")[0], 0.0)  # a slot of the domain: its longest waiter starts
    assert len(state.dispatch(0.0)[0]) == 1
    assert (state.domain_room("a.example"), state.shelf_room("a3")) == (1, 1)


def test_a_full_or_paused_hook_is_shelved_even_when_the_worker_has_no_room() -> None:
    """Issue 13, item 4: 167,154 of a dead tenant's deliveries were stored due, where every claim walks them."""
    breakers = Breakers(1, 10.0, 60.0)
    state = admission(cap=1, max_leased=1 + PARKED_PER_SLOT, breakers=breakers)
    state.lease(work("full", 1 + PARKED_PER_SLOT))
    state.dispatch(0.0)
    breakers.record("paused", Health.UNHEALTHY, 0.0)
    assert state.room() == 0
    plan = state.plan("w1", 0.0, 0.0)
    goes = [plan.admit(h, "d.example") for h in ("full", "paused", "other")]
    assert goes == [Goes.SHELVED, Goes.SHELVED, Goes.DUE]
    assert plan.shelved == {"full", "paused"} and state.full


def test_claims_skip_full_backlogs_and_paused_hooks_unless_half_open_with_no_probe_here() -> None:
    breakers = Breakers(1, 10.0, 60.0)
    state = admission(cap=1, breakers=breakers)
    state.lease(work("full", 1 + PARKED_PER_SLOT))
    state.dispatch(0.0)
    breakers.record("paused", Health.UNHEALTHY, 0.0)
    assert sorted(state.skipped(5.0)) == ["full", "paused"]  # cooling down
    assert state.skipped(10.0) == ["full"]  # half-open, no probe here: a due retry may be its probe


# -- shelves --------------------------------------------------------------------------------------------------------
def test_a_take_that_comes_back_short_forgets_the_shelf_unless_news_came_meanwhile() -> None:
    state = admission()
    state.shelved("h")
    news = state.shelf_news("h")
    state.shelved("h")  # more shelved while the take was on its way
    state.took("h", asked=10, taken=3, news=news)
    assert state.has_shelf("h")
    state.took("h", asked=10, taken=10, news=state.shelf_news("h"))  # a full take: more may wait
    assert state.shelves_known() == ["h"]
    state.took("h", asked=10, taken=3, news=state.shelf_news("h"))
    assert not state.has_shelf("h")


def test_a_drained_backlog_asks_for_a_take_of_its_shelf_once_per_round() -> None:
    state = admission(cap=1)
    state.lease(work("h", 1 + PARKED_PER_SLOT))
    started, _ = state.dispatch(0.0)
    state.shelved("h")
    state.finished(started[0], 0.0)  # 15 parked: more than half
    assert not state.wants_take("h")
    for _ in range(PARKED_PER_SLOT // 2):
        state.finished(state.dispatch(0.0)[0][0], 0.0)
    assert state.wants_take("h") and not state.wants_take("h")  # once
    state.take_round()
    assert state.wants_take("h")


def test_a_backlog_a_claim_skipped_asks_for_a_claim_once_drained_to_half_shelf_or_not() -> None:
    """Its due deliveries (leases released by a restart, retries) were left in the store: nothing else would claim
    them before the next poll, which may be many seconds off."""
    state = admission(cap=1)
    state.lease(work("h", 1 + PARKED_PER_SLOT))
    started, _ = state.dispatch(0.0)
    assert state.skipped(0.0) == ["h"] and not state.has_shelf("h")
    state.finished(started[0], 0.0)  # 15 parked: more than half
    assert not state.wants_take("h")
    for _ in range(PARKED_PER_SLOT // 2):
        state.finished(state.dispatch(0.0)[0][0], 0.0)
    assert state.wants_take("h") and not state.wants_take("h")  # once per skip


def test_only_paused_hooks_shelves_are_kept_at_the_horizon() -> None:
    breakers = Breakers(1, 10.0, 60.0)
    state = admission(breakers=breakers)
    state.shelved("busy")
    state.shelved("dead")
    breakers.record("dead", Health.UNHEALTHY, 0.0)
    assert state.paused_shelves() == ["dead"]


# -- paused hooks ---------------------------------------------------------------------------------------------------
def test_a_pause_hands_back_the_backlog_but_keeps_the_longest_waiter_as_the_probe() -> None:
    state = admission(cap=2)
    first = work("h", 6)
    state.lease(first)
    state.dispatch(0.0)  # h-0 and h-1 in flight, four parked
    assert state.account("h", Health.UNHEALTHY, 1.0) == (None, ())
    change, handed_back = state.account("h", Health.UNHEALTHY, 1.0)
    assert (change, ids(handed_back)) == (Change.OPENED, ["h-3", "h-4", "h-5"])
    assert ids(state.backlog("h")) == ["h-2"]  # the probe
    assert [state.is_leased(f"h-{n}") for n in range(6)] == [True, True, True, False, False, False]
    assert state.hook_room("h") == 0 and state.cooldown_left("h", 4.0) == 7.0


def test_a_cooling_down_hook_with_its_probe_parked_hands_back_what_comes_next() -> None:
    state = admission(cap=1, breakers=Breakers(1, 10.0, 60.0))
    state.lease(work("h", 2))
    started, _ = state.dispatch(0.0)
    assert down(state, started[0], 1.0) == (Change.OPENED, [])  # one parked: it is the probe
    state.lease(work("h", 1, first=2))  # e.g. a due retry claimed meanwhile
    started, handed_back = state.dispatch(2.0)
    assert (started, ids(handed_back), ids(state.backlog("h"))) == ([], ["h-2"], ["h-1"])
    assert not state.is_leased("h-2")


def test_the_end_of_the_cooldown_makes_the_parked_probe_ready_and_one_at_a_time() -> None:
    state = admission(cap=4, breakers=Breakers(1, 10.0, 60.0))
    state.lease(work("h", 6))
    started, _ = state.dispatch(0.0)
    assert down(state, started[0], 1.0)[0] is Change.OPENED
    assert state.probe("h", 5.0) is Probe.NONE  # cooling down
    for job in started[1:]:
        state.finished(job, 2.0)  # the requests sent before the pause come back
    assert state.cooldown_left("h", 11.0) == 0.0
    assert state.probe("h", 11.0) is Probe.READY
    probe, _ = state.dispatch(11.0)
    assert ids(probe) == ["h-4"] and state.probe("h", 11.0) is Probe.NONE  # one on its way already


def test_a_half_open_hook_with_nothing_here_takes_its_probe_from_its_shelf_once() -> None:
    state = admission(cap=1, breakers=Breakers(1, 10.0, 60.0))
    state.lease(work("h", 1))
    started, _ = state.dispatch(0.0)
    down(state, started[0], 1.0)
    assert state.probe("h", 11.0) is Probe.FROM_SHELF
    assert state.probe("h", 11.0) is Probe.NONE  # being taken
    state.probe_claimed("h")
    assert state.probe("h", 11.0) is Probe.FROM_SHELF


def test_a_probe_that_said_nothing_asks_for_the_next_one_when_it_finishes() -> None:
    state = admission(cap=1, breakers=Breakers(1, 10.0, 60.0))
    state.lease(work("h", 3))
    started, _ = state.dispatch(0.0)
    down(state, started[0], 1.0)
    state.probe("h", 11.0)
    probe, _ = state.dispatch(11.0)
    assert state.account("h", Health.UNKNOWN, 12.0) == (None, ())  # a 429: no news of the endpoint
    assert state.finished(probe[0], 12.0) is Probe.FROM_SHELF  # nothing parked here any more: from the shelf


def test_a_resume_makes_the_backlog_ready_up_to_the_cap_first_in_line() -> None:
    state = admission(cap=2, breakers=Breakers(1, 10.0, 60.0))
    state.lease(work("h", 2))
    started, _ = state.dispatch(0.0)
    down(state, started[0], 1.0)
    state.finished(started[1], 1.0)
    state.lease(work("h", 4, first=2))  # claimed while half-open: one parks as the probe, one starts
    probe, _ = state.dispatch(11.0)
    assert ids(probe) == ["h-2"] and ids(state.backlog("h")) == ["h-3", "h-4", "h-5"]
    state.lease(work("other", 1))
    change, handed_back = state.account("h", Health.HEALTHY, 12.0)
    assert (change, handed_back) == (Change.CLOSED, ())
    state.finished(probe[0], 12.0)
    started, _ = state.dispatch(12.0)
    # The backlog first, up to the cap of 2 (the resume made two ready, the probe's slot one more: it parks).
    assert sorted(ids(started)) == ["h-3", "h-5", "other-0"] and ids(state.backlog("h")) == ["h-4"]
    assert state.cooldown_left("h", 12.0) is None


# -- ordered hooks: one delivery per (hook, call) at a time, in event order ----------------------------------------
def ordered(hook_id: str, domain: str = "d.example") -> Hook:
    key = (hook_id + ":ordered", domain)
    if key not in HOOKS:
        doc = {"event": "DTMF", "enable": True, "order": "call", "action": {"url": "http://x/"}}
        HOOKS[key] = Hook.compile(hook_id, domain, doc)
    return HOOKS[key]


def event(hook_id: str, call: str, ts: int | None, seq: int | None = None, name: str = "") -> Work:
    return Work(name or f"{call}@{ts}", ordered(hook_id), call, ts, seq)


def started_now(state: Admission[Work], now: float = 0.0) -> list[str]:
    return ids(state.dispatch(now)[0])


def settle(state: Admission[Work], job: Work) -> None:
    """Its attempt finished and its result (not a retry) was recorded."""
    state.finished(job, 0.0)
    state.settled(job.delivery_id)
    state.forget([job.delivery_id])


def test_one_delivery_per_call_at_a_time_in_event_order_whatever_order_they_were_leased_in() -> None:
    state = admission(cap=10)
    state.lease([event("h", "c1", 3), event("h", "c1", 1), event("h", "c1", 2)])
    first = state.dispatch(0.0)[0]
    assert ids(first) == ["c1@1"]  # the oldest by Event-Date-Timestamp, though leased second
    assert ids(state.held("h", "c1")) == ["c1@2", "c1@3"]
    assert state.dispatch(0.0)[0] == []  # the hook has nine free slots: the call's others still wait
    settle(state, first[0])  # delivered, and recorded
    second = state.dispatch(0.0)[0]
    assert ids(second) == ["c1@2"]
    settle(state, second[0])
    assert started_now(state) == ["c1@3"]


def test_event_sequence_then_acceptance_break_ties_of_the_timestamp() -> None:
    state = admission(cap=10)
    state.lease(
        [
            event("h", "c", 5, None, "no-seq"),
            event("h", "c", 5, 9, "seq-9"),
            event("h", "c", None, None, "no-ts-a"),
            event("h", "c", 5, 7, "seq-7"),
            event("h", "c", None, None, "no-ts-b"),
        ]
    )
    assert state.call_head("h", "c") == "seq-7"
    assert ids(state.held("h", "c")) == ["seq-9", "no-seq", "no-ts-a", "no-ts-b"]


def test_a_retry_of_the_head_keeps_its_call_waiting_and_comes_back_first() -> None:
    state = admission(cap=10)
    state.lease([event("h", "c", 1), event("h", "c", 2)])
    head = state.dispatch(0.0)[0][0]
    state.finished(head, 0.0)  # to be retried
    state.forget([head.delivery_id])  # recorded as pending: back in the store until its retry is due
    assert state.dispatch(0.0)[0] == []
    assert state.call_head("h", "c") == "c@1"
    state.lease([event("h", "c", 3)])  # a fresh one of the call meanwhile: held too
    state.lease([head])  # its retry claimed: ready at once, ahead of the held ones
    retried = state.dispatch(0.0)[0]
    assert ids(retried) == ["c@1"]
    settle(state, retried[0])
    assert started_now(state) == ["c@2"]


def test_a_late_event_older_than_the_one_in_flight_is_sent_next_never_dropped() -> None:
    state = admission(cap=10)
    state.lease([event("h", "c", 5), event("h", "c", 9)])
    in_flight = state.dispatch(0.0)[0][0]
    state.lease([event("h", "c", 1)])  # older than the one in flight, accepted late
    assert state.dispatch(0.0)[0] == []
    settle(state, in_flight)
    assert started_now(state) == ["c@1"]  # older than c@9: its turn next


def test_a_waiting_call_holds_back_only_itself() -> None:
    state = admission(cap=10)
    state.lease([event("h", "stuck", 1), event("h", "stuck", 2), event("h", "ok", 1), event("h", "ok", 2)])
    started = state.dispatch(0.0)[0]
    assert sorted(ids(started)) == ["ok@1", "stuck@1"]
    stuck = next(job for job in started if job.call_id == "stuck")
    ok = next(job for job in started if job.call_id == "ok")
    state.finished(stuck, 0.0)
    state.forget([stuck.delivery_id])
    settle(state, ok)
    unordered = work("plain", 2)
    state.lease(unordered)
    no_call = Work("no-call", ordered("h"))  # an ordered hook's event without a call: as an unordered one
    state.lease([no_call])
    assert started_now(state) == ["ok@2", "plain-0", "plain-1", "no-call"]
    assert ids(state.held("h", "stuck")) == ["stuck@2"]


def test_an_unordered_hook_sends_a_calls_events_side_by_side() -> None:
    state = admission(cap=10)
    plain = hook("plain")
    state.lease([Work("a", plain, "c", 2), Work("b", plain, "c", 1)])
    assert started_now(state) == ["a", "b"]


def test_held_deliveries_take_their_hooks_room_but_a_claim_still_brings_back_heads() -> None:
    state = admission(cap=1, max_leased=10_000)
    held = [event("h", "c", n) for n in range(PARKED_PER_SLOT)]
    state.lease(held)
    assert state.hook_room(ordered("h").id) == 0  # fresh ones of the hook are shelved: memory stays bounded
    assert state.domain_room("d.example") == 16 * 128 - PARKED_PER_SLOT
    head = state.dispatch(0.0)[0][0]
    state.finished(head, 0.0)
    state.forget([head.delivery_id])
    assert ordered("h").id not in state.skipped(0.0)  # else its head's retry would never be claimed again
    assert "d.example" not in state.skipped_domains()


def test_the_last_of_a_call_settled_leaves_no_line_behind() -> None:
    state = admission(cap=10)
    state.lease([event("h", "c", 1)])
    job = state.dispatch(0.0)[0][0]
    settle(state, job)
    assert state.call_head("h", "c") is None
    state.lease([event("h", "c", 2)])  # a later event of the call: a new line, its head at once
    assert started_now(state) == ["c@2"]


def test_a_head_leaving_for_its_retry_with_nothing_held_takes_its_line_along() -> None:
    state = admission(cap=10)
    state.lease([event("h", "c", 1)])
    head = state.dispatch(0.0)[0][0]
    state.finished(head, 0.0)
    state.forget([head.delivery_id])  # its retry may be claimed by another worker: nothing here waits for it
    assert state.call_head("h", "c") is None
    state.lease([event("h", "c", 2)])  # the call's next, once the store lets it go: not held for a head elsewhere
    assert started_now(state) == ["c@2"]


def test_a_finished_head_lets_its_call_go_on_only_once_its_result_is_recorded() -> None:
    state = admission(cap=10)
    state.lease([event("h", "c", 1), event("h", "c", 2)])
    head = state.dispatch(0.0)[0][0]
    state.finished(head, 0.0)  # delivered, not yet recorded: a crash now would send it again
    assert state.dispatch(0.0)[0] == []
    assert state.settled(head.delivery_id) is True
    assert started_now(state) == ["c@2"]
    assert state.settled("not-a-head") is False


def test_a_head_without_its_number_is_ready_only_once_numbered_and_a_numbered_one_at_once() -> None:
    state = admission(cap=10)
    fresh = [Work("c@1", ordered("h"), "c", 1, call_seq=None), Work("c@2", ordered("h"), "c", 2, call_seq=None)]
    replayed = Work("r@1", ordered("h"), "r", 1, call_seq=4)  # numbered before: a replay, or another worker's
    state.lease([*fresh, replayed])
    assert started_now(state) == ["r@1"]  # c@1 is its call's turn, but without its X-Call-Sequence yet
    assert ids(state.to_number()) == ["c@1"] and state.to_number() == []  # asked once: the worker numbers it
    fresh[0].call_seq = 1
    state.numbered([fresh[0]])
    head = state.dispatch(0.0)[0]
    assert ids(head) == ["c@1"]
    settle(state, head[0])
    assert started_now(state) == [] and ids(state.to_number()) == ["c@2"]  # the next's turn: numbered first too


def test_a_call_line_that_ends_while_its_hook_has_a_shelf_asks_for_a_take() -> None:
    state = admission(cap=10)
    state.lease([event("h", "c", 1), event("h", "c", 2), event("h", "other", 1)])
    state.shelved("h")  # some of the hook's deliveries wait on its shelf
    first, other = state.dispatch(0.0)[0]
    settle(state, first)
    assert state.shelf_gate_opened is False  # its next was here
    settle(state, state.dispatch(0.0)[0][0])
    assert state.shelf_gate_opened is True  # none left here: the call's later ones may be on the shelf, let through
    state.shelf_gate_opened = False
    state.took("h", 5, 0, state.shelf_news("h"))  # the shelf is empty
    settle(state, other)
    assert state.shelf_gate_opened is False  # no shelf: nothing to take
