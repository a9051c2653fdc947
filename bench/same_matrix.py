#!/usr/bin/env python3
"""One of flowhound's detectors and scikit-learn's counterpart on *identical*
input: the benign training rows and the test rows of `flowhound features`,
prepared as bench/evaluate.py does, written as plain matrices and fitted by
both, over several seeds. Tells a gap in the detector apart from a gap in the
features or the preprocessing (EVALUATION.md).

    flowhound features TRAIN.csv -o fa.csv -q
    flowhound features TEST.csv -o fb.csv -q
    cargo build --release -p flowhound-detect --example score_matrix
    bench/.venv/bin/python bench/same_matrix.py iforest|lof|ocsvm fa.csv fb.csv [--seeds 42,1,2,3,4]"""

import argparse
import os
import subprocess
import tempfile

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.svm import OneClassSVM

from ann_check import load
from evaluate import ROOT, prepare, sample

THEIRS = {
    "iforest": lambda x, seed: IsolationForest(random_state=seed).fit(x),
    "lof": lambda x, seed: LocalOutlierFactor(n_neighbors=20, novelty=True).fit(sample(x, 10000, seed)),
    "ocsvm": lambda x, seed: OneClassSVM(nu=0.05, gamma="scale").fit(sample(x, 10000, seed)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("detector", choices=sorted(THEIRS))
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--seeds", default="42,1,2,3,4")
    ap.add_argument("--score-matrix", default=os.path.join(ROOT, "target", "release", "examples", "score_matrix"))
    a = ap.parse_args()
    (fa, ya), (fb, yb) = load(a.train), load(a.test)
    xa, xb = prepare(fa[~ya], fb)
    rows = {"flowhound": [], "scikit-learn": []}
    with tempfile.TemporaryDirectory() as tmp:
        pa, pb, out = (os.path.join(tmp, n) for n in ("a.csv", "b.csv", "scores.txt"))
        np.savetxt(pa, xa, delimiter=",", fmt="%.7g")
        np.savetxt(pb, xb, delimiter=",", fmt="%.7g")
        for seed in (int(s) for s in a.seeds.split(",")):
            subprocess.run([a.score_matrix, a.detector, pa, pb, out, str(seed)], check=True, capture_output=True)
            ours, theirs = np.loadtxt(out), -THEIRS[a.detector](xa, seed).score_samples(xb)
            for who, s in (("flowhound", ours), ("scikit-learn", theirs)):
                rows[who].append((roc_auc_score(yb, s), average_precision_score(yb, s)))
            print(f"seed {seed:3d}: flowhound ROC-AUC {rows['flowhound'][-1][0]:.3f} PR-AUC {rows['flowhound'][-1][1]:.3f}"
                  f" | scikit-learn ROC-AUC {rows['scikit-learn'][-1][0]:.3f} PR-AUC {rows['scikit-learn'][-1][1]:.3f}", flush=True)
    for who, r in rows.items():
        roc, pr = np.mean(r, 0)
        print(f"mean  {who:12s} ROC-AUC {roc:.3f} PR-AUC {pr:.3f}")


if __name__ == "__main__":
    main()
