#!/usr/bin/env python3
"""Times `flowhound inspect` against the readers a Python user has, on the same
generated 1M-line VPC flow log, in one run, and prints the ratios.

    bash bench/setup.sh                      # once: venv with pandas + pyarrow
    cargo build --release
    bench/.venv/bin/python bench/compare_inspect.py [--flows 1000000] [--runs 5]

pandas and pyarrow are timed in-process (their import and interpreter start are
not counted); flowhound is timed as a whole process, start-up and JSON output
included. Each tool runs once to warm the page cache, then --runs times; the
median is reported.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_time(fn, runs):
    fn()  # warm-up: page cache, lazy imports
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
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
                            "--labels", os.devnull, "-q"], check=True)
        size = os.path.getsize(path) / 1e6

        def fh():
            subprocess.run([args.bin, "inspect", path, "--json"], check=True, stdout=subprocess.DEVNULL)

        def pandas():
            assert len(pd.read_csv(path, sep=" ")) == args.flows

        def arrow():
            assert pc.read_csv(path, parse_options=pc.ParseOptions(delimiter=" ")).num_rows == args.flows

        t_fh = median_time(fh, args.runs)
        t_pd = median_time(pandas, args.runs)
        t_pa = median_time(arrow, args.runs)
        results.append((layout, size, t_fh, t_pd, t_pa))

    print(f"\n{'file':<22} {'MB':>6} {'flowhound':>10} {'pandas':>8} {'pyarrow':>8} {'vs pandas':>10} {'vs pyarrow':>11}")
    for layout, size, t_fh, t_pd, t_pa in results:
        print(f"{args.flows} lines {layout:<8} {size:6.0f} {t_fh:9.3f}s {t_pd:7.3f}s {t_pa:7.3f}s {t_pd / t_fh:9.2f}x {t_pa / t_fh:10.2f}x")


if __name__ == "__main__":
    sys.exit(main())
