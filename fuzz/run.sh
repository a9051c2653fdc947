#!/usr/bin/env bash
# Runs every fuzz target on a copy of its committed seed corpus (fuzz/seeds/TARGET):
#   fuzz/run.sh runs 300000      # each target 300 k executions (CI's smoke run)
#   fuzz/run.sh runs 10000000    # each target 10 M executions (BENCHMARKS.md, "Fuzzing")
#   fuzz/run.sh time 20          # each target 20 s
# A run counted in executions uses a fixed seed, so it is reproducible: CI fails on
# the code, not on the luck of the draw (a 20 s run once passed and then timed out
# on unchanged code).
# Stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs nightly flags). No sanitizer:
# every flowhound crate forbids unsafe code, and without ASan a target runs ~3x as many
# inputs in the same time. Debug assertions and overflow checks are on (cargo fuzz's
# default). A crash fails the run; its input is left in fuzz/artifacts/TARGET/: commit it
# to fuzz/regressions/TARGET/ with the fix (crates/flow/tests/fuzz_regressions.rs replays it).
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
kind=${1:-time}
n=${2:-20}
case $kind in
  time) limit="-max_total_time=$n" ;;
  runs) limit="-runs=$n -seed=1" ;;
  *) echo "usage: $0 time SECONDS | runs N" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo fuzz build -s none
for t in $(cargo fuzz list); do
  mkdir -p "$work/$t"
  cp seeds/"$t"/* "$work/$t/"
  start=$(date +%s)
  if ! cargo fuzz run -s none "$t" "$work/$t" -- $limit -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$work/$t.out" 2>"$work/$t.log"; then
    tail -40 "$work/$t.log"
    echo "fuzz target $t failed: the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz $t: $execs executions in $(($(date +%s) - start)) s, corpus $(ls "$work/$t" | wc -l) inputs"
done
