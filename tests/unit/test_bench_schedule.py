"""The benchmark's run order: scenarios compared with each other alternate, the rest run one after another."""

from __future__ import annotations

from bench.__main__ import schedule


def test_latency_scenarios_alternate_and_the_rest_run_in_turn() -> None:
    order = [(name, run) for name, run, _ in schedule(["1", "4", "5", "5h", "rss"], 2)]
    assert order == [("1", 1), ("1", 2), ("4", 1), ("5", 1), ("5h", 1), ("4", 2), ("5", 2), ("5h", 2), ("rss", 1)]


def test_a_paired_scenario_alone_runs_like_any_other() -> None:
    assert schedule(["5", "2"], 2) == [("5", 1, 2), ("5", 2, 2), ("2", 1, 2), ("2", 2, 2)]
