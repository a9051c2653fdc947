#!/usr/bin/env bash
# Runs criterion bench binaries in turn, ROUNDS times, and prints each run's
# mean throughput: on a shared machine whose speed drifts, only interleaved
# runs of two builds compare. Build each variant with
#   cargo bench -p CRATE --bench NAME --no-run
# and copy the `target/release/deps/NAME-*` binary it names aside.
#
# usage: bench/interleave.sh ROUNDS FILTER BINARY...
set -euo pipefail
rounds=$1 filter=$2
shift 2
for _ in $(seq "$rounds"); do
  for b in "$@"; do
    "$b" --bench "$filter" --warm-up-time 1 --measurement-time 4 --noplot 2>&1 |
      awk -v b="$(basename "$b")" '/^[a-z_]+\//{n=$1} /thrpt/ && !seen[n]++ {v=$4; if ($5=="Kelem/s") v=v/1000; print b, n, v}'
  done
done | sort -k2,2 -k1,1 -s | awk '{k=$1" "$2; if (!(k in a)) o[++m]=k; a[k]=a[k]" "$3} END{for (i=1;i<=m;i++) print o[i] ":" a[o[i]]}'
