#!/usr/bin/env python3
"""Detection quality of flowhound's detectors and ensemble next to scikit-learn's
IsolationForest, LocalOutlierFactor, OneClassSVM and an MLP autoencoder, on the
same train/test splits of the shared real datasets (benign-only training).

    bash bench/setup.sh                      # venv with pandas, pyarrow, scikit-learn
    cargo build --release -p flowhound
    bench/.venv/bin/python bench/evaluate.py [--datasets ../shared/datasets] [--json out.json] [--seeds 42,1,2] [--only CIC] [--sort-time]

scikit-learn sees the same per-flow and window features flowhound computes
(`flowhound features`), prepared the way a notebook would: median imputation,
one-hot text columns, StandardScaler. Splits and seeds are fixed, so a rerun
gives the same numbers (up to the MLP's thread scheduling). With several
--seeds, every model is trained once per seed (the data split stays fixed)
and the tables show the mean and the spread (min–max) over seeds: on a test
set with few attacks (IoT-23: 32 rows) one seed's number is mostly luck."""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

SEED = 42
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = ["time", "src", "dst", "src_port", "dst_port", "protocol", "malicious", "category"]


def split_lines(src, out_a, out_b, seed=SEED):
    """Random half/half split of a CSV's data rows, header kept on both sides."""
    with open(src, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    head, rows = lines[0], lines[1:]
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    half = set(idx[: len(rows) // 2])
    # Keep file order inside each half: window features follow time.
    for path, keep in ((out_a, lambda i: i in half), (out_b, lambda i: i not in half)):
        with open(path, "wb") as f:
            f.write(head)
            f.writelines(r for i, r in enumerate(rows) if keep(i))


IOT_SETTING = "IoT-23 (train: 5 captures, test: 3 other captures)"


def iot_split(ds):
    """IoT-23: training captures and test captures (other networks)."""
    train = ["CTU-Honeypot-Capture-4-1", "CTU-Honeypot-Capture-5-1", "CTU-Malware-Capture-8-1",
             "CTU-Malware-Capture-20-1", "CTU-Malware-Capture-21-1"]
    test = ["CTU-Honeypot-Capture-7-1", "CTU-Malware-Capture-42-1", "CTU-Malware-Capture-44-1"]
    f = lambda c: os.path.join(ds, "iot-23", c + "-labeled.csv")
    return [f(c) for c in train], [f(c) for c in test]


def settings(ds, tmp):
    unsw = os.path.join(ds, "unsw-nb15", "UNSW_NB15_part-a.csv")
    a, b = os.path.join(tmp, "unsw-train.csv"), os.path.join(tmp, "unsw-test.csv")
    split_lines(unsw, a, b)
    yield "UNSW-NB15 part-a (50/50 split, seed 42)", [a], [b]

    cic = os.path.join(ds, "cic-ids2017-improved-sample")
    a, b = os.path.join(tmp, "cic-benign-train.csv"), os.path.join(tmp, "cic-benign-test.csv")
    split_lines(os.path.join(cic, "BENIGN_part-a.csv"), a, b)
    attacks = sorted(os.path.join(cic, f) for f in os.listdir(cic) if f.endswith(".csv") and not f.startswith("BENIGN"))
    yield "CIC-IDS2017 sample (half the benign rows; test: other half + every attack file)", [a], [b] + attacks

    yield IOT_SETTING, *iot_split(ds)


def fh(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"flowhound {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


# Extra flags for every flowhound call reading flows (--sort-time).
READ_FLAGS = []


def features(binary, inputs, out):
    fh(binary, "features", *inputs, "-o", out, "-q", *READ_FLAGS)
    df = pd.read_csv(out, low_memory=False)
    y = df["malicious"].astype(str).str.lower().eq("true").to_numpy()
    cats = df["category"].astype(object).fillna("benign").astype(str).to_numpy()
    return df.drop(columns=[k for k in KEYS if k in df.columns]), y, cats


def prepare(train, test):
    numeric = pd.api.types.is_numeric_dtype
    text = [c for c in train.columns if not (numeric(train[c]) and numeric(test[c]))]
    num = [c for c in train.columns if c not in text]
    med = train[num].median()
    xa, xb = train[num].fillna(med).fillna(0), test[num].fillna(med).fillna(0)
    xa, xb = xa.replace([np.inf, -np.inf], 0), xb.replace([np.inf, -np.inf], 0)
    if text:
        da = pd.get_dummies(train[text].astype(str))
        db = pd.get_dummies(test[text].astype(str)).reindex(columns=da.columns, fill_value=0)
        xa, xb = pd.concat([xa, da], axis=1), pd.concat([xb, db], axis=1)
    s = StandardScaler().fit(xa.to_numpy(dtype=np.float64))
    return s.transform(xa.to_numpy(dtype=np.float64)), s.transform(xb.to_numpy(dtype=np.float64))


def sample(x, n, seed):
    if len(x) <= n:
        return x
    return x[np.random.default_rng(seed).choice(len(x), n, replace=False)]


def sklearn_scores(xa, xb, seed):
    """Higher = more anomalous, for each scikit-learn model; and fit+score seconds."""
    out, secs = {}, {}
    models = {
        "IsolationForest": lambda: IsolationForest(random_state=seed).fit(xa),
        "LocalOutlierFactor": lambda: LocalOutlierFactor(n_neighbors=20, novelty=True).fit(sample(xa, 10000, seed)),
        "OneClassSVM": lambda: OneClassSVM(nu=0.05, gamma="scale").fit(sample(xa, 10000, seed)),
    }
    for name, fit in models.items():
        t = time.perf_counter()
        m = fit()
        out[name] = -m.score_samples(xb)
        secs[name] = time.perf_counter() - t
    t = time.perf_counter()
    xs = sample(xa, 50000, seed)
    ae = MLPRegressor(hidden_layer_sizes=(32, 8, 32), max_iter=100, early_stopping=True, random_state=seed).fit(xs, xs)
    out["MLP autoencoder"] = ((ae.predict(xb) - xb) ** 2).mean(axis=1)
    secs["MLP autoencoder"] = time.perf_counter() - t
    return out, secs


def metrics(y, s):
    s = np.nan_to_num(np.asarray(s, dtype=np.float64), nan=np.inf, posinf=1e300)
    return {"roc_auc": round(float(roc_auc_score(y, s)), 4), "pr_auc": round(float(average_precision_score(y, s)), 4)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=os.environ.get("FLOWHOUND_DATASETS", os.path.join(ROOT, "..", "shared", "datasets")))
    ap.add_argument("--flowhound", default=os.path.join(ROOT, "target", "release", "flowhound"))
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--seeds", default=str(SEED), help="model seeds, comma-separated; the first one gives the at-threshold numbers")
    ap.add_argument("--only", help="run only the settings whose name contains this")
    ap.add_argument("--sort-time", action="store_true", help="pass --sort-time to every flowhound call (flows oldest first)")
    a = ap.parse_args()
    if a.sort_time:
        READ_FLAGS.append("--sort-time")
    seeds = [int(x) for x in a.seeds.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, train, test in settings(a.datasets, tmp):
            if a.only and a.only not in name:
                continue
            res = {"setting": name, "seeds": seeds, "models": {}, "seconds": {}}
            fa, ya, _ = features(a.flowhound, train, os.path.join(tmp, "fa.csv"))
            fb, yb, _ = features(a.flowhound, test, os.path.join(tmp, "fb.csv"))
            xa, xb = prepare(fa[~ya], fb)
            runs = {}
            for seed in seeds:
                model = os.path.join(tmp, "model")
                t = time.perf_counter()
                fh(a.flowhound, "train", *train, "-m", model, "--benign-only", "--seed", str(seed), "-q", *READ_FLAGS)
                fh_train = time.perf_counter() - t
                scored = os.path.join(tmp, "scored.jsonl")
                t = time.perf_counter()
                fh(a.flowhound, "detect", "-m", model, *test, "--all", "-q", "-o", scored, *READ_FLAGS)
                fh_detect = time.perf_counter() - t
                rows = [json.loads(l) for l in open(scored)]
                y = np.array([r.get("label") == "malicious" for r in rows])
                assert len(yb) == len(y) and (yb == y).all(), "features and detect disagree on the test rows"
                for m in rows[0]["models"]:
                    runs.setdefault("flowhound " + m, []).append(metrics(y, [r["models"][m]["score"] for r in rows]))
                runs.setdefault("flowhound ensemble", []).append(metrics(y, [r["score"] for r in rows]))
                # `flowhound evaluate` must agree with scikit-learn on the same scores.
                ev = json.loads(fh(a.flowhound, "evaluate", "-m", model, *test, "--json", "-q", *READ_FLAGS).stdout)
                for m, q in [*ev["models"].items(), ("ensemble", ev["ensemble"])]:
                    mine, theirs = q["roc_auc"], runs["flowhound " + m][-1]["roc_auc"]
                    assert abs(mine - theirs) < 1e-3, f"{m}: flowhound evaluate ROC-AUC {mine} vs scikit-learn {theirs}"
                    mine, theirs = q["pr_auc"], runs["flowhound " + m][-1]["pr_auc"]
                    assert abs(mine - theirs) < 1e-3, f"{m}: flowhound evaluate PR-AUC {mine} vs scikit-learn {theirs}"
                res["evaluate_agrees"] = True
                sk, secs = sklearn_scores(xa, xb, seed)
                for m, sc in sk.items():
                    runs.setdefault("sklearn " + m, []).append(metrics(y, sc))
                if seed != seeds[0]:
                    continue
                res.update(test_rows=len(rows), test_malicious=int(y.sum()))
                res["seconds"] = {"flowhound train": round(fh_train, 2), "flowhound detect": round(fh_detect, 2)}
                res["seconds"].update({"sklearn " + k: round(v, 2) for k, v in secs.items()})
                flagged = np.array([r["severity"] != "none" for r in rows])
                tp, fp = int((flagged & y).sum()), int((flagged & ~y).sum())
                res["ensemble_at_threshold"] = {
                    "recall": round(tp / max(1, y.sum()), 4), "precision": round(tp / max(1, tp + fp), 4),
                    "fpr": round(fp / max(1, (~y).sum()), 4)}
                per = {}
                for r, f in zip(rows, flagged):
                    if r.get("label") == "malicious":
                        c = per.setdefault(r.get("category") or "unknown", [0, 0])
                        c[0] += 1
                        c[1] += int(f)
                res["detected_per_category"] = {k: {"n": v[0], "detected": v[1]} for k, v in sorted(per.items())}
            for m, ms in runs.items():
                res["models"][m] = {k: summarize([x[k] for x in ms]) for k in ("roc_auc", "pr_auc")}
            results.append(res)
            print_result(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


def summarize(v):
    return {"mean": round(float(np.mean(v)), 4), "min": round(min(v), 4), "max": round(max(v), 4)}


def cell(v):
    return f"{v['mean']:.4f}" if v["min"] == v["max"] else f"{v['mean']:.4f} ({v['min']:.3f}–{v['max']:.3f})"


def print_result(r):
    print(f"\n## {r['setting']}\n\ntest rows {r['test_rows']}, malicious {r['test_malicious']}, seeds {r['seeds']}\n")
    print("| model | ROC-AUC | PR-AUC |\n|---|---:|---:|")
    for m, v in r["models"].items():
        print(f"| {m} | {cell(v['roc_auc'])} | {cell(v['pr_auc'])} |")
    e = r["ensemble_at_threshold"]
    print(f"\nensemble at its vote threshold: recall {e['recall']:.3f}, precision {e['precision']:.3f}, FPR {e['fpr']:.3f}")
    print("detected per category: " + ", ".join(f"{k} {v['detected']}/{v['n']}" for k, v in r["detected_per_category"].items()))
    print("seconds: " + ", ".join(f"{k} {v}" for k, v in r["seconds"].items()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
