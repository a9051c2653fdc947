#!/usr/bin/env bash
# Worker-group throughput on this machine: a loopback nats-server, one
# publish, then N `flowhound worker` processes (--all: every flow's line
# published) pinned round-robin to the cores, timed from their start to the
# last one's idle exit (less the idle time). Prints one line per N, with the
# most halves any worker had waiting for their other half (how far the
# partitions drift apart) and the rows each worker scored.
#   bench/group.sh MODEL LOG "1 2 4"
set -euo pipefail
model=$1 log=$2 counts=${3:-"1 2 4"}
bin=${FLOWHOUND:-target/release/flowhound}
cores=$(nproc)
idle=3
for n in $counts; do
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/js" >/dev/null 2>&1 &
  server=$!
  sleep 0.5
  url="nats://127.0.0.1:$port/B"
  "$bin" publish "$log" --to "$url" --partitions 16 -q
  flows=$(grep -vc '^version' "$log")
  start=$(date +%s.%N)
  pids=()
  for i in $(seq 1 "$n"); do
    taskset -c $(( (i - 1) % cores )) "$bin" worker -m "$model" --nats "$url" --all --idle-exit ${idle}s \
      --status 1s --name "b$i" 2> "$dir/w$i.err" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  end=$(date +%s.%N)
  secs=$(python3 -c "print(round($end - $start - $idle, 2))")
  waiting=$(grep -ho '[0-9]* halves waiting' "$dir"/w*.err | sort -n | tail -1 | cut -d' ' -f1)
  scored=$(for f in "$dir"/w*.err; do grep -o '[0-9]* rows scored (' "$f" | tail -1 | cut -d' ' -f1; done | paste -sd, -)
  echo "workers=$n flows=$flows seconds=$secs flows_per_s=$(python3 -c "print(int($flows / $secs))") peak_halves_waiting=${waiting:-0} rows_scored_per_worker=$scored"
  kill "$server"; wait "$server" 2>/dev/null || true
  rm -rf "$dir"
done
