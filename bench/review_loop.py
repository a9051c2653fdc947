#!/usr/bin/env python3
"""The analyst loop of issue 26, with ground truth playing the analyst: train
--benign-only on a setting's training part; then `review` picks flows of the
test part, their labels become verdicts, `tune` writes a new model from the
first one and every verdict so far; ROC-AUC and PR-AUC of the ensemble
`score` on the test flows *not* judged, after 0, 10, 25 and 50 verdicts.

    bash bench/setup.sh && cargo build --release -p flowhound
    bench/.venv/bin/python bench/review_loop.py [--only UNSW] [--seed 42]
"""

import json
import os
import sys
import tempfile

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluate import fh  # noqa: E402
from operating_point import arguments, settings  # noqa: E402

STEPS = [0, 10, 25, 50]


def main():
    a = arguments().parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, train, test in settings(a.datasets, tmp):
            if name == "Zeek" or (a.only and a.only not in name):
                continue
            root = os.path.join(tmp, "root")
            fh(a.flowhound, "train", *train, "-m", root, "--benign-only", "--sort-time", "--seed", a.seed, "-q")
            verdicts = os.path.join(tmp, "verdicts.csv")
            judged = {}
            model = root
            out = {"setting": name}
            for n in STEPS:
                if n > len(judged):
                    with open(verdicts, "w") as f:
                        f.write("flow,verdict\n" + "".join(f"{k},{v}\n" for k, v in judged.items()))
                    q = os.path.join(tmp, "queue.jsonl")
                    # Picked by the model as it stands (the last tuned one).
                    fh(a.flowhound, "review", "-m", model, *test, "-n", str(n - len(judged)), "--skip", verdicts,
                       "--sort-time", "-q", "-o", q)
                    for l in open(q):
                        r = json.loads(l)
                        judged[r["flow"]] = "true_positive" if r.get("label") == "malicious" else "false_positive"
                    with open(verdicts, "w") as f:
                        f.write("flow,verdict\n" + "".join(f"{k},{v}\n" for k, v in judged.items()))
                    model = os.path.join(tmp, f"tuned-{n}")
                    fh(a.flowhound, "tune", "-m", root, *test, "--verdicts", verdicts, "-o", model, "--sort-time", "-q")
                scored = os.path.join(tmp, "scored.jsonl")
                fh(a.flowhound, "detect", "-m", model, *test, "--all", "--sort-time", "-q", "-o", scored)
                rows = [json.loads(l) for l in open(scored) if json.loads(l)["flow"] not in judged]
                y = np.array([r.get("label") == "malicious" for r in rows])
                s = np.nan_to_num(np.array([r["score"] for r in rows], dtype=np.float64), nan=np.inf)
                tp = sum(v == "true_positive" for v in judged.values())
                out[str(n)] = {"roc_auc": round(float(roc_auc_score(y, s)), 4), "pr_auc": round(float(average_precision_score(y, s)), 4),
                               "judged_tp": tp, "judged_fp": len(judged) - tp}
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
