#!/usr/bin/env python3
"""Does log1p on count columns help or hurt scikit-learn's LOF and Isolation
Forest on one split? Both fitted on the benign training rows of `flowhound
features` output, prepared as bench/evaluate.py does (median imputation,
one-hot text, StandardScaler), once as is and once with log1p on the count
columns first (EVALUATION.md, "What to try next").

    flowhound features TRAIN.csv -o fa.csv -q
    flowhound features TEST.csv -o fb.csv -q
    bench/.venv/bin/python bench/log1p_check.py fa.csv fb.csv"""

import sys

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from evaluate import KEYS, prepare

# Kind::Count features of crates/features (docs/features.md).
PER_FLOW = ["duration_s", "bytes", "packets", "bytes_fwd", "bytes_bwd", "packets_fwd", "packets_bwd",
            "bytes_per_s", "packets_per_s", "bytes_per_packet"]
WINDOWED = ("src_flows", "src_distinct", "src_bytes", "src_new", "dst_flows", "dst_distinct", "dst_packets",
            "dst_bytes", "src_burst")


def main():
    a, b = (pd.read_csv(p, low_memory=False) for p in sys.argv[1:3])
    truth = lambda d: d.malicious.astype(str).str.lower().eq("true").to_numpy()
    ya, yb = truth(a), truth(b)
    counts = [c for c in a.columns if c in PER_FLOW or c.startswith(WINDOWED)]

    def log1p(d):
        d = d.copy()
        d[counts] = np.log1p(d[counts].clip(lower=0))
        return d

    rng = np.random.default_rng(42)
    for name, (fa, fb) in {"as is": (a, b), "log1p": (log1p(a), log1p(b))}.items():
        drop = lambda d: d.drop(columns=[k for k in KEYS if k in d.columns])
        xa, xb = (np.asarray(x) for x in prepare(drop(fa)[~ya], drop(fb)))
        for refs in (2048, 10000):
            idx = rng.choice(len(xa), min(refs, len(xa)), replace=False)
            s = -LocalOutlierFactor(n_neighbors=20, novelty=True).fit(xa[idx]).score_samples(xb)
            print(f"{name:6s} LOF, {refs:5d} reference rows  ROC-AUC {roc_auc_score(yb, s):.4f}  PR-AUC {average_precision_score(yb, s):.4f}")
        s = -IsolationForest(random_state=42).fit(xa).score_samples(xb)
        print(f"{name:6s} IsolationForest            ROC-AUC {roc_auc_score(yb, s):.4f}  PR-AUC {average_precision_score(yb, s):.4f}")


if __name__ == "__main__":
    main()
