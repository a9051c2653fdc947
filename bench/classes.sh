#!/usr/bin/env bash
# Threat classes on generated traffic and the shared datasets: which class
# `flowhound detect` gives the malicious flows of each ground-truth category
# (the confusion table of its summary), and the incidents of the zeek-conn
# scanner. Models are trained on benign flows only (--benign-only); the
# question is the class of what gets flagged, not detection quality.
#
#   bench/classes.sh [OUT_DIR]      (needs ../shared/datasets or FLOWHOUND_DATASETS)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fh="$here/target/release/flowhound"
data=${FLOWHOUND_DATASETS:-$here/../shared/datasets}
out=${1:-/tmp/flowhound-classes}
mkdir -p "$out"
[ -x "$fh" ] || (cd "$here" && cargo build --release -q)

echo "== generated traffic (train day 1, detect day 2, seed 42)"
"$fh" generate -o "$out/train.log" --flows 60000 --start 2026-11-02T00:00:00Z
"$fh" generate -o "$out/detect.log" --flows 40000 --start 2026-11-03T00:00:00Z
"$fh" train "$out/train.log" --labels "$out/train.log.labels.csv" --benign-only -m "$out/gen-model" -q
"$fh" detect -m "$out/gen-model" "$out/detect.log" --labels "$out/detect.log.labels.csv" -o "$out/gen.jsonl" 2>&1 | tee "$out/gen.txt"

# The CIC sample's files and IoT-23's captures are not in one time order
# (files of other days, a benign file in random order): read them sorted.
echo "== CIC-IDS2017 (improved sample)"
"$fh" train "$data"/cic-ids2017-improved-sample/*.csv --sort-time --benign-only -m "$out/cic-model" -q
"$fh" detect -m "$out/cic-model" "$data"/cic-ids2017-improved-sample/*.csv --sort-time -o "$out/cic.jsonl" 2>&1 | tee "$out/cic.txt"

echo "== IoT-23"
"$fh" train "$data"/iot-23/*.csv --sort-time --benign-only -m "$out/iot-model" -q
"$fh" detect -m "$out/iot-model" "$data"/iot-23/*.csv --sort-time -o "$out/iot.jsonl" 2>&1 | tee "$out/iot.txt"

echo "== zeek-conn (no labels): incidents of the scanner 165.154.254.36"
"$fh" train "$data"/zeek-conn/conn.* -m "$out/zeek-model" -q
"$fh" detect -m "$out/zeek-model" "$data"/zeek-conn/conn.* --incidents -o "$out/zeek-incidents.jsonl" 2>&1 | tee "$out/zeek.txt"
grep '"actor":"165.154.254.36"' "$out/zeek-incidents.jsonl" | cut -c1-400 || echo "no incident of 165.154.254.36"

# Issue 29: the classes a pair's history names. IoT-23 capture 8-1 (the
# Mirai bot and its controller) unseen in training; the Internet-facing
# host counted as inside, so its own calls could be beacons.
echo "== IoT-23 capture 8-1, unseen (train: the other captures' benign flows)"
train=$(ls "$data"/iot-23/*.csv | grep -v 'Capture-8-1')
# shellcheck disable=SC2086
"$fh" train $train --sort-time --benign-only -m "$out/iot-no8-model" -q
"$fh" detect -m "$out/iot-no8-model" "$data"/iot-23/CTU-Malware-Capture-8-1-labeled.csv --sort-time -o "$out/iot8.jsonl" 2>&1 | tee "$out/iot8.txt"
"$fh" detect -m "$out/iot-no8-model" "$data"/iot-23/CTU-Malware-Capture-8-1-labeled.csv --sort-time --incidents -q \
  | grep -E '"threat_class":"(beacon|unknown_ip)"' | cut -c1-330

echo "== zeek-conn, the host inside (--internal): beacon, brute-force and long-connection incidents"
"$fh" train "$data"/zeek-conn/conn.* --internal 64.225.56.201/32 -m "$out/zeek-int-model" -q
"$fh" detect -m "$out/zeek-int-model" "$data"/zeek-conn/conn.* --incidents -o "$out/zeek-int.jsonl" 2>&1 | tee "$out/zeek-int.txt"
grep -E '"threat_class":"(beacon|brute_force|long_connection)"' "$out/zeek-int.jsonl" | cut -c1-330 || echo "none"
