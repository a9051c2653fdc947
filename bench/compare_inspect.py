#!/usr/bin/env python3
"""Times `flowhound inspect` against the readers a Python user has, on the same
generated 1M-line VPC flow log, in one run, and prints the ratios.

    bash bench/setup.sh                      # once: venv with pandas + pyarrow
    cargo build --release
    bench/.venv/bin/python bench/compare_inspect.py [--flows 1000000] [--runs 5]

pandas and pyarrow are timed in-process (their import and interpreter start are
not counted); flowhound is timed as a whole process, start-up and JSON output
included. Each tool runs once to warm the page cache; then the tools take
turns, --runs rounds, so that load changing over time on a shared machine
hits all of them alike. Medians are reported, with the min–max range.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def interleaved(fns, runs):
    """Median, min and max seconds of each function, run in turns."""
    for fn in fns:
        fn()  # warm-up: page cache, lazy imports
    times = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [(statistics.median(t), min(t), max(t)) for t in times]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "flowhound"))
    ap.add_argument("--data", default=os.path.join(ROOT, "bench", "data"))
    args = ap.parse_args()

    import pandas as pd
    import pyarrow
    import pyarrow.csv as pc

    os.makedirs(args.data, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; pandas {pd.__version__}, pyarrow {pyarrow.__version__}")
    results = []
    for layout in ["v2", "extended"]:
        path = os.path.join(args.data, f"flows-{args.flows}-{layout}.log")
        if not os.path.exists(path):
            subprocess.run([args.bin, "generate", "-o", path, "--flows", str(args.flows), "--vpc-layout", layout,
                            "--labels", path + ".labels.csv", "-q"], check=True)
        size = os.path.getsize(path) / 1e6

        def fh():
            subprocess.run([args.bin, "inspect", path, "--json"], check=True, stdout=subprocess.DEVNULL)

        def pandas():
            assert len(pd.read_csv(path, sep=" ")) == args.flows

        def arrow():
            assert pc.read_csv(path, parse_options=pc.ParseOptions(delimiter=" ")).num_rows == args.flows

        results.append((layout, size, interleaved([fh, pandas, arrow], args.runs)))

    print(f"\nmedian of {args.runs} interleaved runs (min–max)")
    print(f"{'file':<22} {'MB':>5}  {'flowhound inspect':>19}  {'pandas read_csv':>19}  {'pyarrow read_csv':>19}  {'vs pandas':>9}  {'vs pyarrow':>10}")
    for layout, size, ((fh, fh0, fh1), (pd_, pd0, pd1), (pa, pa0, pa1)) in results:
        cell = lambda m, lo, hi: f"{m:.3f}s ({lo:.2f}–{hi:.2f})"
        print(f"{args.flows} lines {layout:<8} {size:5.0f}  {cell(fh, fh0, fh1):>19}  {cell(pd_, pd0, pd1):>19}  {cell(pa, pa0, pa1):>19}  {pd_ / fh:8.2f}x  {pa / fh:9.2f}x")


if __name__ == "__main__":
    sys.exit(main())
