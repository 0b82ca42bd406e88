"""Summarise `bench/ab.sh`: per scenario, the medians of the base build's runs beside this build's."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

FIGURES = (("ratio", "ratio"), ("deliveries_s", "deliv/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"))


def _runs(folder: Path, build: str, rounds: int) -> dict[str, list[dict[str, float]]]:
    by_scenario: dict[str, list[dict[str, float]]] = {}
    for round_ in range(1, rounds + 1):
        path = folder / f"ab-{build}-{round_}.json"
        if not path.exists():
            continue
        for name, scenario in json.loads(path.read_text())["scenarios"].items():
            figures = dict(scenario["median"])
            runs = scenario.get("runs") or [{}]
            figures["cpu_us"] = runs[0].get("extra", {}).get("cpu_us_per_delivery")
            by_scenario.setdefault(name, []).append(figures)
    return by_scenario


def _median(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    value = statistics.median(present)
    return f"{value:.3f}" if value < 10 else f"{value:,.1f}"


def main(folder: Path, rounds: int) -> None:
    base, this = _runs(folder, "base", rounds), _runs(folder, "this", rounds)
    columns = [*FIGURES, ("cpu_us", "CPU µs/delivery")]
    print("scenario  build  " + "  ".join(label for _, label in columns) + "  (medians of runs; lost in any run)")
    for name in sorted(set(base) | set(this)):
        for build, runs in (("base", base.get(name, [])), ("this", this.get(name, []))):
            cells = [_median([run.get(key) for run in runs]) for key, _ in columns]
            lost = sum(int(run.get("lost") or 0) for run in runs)
            print(f"{name:<9} {build:<6} " + "  ".join(cells) + f"  lost={lost}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3)
