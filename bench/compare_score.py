#!/usr/bin/env python3
"""Scoring throughput of scikit-learn's four detectors on the same kind of data
as `cargo bench -p flowhound-detect --bench score` (40 Gaussian blobs, 56
columns; fit on 50,000 rows, score 16,384), for BENCHMARKS.md.

    bench/.venv/bin/python bench/compare_score.py
    bench/.venv/bin/python bench/compare_score.py --flows target/release/flowhound

With --flows, the rows are those of the benchmark's `flows/*` group instead:
216,384 generated VPC flows through `flowhound features`, prepared as a
notebook would (evaluate.py's `prepare`), fit on the first 200,000, score the
last 16,384."""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.neural_network import MLPRegressor
from sklearn.svm import OneClassSVM

rng = np.random.default_rng(1)
d = 56
centers = rng.uniform(-2, 2, (40, d))


def rows(n):
    return centers[rng.integers(0, 40, n)] + rng.uniform(-0.3, 0.3, (n, d))


if "--flows" in sys.argv:
    import pandas as pd

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from evaluate import KEYS, prepare

    binary = sys.argv[sys.argv.index("--flows") + 1]
    with tempfile.TemporaryDirectory() as tmp:
        log, csv = os.path.join(tmp, "flows.log"), os.path.join(tmp, "features.csv")
        subprocess.run([binary, "generate", "-o", log, "--flows", "216384", "--seed", "42", "-q"], check=True)
        subprocess.run([binary, "features", log, "-o", csv, "-q"], check=True)
        df = pd.read_csv(csv, low_memory=False)
    df = df.drop(columns=[k for k in list(KEYS) + ["malicious", "category"] if k in df.columns])
    train, test = prepare(df.iloc[:200_000], df.iloc[200_000:])
    print(f"{len(train)} training rows, {len(test)} scored, {train.shape[1]} columns")
else:
    train, test = rows(50_000), rows(16_384)
models = {
    "IsolationForest": IsolationForest(random_state=1).fit(train),
    "LocalOutlierFactor (novelty, k=20, 10k reference)": LocalOutlierFactor(n_neighbors=20, novelty=True).fit(train[:10_000]),
    "OneClassSVM (nu=0.05, 3k train)": OneClassSVM(nu=0.05, gamma="scale").fit(train[:3_000]),
}
ae = MLPRegressor(hidden_layer_sizes=(32, 8, 32), max_iter=20, random_state=1).fit(train, train)
score = {name: m.score_samples for name, m in models.items()}
score["MLP autoencoder (32-8-32)"] = lambda x: ((ae.predict(x) - x) ** 2).mean(axis=1)
total = 0.0
for name, f in score.items():
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        f(test)
        times.append(time.perf_counter() - t0)
    t = min(times)
    total += t
    print(f"{name:<52} {len(test) / t / 1e3:10.1f} k rows/s")
print(f"{'all four, one after another':<52} {len(test) / total / 1e3:10.1f} k rows/s")
