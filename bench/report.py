"""Owns the bench output: medians of the runs, the summary table, the issue's targets, and the JSON file."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench.scenarios import RunResult

TITLES = {
    "1": "1 SQLite, 1 hook/event",
    "2": "2 SQLite, 10 hooks/event",
    "3": "3 PostgreSQL + RabbitMQ",
    "4": "4 latency @ fixed rate",
    "5": "5 isolation (B beside dead A)",
    "5h": "5h control (B beside healthy A)",
    "5a": "5a = 5 with alert subscribers",
    "5ha": "5ha = 5h with alert subscribers",
    "starve": "starve: B beside A's 10 dead hooks",
    "calls": "calls: 3 events/call, unordered hook",
    "callso": "callso: the same, ordered hook",
    "rss": "rss: many hooks, deliveries pending",
}
FIGURES = ("deliveries_s", "limit_s", "p50_ms", "p95_ms", "p99_ms", "peak_rss_mb")


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(name: str, runs: list[RunResult], error: str | None) -> dict[str, Any]:
    """Medians of each figure over the runs; `ratio` is median(switchhook) / median(limit)."""
    median: dict[str, Any] = {key: _median([getattr(r, key) for r in runs]) for key in FIGURES}
    switchhook, limit = median["deliveries_s"], median["limit_s"]
    median["ratio"] = switchhook / limit if switchhook and limit else None
    median["lost"] = sum(r.lost for r in runs)
    median["duplicates"] = sum(r.duplicates for r in runs)
    if any("violations" in r.extra for r in runs):  # scenarios calls, callso: per-call overlaps + out of order
        median["violations"] = sum(int(r.extra.get("violations", 0)) for r in runs)
    return {
        "title": TITLES[name], "median": median, "error": error,
        "runs": [dataclasses.asdict(r) for r in runs],
    }  # fmt: skip


def targets(scenarios: dict[str, dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    """Issue 5's figures against what this run measured (only for the scenarios that ran)."""
    checks: list[dict[str, Any]] = []

    def check(scenario: str, what: str, value: float | None, ok: bool | None) -> None:
        checks.append({"scenario": scenario, "target": what, "value": value, "met": ok})

    def info(scenario: str, what: str, value: float | None) -> None:
        """Not one of the issue's targets: a figure to read beside them."""
        checks.append({"scenario": scenario, "target": what, "value": value, "met": None, "info": True})

    def m(name: str, key: str) -> Any:
        return scenarios[name]["median"].get(key) if name in scenarios else None

    if "1" in scenarios:
        ratio, rate = m("1", "ratio"), m("1", "deliveries_s")
        check("1", "ratio >= 0.6", ratio, ratio is not None and ratio >= 0.6)
        check("1", "deliveries/s >= 2000", rate, rate is not None and rate >= 2000)
    if "2" in scenarios:
        ratio = m("2", "ratio")
        check("2", "ratio >= 0.6", ratio, ratio is not None and ratio >= 0.6)
    if "3" in scenarios:
        rate = m("3", "deliveries_s")
        check("3", "deliveries/s >= 1500", rate, rate is not None and rate >= 1500)
    if "4" in scenarios:
        p99, p50 = m("4", "p99_ms"), m("4", "p50_ms")
        check("4", "p99 < 50 ms", p99, p99 is not None and p99 < 50)
        check("4", "p50 < 10 ms", p50, p50 is not None and p50 < 10)
    if "5" in scenarios:
        p99_b, p99_4 = m("5", "p99_ms"), m("4", "p99_ms")
        within = p99_b is not None and p99_4 is not None and p99_b <= 1.1 * p99_4
        check("5", "B p99 <= 1.1 x scenario 4 p99", p99_b, within if p99_4 is not None else None)
    if "starve" in scenarios:
        p99 = m("starve", "p99_ms")
        check("starve", "B p99 < 1000 ms (issue 13)", p99, p99 is not None and p99 < 1000)
    if "5" in scenarios and "5h" in scenarios:
        p99_dead, p99_live, p99_4 = m("5", "p99_ms"), m("5h", "p99_ms"), m("4", "p99_ms")
        ratio = p99_dead / p99_live if p99_dead and p99_live else None
        alone = f", alone (4) {_cell(p99_4, 1)} ms" if p99_4 is not None else ""
        info(
            "5 vs 5h",
            f"B p99 beside dead A (5) {_cell(p99_dead, 1)} ms, beside healthy A (5h) {_cell(p99_live, 1)} ms"
            f"{alone}; 5/5h ratio (> 1: the dead endpoint costs B more than the doubled load)",
            ratio,
        )
    if "callso" in scenarios:
        ordered, unordered = m("callso", "deliveries_s"), m("calls", "deliveries_s")
        ran = not scenarios["callso"].get("skipped") and ordered is not None
        violations = m("callso", "violations")
        check("callso", "ordered hook: 0 per-call violations", violations, violations == 0 if ran else None)
        share = ordered / unordered if ordered and unordered else None
        check("callso", "ordered deliveries/s >= 0.5 x unordered (calls)", share, share >= 0.5 if share else None)
    if "calls" in scenarios and m("calls", "violations") is not None:
        info("calls", "unordered hook: per-call overlaps + out of order (allowed)", m("calls", "violations"))
    if "rss" in scenarios:
        peak = m("rss", "peak_rss_mb")
        note = " (quick: scaled down)" if quick else ""
        check("rss", "peak RSS < 300 MB" + note, peak, peak is not None and peak < 300)
    lost = sum(s["median"]["lost"] for s in scenarios.values())
    check("all", "nothing lost", lost, lost == 0 and not any(s["error"] for s in scenarios.values()))
    return checks


def _cell(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(scenarios: dict[str, dict[str, Any]]) -> str:
    header = ("scenario", "deliv/s", "limit/s", "ratio", "p50 ms", "p95 ms", "p99 ms", "peak RSS MB", "lost")
    rows = [header]
    for summary in scenarios.values():
        m = summary["median"]
        flag = " [FAILED]" if summary["error"] else " [skipped]" if summary.get("skipped") else ""
        rows.append((
            summary["title"] + flag, _cell(m["deliveries_s"]),
            _cell(m["limit_s"]), _cell(m["ratio"], 2), _cell(m["p50_ms"], 1), _cell(m["p95_ms"], 1),
            _cell(m["p99_ms"], 1), _cell(m["peak_rss_mb"], 1),
            _cell(m["lost"]) + (f" (+{m['duplicates']} dup)" if m["duplicates"] else ""),
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(widths[i]) for i, cell in enumerate(row) if i]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def targets_text(checks: list[dict[str, Any]]) -> str:
    lines = []
    for c in checks:
        verdict = "info" if c.get("info") else {True: "met", False: "NOT MET", None: "n/a"}[c["met"]]
        lines.append(f"  [{verdict:>7}] scenario {c['scenario']}: {c['target']} (measured {_cell(c['value'], 2)})")
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    import aiohttp

    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "aiohttp": aiohttp.__version__,
        "load_average": os.getloadavg(),
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False,
            cwd=Path(__file__).resolve().parent,
        )  # fmt: skip
    except OSError:
        return None
    return out.stdout.strip() or None
