#!/usr/bin/env python3
"""Other ways to combine the four detectors' calibrated scores, without labels
(EVALUATION.md, "Other ways to combine the four scores"): replays one
`flowhound detect --all` run, maps each raw score through the model's
calibration.json exactly as `Calibration::calibrated` does, and reports
ROC-AUC / PR-AUC of each rule.

    flowhound train TRAIN... -m MODEL --benign-only --seed 42 -q
    flowhound detect -m MODEL TEST... --all -q -o scored.jsonl
    bench/.venv/bin/python bench/combine_rules.py MODEL scored.jsonl

The EVALUATION.md table used the UNSW-NB15 and IoT-23 splits of bench/evaluate.py."""

import json
import sys

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score

STEPS = 1000  # crates/detect/src/calibrate.rs
NAMES = ["iforest", "lof", "ocsvm", "autoencoder"]


def calibrated(cal, raw):
    q = np.array(cal["quantiles"], dtype=np.float64)
    lo, hi = q[0], q[STEPS]
    out = np.empty_like(raw)
    for i, r in enumerate(raw):
        if np.isnan(r):
            out[i] = 2.0
        elif r <= lo:
            out[i] = 0.0
        elif r > hi:
            spread = max(hi - q[STEPS // 2], abs(hi) * 1e-6, 1e-38)
            out[i] = 2.0 - 1.0 / (1.0 + (r - hi) / spread)
        else:
            k = min(max(np.searchsorted(q, r, side="right") - 1, 0), STEPS - 1)
            a, b = q[k], q[k + 1]
            out[i] = (k + ((r - a) / (b - a) if b > a else 1.0)) / STEPS
    return out


def main():
    model, scored = sys.argv[1], sys.argv[2]
    cal = json.load(open(f"{model}/calibration.json"))
    rows = [json.loads(line) for line in open(scored)]
    y = np.array([r["label"] != "benign" for r in rows])
    m = np.column_stack([calibrated(cal[n], np.array([r["models"][n]["score"] for r in rows], dtype=np.float64)) for n in NAMES])
    ens = np.array([r["score"] for r in rows])
    assert np.allclose(ens, m.mean(1), atol=1e-4), "replayed calibration differs from flowhound's"
    agree = np.array([max(np.corrcoef(m[:, j], np.delete(m, j, 1).mean(1))[0, 1], 0) for j in range(4)])
    rules = {
        "mean (the ensemble)": m.mean(1),
        "median": np.median(m, 1),
        "max": m.max(1),
        "mean without iforest": m[:, 1:].mean(1),
        "mean of the two highest": np.sort(m, 1)[:, 2:].mean(1),
        f"agreement-weighted {agree.round(2).tolist()}": (m * agree).sum(1) / agree.sum(),
        "mean of test-set ranks": np.column_stack([rankdata(m[:, j]) for j in range(4)]).mean(1),
        # Fisher's method on the calibrated scores read as tail probabilities:
        # the share of training rows scoring higher (floored at 0.1 %, and
        # below that beyond the training range).
        "Fisher (sum of -log tail probabilities)": -np.log(
            np.where(m < 1, np.maximum(1 - m, 1e-3), 1e-3 * np.maximum(2 - m, 1e-9))
        ).sum(1),
    }
    for name, s in rules.items():
        print(f"{name:45s} ROC-AUC {roc_auc_score(y, s):.4f}  PR-AUC {average_precision_score(y, s):.4f}")


if __name__ == "__main__":
    main()
