#!/usr/bin/env python3
"""Does log1p on count columns help or hurt scikit-learn's detectors on one
split? Each fitted on the benign training rows of `flowhound features`
output, prepared as bench/evaluate.py does (median imputation, one-hot text,
StandardScaler), once as is and once with log1p on the count columns first
(EVALUATION.md, "Is it our log1p?").

    flowhound features TRAIN.csv -o fa.csv -q
    flowhound features TEST.csv -o fb.csv -q
    bench/.venv/bin/python bench/log1p_check.py fa.csv fb.csv [--four] [--yeo-johnson]

--four adds the One-Class SVM and an MLP autoencoder, and the mean of the four
scores (each as its quantile among training scores, as our ensemble does)
with every model on one view, and with LOF and the forest on the linear view
but the SVM and the autoencoder on the log1p one.

--yeo-johnson adds a third view: scikit-learn's PowerTransformer (Yeo-Johnson,
fitted on the benign training rows) on the count columns instead of log1p —
a transform fitted per column rather than one fixed curve for all."""

import sys

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import PowerTransformer
from sklearn.svm import OneClassSVM

from evaluate import KEYS, prepare

# Kind::Count features of crates/features (docs/features.md).
PER_FLOW = ["duration_s", "bytes", "packets", "bytes_fwd", "bytes_bwd", "packets_fwd", "packets_bwd",
            "bytes_per_s", "packets_per_s", "bytes_per_packet"]
WINDOWED = ("src_flows", "src_distinct", "src_bytes", "src_new", "dst_flows", "dst_distinct", "dst_packets",
            "dst_bytes", "src_burst")


def report(name, y, s):
    print(f"{name:40s} ROC-AUC {roc_auc_score(y, s):.4f}  PR-AUC {average_precision_score(y, s):.4f}")


def main():
    a, b = (pd.read_csv(p, low_memory=False) for p in sys.argv[1:3])
    four = "--four" in sys.argv[3:]
    yeo = "--yeo-johnson" in sys.argv[3:]
    truth = lambda d: d.malicious.astype(str).str.lower().eq("true").to_numpy()
    ya, yb = truth(a), truth(b)
    counts = [c for c in a.columns if c in PER_FLOW or c.startswith(WINDOWED)]

    def log1p(d):
        d = d.copy()
        d[counts] = np.log1p(d[counts].clip(lower=0))
        return d

    views = {"as is": (a, b), "log1p": (log1p(a), log1p(b))}
    if yeo:
        finite = lambda d: d[counts].astype(float).replace([np.inf, -np.inf], np.nan).fillna(0).clip(lower=0)
        pt = PowerTransformer(method="yeo-johnson", standardize=False).fit(finite(a[~ya]))

        def power(d):
            d = d.copy()
            d[counts] = pt.transform(finite(d))
            return d

        views["yeo-j"] = (power(a), power(b))
    drop = lambda d: d.drop(columns=[k for k in KEYS if k in d.columns])
    scores = {}  # (model, view) -> (training scores, test scores)
    for view, (fa, fb) in views.items():
        xa, xb = (np.asarray(x, dtype=np.float64) for x in prepare(drop(fa)[~ya], drop(fb)))
        rng = np.random.default_rng(42)
        idx = rng.choice(len(xa), min(10000, len(xa)), replace=False)
        for refs in (2048, 10000):
            m = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(xa[idx[:refs]])
            report(f"{view:6s} LOF, {refs:5d} reference rows", yb, -m.score_samples(xb))
            if refs == 2048:
                scores["lof", view] = (-m.score_samples(xa[idx[refs:]] if len(idx) > 2 * refs else xa), -m.score_samples(xb))
        m = IsolationForest(random_state=42).fit(xa)
        scores["iforest", view] = (-m.score_samples(xa), -m.score_samples(xb))
        report(f"{view:6s} IsolationForest", yb, scores["iforest", view][1])
        if not four:
            continue
        m = OneClassSVM(nu=0.05, gamma="scale").fit(xa[idx[:5000]])
        scores["ocsvm", view] = (-m.score_samples(xa[idx[5000:]] if len(idx) > 6000 else xa), -m.score_samples(xb))
        report(f"{view:6s} OneClassSVM", yb, scores["ocsvm", view][1])
        m = MLPRegressor(hidden_layer_sizes=(32, 8, 32), early_stopping=True, max_iter=100, random_state=42)
        m.fit(xa[idx], xa[idx])
        err = lambda x: ((m.predict(x) - x) ** 2).mean(1)
        scores["autoencoder", view] = (err(xa), err(xb))
        report(f"{view:6s} MLP autoencoder", yb, scores["autoencoder", view][1])
    if four:
        quantile = lambda train, test: np.searchsorted(np.sort(train), test, side="right") / len(train)
        for name, views in {
            "mean of four, all as is": dict.fromkeys(["iforest", "lof", "ocsvm", "autoencoder"], "as is"),
            "mean of four, all log1p": dict.fromkeys(["iforest", "lof", "ocsvm", "autoencoder"], "log1p"),
            "mean of four, LOF+IF as is, SVM+AE log1p": {"iforest": "as is", "lof": "as is", "ocsvm": "log1p", "autoencoder": "log1p"},
        }.items():
            report(name, yb, np.mean([quantile(*scores[d, v]) for d, v in views.items()], 0))


if __name__ == "__main__":
    main()
