#!/usr/bin/env bash
# Compare two builds on this host, fairly: the same (this tree's) bench code drives both, PYTHONPATH picks the
# server's source, and the builds alternate run by run so a slow spell of the host falls on both alike.
#   bench/ab.sh BASE_REV [SCENARIOS] [ROUNDS] [THIS_REV]      e.g. bench/ab.sh HEAD~5 1,2,4 3
# THIS_REV defaults to the working tree.
# Results: AB_RESULTS/ab-<base|this>-<round>.json (default: a fresh bench/results/ab-<time>-<pid>/, so two runs
# at once never overwrite each other's files), and a summary table at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bench/ab.sh BASE_REV [SCENARIOS] [ROUNDS]}
scenarios=${2:-1,2,4}
rounds=${3:-3}
this_rev=${4:-}
worktree=$(mktemp -d /tmp/switchhook-ab.XXXXXX)
this_tree=$PWD
if [ -n "$this_rev" ]; then this_tree=$(mktemp -d /tmp/switchhook-ab.XXXXXX); fi
cleanup() {
  git worktree remove --force "$worktree" >/dev/null 2>&1 || rm -rf "$worktree"
  if [ -n "$this_rev" ]; then git worktree remove --force "$this_tree" >/dev/null 2>&1 || rm -rf "$this_tree"; fi
}
trap cleanup EXIT
git worktree add -q --detach "$worktree" "$base"
if [ -n "$this_rev" ]; then git worktree add -q --detach "$this_tree" "$this_rev"; fi
results=${AB_RESULTS:-bench/results/ab-$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$results"
echo "results in $results"
for round in $(seq 1 "$rounds"); do
  for build in base this; do
    src=$this_tree/src; [ "$build" = base ] && src=$worktree/src
    PYTHONPATH=$src .venv/bin/python -m bench --scenarios "$scenarios" --runs 1 \
      --output "$results/ab-$build-$round.json" >/dev/null
    echo "round $round: $build done"
  done
done
.venv/bin/python -m bench.ab "$results" "$rounds"
