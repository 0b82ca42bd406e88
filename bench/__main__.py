"""`python -m bench` (`make bench`): run issue 5's scenarios, print the table, write results/latest.json."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import orjson

from bench import report
from bench.receiver import ReceiverProcess
from bench.scenarios import Bench, BenchSkipped, Options, RunResult
from bench.server import DEFAULT_AMQP_URL, DEFAULT_PG_URL

ALL = ("1", "2", "3", "4", "5", "5h", "5a", "5ha", "starve", "calls", "callso", "rss")
ONCE = {"rss"}  # minutes per run and a peak, not a rate: run once whatever --runs says
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="switchhook benchmark: deliveries/s, latency and memory vs the limit.",
    )
    parser.add_argument("--scenarios", default=",".join(ALL), help=f"comma-separated, from {','.join(ALL)}")
    parser.add_argument("--quick", action="store_true", help="a fast smoke: fewer events, 1 run")
    parser.add_argument("--runs", type=int, help="runs per scenario, the median is reported (default 3)")
    parser.add_argument("--events", type=int, help="deliveries per run in scenarios 1-3 (default 20000)")
    parser.add_argument("--concurrency", type=int, default=256, help="the limit client's requests in flight")
    parser.add_argument("--posters", type=int, default=4, help="concurrent event POSTs (batches of 100)")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s per domain in scenarios 4, 5 and 5h")
    parser.add_argument("--duration", type=float, help="seconds of paced load in scenarios 4, 5 and 5h (default 10)")
    parser.add_argument(
        "--starve-duration",
        type=float,
        help="seconds of scenario starve's attack (default 20: 200,000 deliveries)",
    )
    parser.add_argument("--calls", type=int, help="concurrent calls in scenarios calls and callso (default 1000)")
    parser.add_argument("--rss-hooks", type=int, help="hooks stored in the rss scenario (default 10000)")
    parser.add_argument("--rss-events", type=int, help="deliveries left pending in the rss scenario (default 100000)")
    parser.add_argument("--pg-url", default=os.environ.get("SWITCHHOOK_TEST_DATABASE_URL", DEFAULT_PG_URL))
    parser.add_argument("--amqp-url", default=os.environ.get("SWITCHHOOK_TEST_AMQP_URL", DEFAULT_AMQP_URL))
    parser.add_argument(
        "--amqp-mode", default="backlog", choices=("backlog", "live"),
        help="scenario 3: fill the queue, then time the drain (default); or publish while it consumes",
    )  # fmt: skip
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy record the serve process into DIR")
    parser.add_argument("--profile-format", default="flamegraph", choices=("flamegraph", "raw", "speedscope"))
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON results file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL]
    if unknown or not names:
        parser.error(f"unknown scenario {', '.join(unknown) or '(none)'}; choose from {','.join(ALL)}")
    args.names = names
    return args


def options_from(args: argparse.Namespace) -> Options:
    quick = args.quick
    return Options(
        events=args.events or (2_000 if quick else 20_000),
        runs=args.runs or (1 if quick else 3),
        quick=quick,
        concurrency=args.concurrency,
        posters=args.posters,
        rate_events_s=args.rate,
        duration_s=args.duration or (3.0 if quick else 10.0),
        starve_duration_s=args.starve_duration or (3.0 if quick else 20.0),
        rss_hooks=args.rss_hooks or (1_000 if quick else 10_000),
        rss_events=args.rss_events or (10_000 if quick else 100_000),
        rss_domains=10 if quick else 100,
        calls=args.calls or (200 if quick else 1_000),
        pg_url=args.pg_url,
        amqp_url=args.amqp_url,
        amqp_mode=args.amqp_mode,
        profile_dir=args.profile,
        profile_format=args.profile_format,
    )


#: Compared with each other (5's target is relative to 4's p99): their runs alternate, 4 5 5h 4 5 5h ..., so each
#: round sees the same machine. Run one after the other, a slow spell of a shared 2-core host lands on one
#: scenario's runs and reads as a difference between scenarios.
#: calls and callso likewise (the ordered hook's figure is read against the unordered one's).
PAIRED = ("4", "5", "5h", "5a", "5ha")
PAIRED_GROUPS = (PAIRED, ("calls", "callso"))


def schedule(names: list[str], runs: int) -> list[tuple[str, int, int]]:
    """(scenario, run, runs of that scenario) in the order they run."""
    order: list[tuple[str, int, int]] = []
    groups = [[n for n in names if n in group] for group in PAIRED_GROUPS]
    for name in names:
        paired = next((group for group in groups if name in group), None)
        if paired is not None:
            if name == paired[0]:
                order += [(n, run, runs) for run in range(1, runs + 1) for n in paired]
            continue
        count = 1 if name in ONCE else runs
        order += [(name, run, count) for run in range(1, count + 1)]
    return order


async def run_all(bench: Bench, names: list[str]) -> dict[str, dict[str, Any]]:
    results: dict[str, list[RunResult]] = {name: [] for name in names}
    errors: dict[str, str | None] = dict.fromkeys(names)
    skipped: dict[str, str] = {}
    for name, run, count in schedule(names, bench.options.runs):
        if errors[name] is not None or name in skipped:
            continue  # a failed scenario's figures are meaningless: do not run it again
        print(f"== scenario {report.TITLES[name]}: run {run}/{count}", flush=True)
        started = time.monotonic()
        try:
            result = await getattr(bench, f"scenario_{name}")(run)
        except BenchSkipped as exc:
            skipped[name] = str(exc)
            print(f"--- scenario {name} skipped: {exc}", flush=True)
            continue
        except Exception as exc:
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"
            print(f"!!! scenario {name} run {run} failed: {errors[name]}", flush=True)
            continue
        results[name].append(result)
        print(f"   {_one_line(result)} ({time.monotonic() - started:.0f} s)", flush=True)
    summaries = {name: report.summarise(name, results[name], errors[name]) for name in names}
    for name, why in skipped.items():
        summaries[name]["skipped"] = why
    return summaries


def _one_line(result: RunResult) -> str:
    parts = []
    for key in ("deliveries_s", "limit_s", "p50_ms", "p95_ms", "p99_ms", "peak_rss_mb"):
        value = getattr(result, key)
        if value is not None:
            parts.append(f"{key}={value:,.1f}")
    if result.extra.get("cpu_us_per_delivery") is not None:
        parts.append(f"cpu_us/delivery={result.extra['cpu_us_per_delivery']:,.0f}")
    if "deliveries_pending" in result.extra:
        parts.append(f"hooks={result.extra['hooks']} pending={result.extra['deliveries_pending']}")
    else:
        parts.append(f"received={result.received}/{result.expected}")
    if "violations" in result.extra:
        parts.append(f"calls={result.extra['calls']} violations={result.extra['violations']}")
    if "neighbour_received" in result.extra:
        parts.append(f"A received={result.extra['neighbour_received']}/{result.extra['neighbour_expected']}")
    if result.lost:
        parts.append(f"LOST={result.lost}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = options_from(args)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)  # as `switchhook serve` runs
    except ImportError:  # pragma: no cover - uvloop is a switchhook dependency
        runner = asyncio.Runner()
    receiver = ReceiverProcess()
    receiver.start()
    try:
        with runner:
            summaries = runner.run(run_all(Bench(options, receiver), args.names))
    except KeyboardInterrupt:
        print("\ninterrupted; what the bench started has been stopped and removed", flush=True)
        return 130
    finally:
        receiver.stop()

    checks = report.targets(summaries, options.quick)
    document = {
        "machine": report.machine_info(),
        "settings": {
            "quick": options.quick, "runs": options.runs, "events": options.events,
            "limit_concurrency": options.concurrency, "batch": options.batch, "posters": options.posters,
            "rate_events_s": options.rate_events_s, "paced_batch": options.paced_batch,
            "duration_s": options.duration_s, "fan_out": options.fan_out, "rss_hooks": options.rss_hooks,
            "rss_events": options.rss_events, "rss_domains": options.rss_domains,
            "amqp_mode": options.amqp_mode, "calls": options.calls,
        },
        "scenarios": summaries,
        "targets": checks,
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")

    print()
    print(report.table(summaries))
    print()
    print("issue 5 targets:")
    print(report.targets_text(checks))
    print(f"\nwritten to {args.output}")
    failed = any(s["error"] or s["median"]["lost"] for s in summaries.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
