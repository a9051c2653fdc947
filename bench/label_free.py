#!/usr/bin/env python3
"""Can the four detectors be combined without labels so that the ensemble is never
worse than scikit-learn's best single detector (issue 26, part 1)? On the
development settings of bench/operating_point.py (UNSW-NB15, CIC-IDS2017, IoT-23
Mirai capture 44-1; train --benign-only, detect --all, every call --sort-time):

  - ROC-AUC / PR-AUC of each of our detectors' raw scores, of the ensemble
    `score`, and of scikit-learn's four (bench/evaluate.py's preparation);
  - every mean of two or three calibrated scores (and of their test-set ranks),
    and agreement weights (each detector's correlation with the mean of the
    others on the scored data, as is and to the 4th power);
  - an internal criterion without labels: each scikit-learn detector's ROC-AUC at
    telling held-out benign training rows from the same rows with 10 % / 30 %
    of their columns swapped with other rows' (synthetic anomalies). A good
    criterion ranks the detectors as the true ROC-AUC does.

    bash bench/setup.sh && cargo build --release -p flowhound
    bench/.venv/bin/python bench/label_free.py [--only UNSW] [--seed 42]
"""

import itertools
import json
import os
import sys
import tempfile

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import operating_point as op  # noqa: E402  (appends --sort-time to every read)
from combine_rules import NAMES, calibrated  # noqa: E402
from evaluate import features, fh, prepare, sample, sklearn_scores  # noqa: E402


def auc(y, s):
    return f"{roc_auc_score(y, s):.4f} / {average_precision_score(y, s):.4f}"


def corrupt(x, frac, rng):
    z = x.copy()
    n, d = z.shape
    for i in range(n):
        cols = rng.choice(d, max(1, int(frac * d)), replace=False)
        z[i, cols] = x[rng.integers(0, n, len(cols)), cols]
    return z


def main():
    a = op.arguments().parse_args()
    seed = int(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        for name, train, test in op.settings(a.datasets, tmp):
            if name == "Zeek" or (a.only and a.only not in name):
                continue
            model, scored = os.path.join(tmp, "model"), os.path.join(tmp, "scored.jsonl")
            fh(a.flowhound, "train", *train, "-m", model, "--benign-only", "--sort-time", "--seed", a.seed, "-q")
            fh(a.flowhound, "detect", "-m", model, *test, "--all", "-q", "--sort-time", "-o", scored)
            cal = json.load(open(os.path.join(model, "calibration.json")))
            rows = [json.loads(l) for l in open(scored)]
            y = np.array([r["label"] != "benign" for r in rows])
            raw = np.column_stack([[r["models"][n]["score"] for r in rows] for n in NAMES]).astype(np.float64)
            m = np.column_stack([calibrated(cal[n], raw[:, j]) for j, n in enumerate(NAMES)])
            print(f"## {name}: {len(y)} test rows, {int(y.sum())} attacks")
            for j, n in enumerate(NAMES):
                print(f"  ours {n:<24} {auc(y, raw[:, j])}")
            print(f"  ours ensemble score          {auc(y, np.array([r['score'] for r in rows]))}")
            fa, ya, _ = features(a.flowhound, train, os.path.join(tmp, "fa.csv"))
            fb, yb, _ = features(a.flowhound, test, os.path.join(tmp, "fb.csv"))
            xa, xb = prepare(fa[~ya], fb)
            sk, _ = sklearn_scores(xa, xb, seed)
            for k, s in sk.items():
                print(f"  sklearn {k:<21} {auc(yb, s)}")
            r = np.column_stack([rankdata(m[:, j]) for j in range(4)])
            for sub in itertools.chain.from_iterable(itertools.combinations(range(4), k) for k in (2, 3)):
                label = "+".join(NAMES[j] for j in sub)
                print(f"  mean {label:<34} {auc(y, m[:, sub].mean(1))}   ranks {auc(y, r[:, sub].mean(1))}")
            w = np.array([max(0.0, np.corrcoef(r[:, j], np.delete(r, j, 1).mean(1))[0, 1]) for j in range(4)])
            print(f"  agreement weights {w.round(3).tolist()} {auc(y, (m * w).sum(1))}; to the 4th {auc(y, (m * w**4).sum(1))}")
            rng = np.random.default_rng(seed)
            idx = rng.permutation(len(xa))
            cut = int(0.8 * len(xa))
            held = sample(xa[idx[cut:]], 5000, seed)
            for frac in (0.1, 0.3):
                z = np.vstack([held, corrupt(held, frac, rng)])
                yz = np.r_[np.zeros(len(held)), np.ones(len(held))]
                crit, _ = sklearn_scores(xa[idx[:cut]], z, seed)
                print(f"  swapped-columns criterion ({frac:.0%}): " + ", ".join(f"{k} {roc_auc_score(yz, s):.3f}" for k, s in crit.items()))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
