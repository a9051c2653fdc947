#!/usr/bin/env python3
"""Scoring throughput of scikit-learn's four detectors on the same kind of data
as `cargo bench -p flowhound-detect --bench score` (40 Gaussian blobs, 56
columns; fit on 50,000 rows, score 16,384), for BENCHMARKS.md.

    bench/.venv/bin/python bench/compare_score.py"""
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
