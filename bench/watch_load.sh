#!/usr/bin/env bash
# Load on watch's NetFlow collector, loopback only: the netflow_load example sends NetFlow v5 at a
# fixed rate for a fixed time; watch's metrics give what arrived, what was dropped or lost, the
# latency histogram, and /proc its peak memory.
#   bench/watch_load.sh RATE SECONDS [MODEL_DIR]
# FLOWHOUND_BIN=PATH runs another flowhound binary (to compare builds in one session).
# Needs: cargo build --release -p flowhound --bin flowhound --example netflow_load
set -euo pipefail
rate=${1:?flows per second}; secs=${2:?seconds}; model=${3:-/tmp/fh-load/model}
root=$(cd "$(dirname "$0")/.." && pwd); bin=${FLOWHOUND_BIN:-$root/target/release/flowhound}; load=$root/target/release/examples/netflow_load
work=/tmp/fh-load; mkdir -p "$work"
# The model learns the hour of day of its 30-odd seconds of training traffic, and the load is
# re-timed to now: a default model older than 5 minutes flags nearly every flow ("unusual
# hour_sin"), which measures explanation output, not detection. So it is trained again.
if [ -z "${3:-}" ] && [ -n "$(find "$model/manifest.json" -mmin +5 2>/dev/null)" ]; then rm -rf "$model"; fi
if [ ! -f "$model/manifest.json" ]; then
  # Trained on traffic of the load's own shape, as NetFlow v5 carries it (see the example's
  # docs), over as long as the load runs: the per-host windows (60 s, 1 h) fill as they will.
  "$load" - "$rate" "$secs" "$work/train.jsonl"
  "$bin" train "$work/train.jsonl" -m "$model" --seed 1 -q
fi
port=$((20000 + RANDOM % 20000)); mport=$((port + 1))
rm -rf "$work/state" "$work/out.jsonl"
"$bin" watch -m "$model" --source "netflow:127.0.0.1:$port" --metrics "127.0.0.1:$mport" --state-dir "$work/state" \
  -o "$work/out.jsonl" --status 0s -q &
pid=$!
sleep 2
"$load" "127.0.0.1:$port" "$rate" "$secs"
sleep 3
curl -s "127.0.0.1:$mport/metrics" > "$work/metrics.txt"
hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
kill -TERM $pid; wait $pid || true
python3 - "$work/metrics.txt" "$hwm" "$secs" <<'PY'
import sys, re
text = open(sys.argv[1]).read(); hwm_kb = int(sys.argv[2]); secs = float(sys.argv[3])
def val(name):
    m = re.search(r'^' + re.escape(name) + r'(\{[^}]*\})? (\S+)$', text, re.M)
    return float(m.group(2)) if m else 0.0
buckets = [(float('inf') if le == '+Inf' else float(le), float(v)) for le, v in re.findall(r'flowhound_latency_seconds_bucket\{le="([^"]+)"\} (\S+)', text)]
total = buckets[-1][1] if buckets else 0
def q(p):
    for le, c in buckets:
        if total and c >= p * total: return le
rec, scored = val('flowhound_flows_received_total'), val('flowhound_flows_scored_total')
print(f"received {rec:.0f}, scored {scored:.0f} ({scored/secs:.0f}/s over the send time), dropped {val('flowhound_flows_dropped_total'):.0f}, "
      f"lost {val('flowhound_flows_lost_total'):.0f}, latency p50 <= {q(0.5)} s, p99 <= {q(0.99)} s, peak RSS {hwm_kb/1024:.0f} MiB")
PY
