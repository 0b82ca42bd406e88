"""The bench receiver's per-call check (scenarios calls and callso) and their run order."""

from __future__ import annotations

from bench.__main__ import schedule
from bench.receiver import Calls


def request(call: str | None, sequence: int) -> tuple[bytes, bytes]:
    head = b"post /calls http/1.1\r\nhost: x" + (f"\r\nx-call-id: {call}".encode() if call else b"")
    return head, b'{"id":"m","action":"CHANNEL_CREATE","data":{"Event-Sequence":"%d"}}' % sequence


def test_a_call_in_order_one_at_a_time_breaks_no_rule_and_a_retry_of_the_same_event_neither() -> None:
    calls = Calls(0.0)
    for sequence in (1, 2, 2, 3):  # 2 twice: a retry keeps its event
        calls.answered(calls.arrive(*request("c1", sequence)))
    calls.answered(calls.arrive(*request("c2", 1)))  # another call's, with a lower sequence: not c1's business

    summary = calls.summary()
    assert (summary["overlaps"], summary["out_of_order"], summary["calls"], summary["requests"]) == (0, 0, 2, 5)
    assert (summary["events_per_call_min"], summary["events_per_call_max"]) == (1, 3)


def test_overlaps_and_events_out_of_order_are_counted_per_call() -> None:
    calls = Calls(0.0)
    first = calls.arrive(*request("c1", 2))
    calls.arrive(*request("c1", 1))  # while 2 is unanswered (overlap), and older than 2 (out of order)
    calls.arrive(*request("c2", 1))  # another call in flight beside them: fine
    calls.answered(first)
    calls.arrive(*request(None, 9))  # no X-Call-Id

    summary = calls.summary()
    assert (summary["overlaps"], summary["out_of_order"], summary["without_call"]) == (1, 1, 1)


def test_the_call_scenarios_alternate_like_the_latency_ones() -> None:
    order = [(name, run) for name, run, _ in schedule(["calls", "1", "callso"], 2)]
    assert order == [("calls", 1), ("callso", 1), ("calls", 2), ("callso", 2), ("1", 1), ("1", 2)]
