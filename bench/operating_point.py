#!/usr/bin/env python3
"""What an analyst would see at flowhound's default operating point, on the four
development settings of issue 25 (train --benign-only on one part, detect on an
unseen part, every call with --sort-time):

  UNSW-NB15   part-a, 50/50 row split (seed 42)
  CIC-IDS2017 half the benign rows; test: the other half + every attack file
  IoT-23      train: every benign flow of seven captures; test: the unseen Mirai capture 44-1
  Zeek        train: 00-06 h of one host's conn logs; test: 06-12 h (no labels)

For the labeled settings: benign false-positive rate and attack recall at the
default decision (`anomaly`), and recall at 0.1 % and 1 % benign FPR from the
ensemble `score`. For Zeek: flows flagged, incidents (`detect --incidents`), and
whether the slow scanner 165.154.254.36 is a port_scan incident.

    bash bench/setup.sh && cargo build --release -p flowhound
    bench/.venv/bin/python bench/operating_point.py [--only Zeek] [--seed 42] [--json out.json] [--sklearn] [-- EXTRA TRAIN FLAGS]

--sklearn adds scikit-learn's LocalOutlierFactor (novelty, k = 20, ≤ 10k training rows,
the notebook preparation of bench/evaluate.py) at 0.1 % and 1 % FPR on the labeled settings.
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402
from evaluate import features, fh, prepare, sample  # noqa: E402  (the same split and preparation as EVALUATION.md's tables)

evaluate.READ_FLAGS.append("--sort-time")  # scikit-learn sees the features flowhound's calls see

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOW_SCANNER = "165.154.254.36"


def settings(ds, tmp):
    # UNSW-NB15 and CIC-IDS2017 exactly as EVALUATION.md's first tables split them.
    short = ["UNSW-NB15", "CIC-IDS2017"]
    for name, (_, train, test) in zip(short, evaluate.settings(ds, tmp)):
        yield name, train, test
    iot = os.path.join(ds, "iot-23")
    test = os.path.join(iot, "CTU-Malware-Capture-44-1-labeled.csv")
    train = sorted(os.path.join(iot, f) for f in os.listdir(iot) if f.endswith(".csv") and "44-1" not in f)
    yield "IoT-23", train, [test]
    z = os.path.join(ds, "zeek-conn")
    hours = sorted(f for f in os.listdir(z) if f.startswith("conn.2024-04-19_"))
    yield "Zeek", [os.path.join(z, f) for f in hours[:6]], [os.path.join(z, f) for f in hours[6:12]]


def recall_at(y, s, fpr):
    """Attack recall at the score threshold that flags at most `fpr` of the benign rows."""
    benign = np.sort(s[~y])[::-1]
    k = int(np.floor(fpr * len(benign)))
    t = benign[k] if k < len(benign) else -np.inf
    return float((s[y] > t).mean())


def arguments():
    """The flags every development-setting script takes."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=os.environ.get("FLOWHOUND_DATASETS", os.path.join(ROOT, "..", "shared", "datasets")))
    ap.add_argument("--flowhound", default=os.path.join(ROOT, "target", "release", "flowhound"))
    ap.add_argument("--only")
    ap.add_argument("--seed", default="42")
    return ap


def main():
    ap = arguments()
    ap.add_argument("--json")
    ap.add_argument("--sklearn", action="store_true")
    ap.add_argument("extra", nargs="*", help="extra `train` flags (after --)")
    a = ap.parse_args()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, train, test in settings(a.datasets, tmp):
            if a.only and a.only not in name:
                continue
            model = os.path.join(tmp, "model")
            tr = fh(a.flowhound, "train", *train, "-m", model, "--benign-only", "--sort-time", "--seed", a.seed, *a.extra)
            scored = os.path.join(tmp, "scored.jsonl")
            fh(a.flowhound, "detect", "-m", model, *test, "--all", "-q", "--sort-time", "-o", scored)
            rows = [json.loads(l) for l in open(scored)]
            flagged = np.array([r["severity"] != "none" for r in rows])
            res = {"setting": name, "flows": len(rows), "flagged": int(flagged.sum())}
            if name == "Zeek":
                inc = os.path.join(tmp, "incidents.jsonl")
                fh(a.flowhound, "detect", "-m", model, *test, "--incidents", "-q", "--sort-time", "-o", inc)
                incs = [json.loads(l) for l in open(inc)]
                res["flagged_share"] = round(flagged.mean(), 4)
                res["incidents"] = len(incs)
                res["classes"] = {}
                for i in incs:
                    res["classes"][i["threat_class"]] = res["classes"].get(i["threat_class"], 0) + 1
                res["slow_scanner"] = sorted({i["threat_class"] for i in incs if i.get("actor") == SLOW_SCANNER})
                reasons = {}
                for i in incs:
                    k = i["reason"].split(" ")[1:4]
                    reasons[" ".join(k)] = reasons.get(" ".join(k), 0) + 1
                res["top_reasons"] = sorted(reasons.items(), key=lambda kv: -kv[1])[:8]
            else:
                y = np.array([r.get("label") == "malicious" for r in rows])
                s = np.array([r["score"] for r in rows], dtype=np.float64)
                res.update(
                    malicious=int(y.sum()),
                    benign_fpr=round(float(flagged[~y].mean()), 4),
                    recall=round(float(flagged[y].mean()), 4),
                    recall_at_0_1pct=round(recall_at(y, s, 0.001), 4),
                    recall_at_1pct=round(recall_at(y, s, 0.01), 4),
                )
                per = {}
                for m in rows[0]["models"]:
                    sm = np.array([r["models"][m]["score"] for r in rows], dtype=np.float64)
                    per[m] = [round(recall_at(y, sm, 0.001), 3), round(recall_at(y, sm, 0.01), 3)]
                res["models_recall_at_0.1_1pct"] = per
                if a.sklearn:
                    from sklearn.neighbors import LocalOutlierFactor

                    fa, ya, _ = features(a.flowhound, train, os.path.join(tmp, "fa.csv"))
                    fb, yb, _ = features(a.flowhound, test, os.path.join(tmp, "fb.csv"))
                    xa, xb = prepare(fa[~ya], fb)
                    lof = LocalOutlierFactor(n_neighbors=20, novelty=True).fit(sample(xa, 10000, int(a.seed)))
                    sk = -lof.score_samples(xb)
                    res["sklearn_lof_recall_at_0.1_1pct"] = [round(recall_at(yb, sk, 0.001), 3), round(recall_at(yb, sk, 0.01), 3)]
            res["train_says"] = [l for l in tr.stderr.splitlines() if "time of day" in l or "alerts per million" in l or "unseen" in l]
            print(json.dumps(res), flush=True)
            out.append(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
