#!/usr/bin/env python3
"""Could an approximate nearest-neighbour index make LOF fast enough for the
ensemble's 20x-scikit-learn goal without losing quality? (BENCHMARKS.md,
"Approximate neighbours for LOF".)

    flowhound features TRAIN.csv -o fa.csv -q
    flowhound features TEST.csv -o fb.csv -q
    cargo build --release -p flowhound-detect --example score_matrix
    bench/.venv/bin/python bench/ann_check.py fa.csv fb.csv [target/release/examples/score_matrix]

Prepares the rows as bench/evaluate.py does, takes 2,048 seeded benign
training rows as LOF's reference (as flowhound's LOF), and answers the k = 20
neighbour queries of 100,000 test rows (the test rows repeated) with faiss's
exact search, faiss HNSW, hnswlib and faiss IVF at several settings, all on
one thread. For each: queries per second (search only); "exact", the share
of queries whose 20 neighbour distances all equal the exact search's (flow
features repeat exactly, so which of several tied rows an index returns is
arbitrary: distances are the tie-free measure of an index's accuracy); and the
ROC-AUC / PR-AUC of the LOF computed from those neighbours (the reference's
own k-distances exact). Tie-breaking alone moves that LOF: IVF probing every
cell returns exact distances and still scores differently from the flat index,
so read LOF differences against that line. With the score_matrix example's
path, flowhound's own exact LOF scores the same matrices too."""

import os
import subprocess
import sys
import tempfile
import time

import faiss
import hnswlib
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from evaluate import KEYS, prepare

K, REFS, QUERIES = 20, 2048, 100_000


def load(path):
    df = pd.read_csv(path, low_memory=False)
    y = df["malicious"].astype(str).str.lower().eq("true").to_numpy()
    return df.drop(columns=[k for k in KEYS if k in df.columns]), y


def main():
    faiss.omp_set_num_threads(1)
    (fa, ya), (fb, yb) = load(sys.argv[1]), load(sys.argv[2])
    xa, xb = prepare(fa[~ya], fb)
    ref = np.ascontiguousarray(xa[np.random.default_rng(42).choice(len(xa), REFS, replace=False)], dtype=np.float32)
    reps = -(-QUERIES // len(xb))
    q = np.ascontiguousarray(np.concatenate([xb] * reps)[:QUERIES], dtype=np.float32)
    y = np.concatenate([yb] * reps)[:QUERIES]

    # The reference's k-distances and local reachability densities, exact
    # (each row's own entry left out, as in novelty-mode LOF).
    flat = faiss.IndexFlatL2(ref.shape[1])
    flat.add(ref)
    d, i = flat.search(ref, K + 1)
    d, i = np.sqrt(np.maximum(d[:, 1:], 0)), i[:, 1:]
    kdist = d[:, -1]
    lrd_ref = 1.0 / (np.maximum(d, kdist[i]).mean(1) + 1e-10)

    def report(name, secs, sq_dist, idx):
        idx = np.where(idx < 0, 0, idx)  # IVF pads with -1 when its probed cells hold fewer than k rows
        dist = np.sqrt(np.maximum(sq_dist, 0))
        same = np.mean(np.abs(np.sort(dist, 1) - exact).max(1) <= 1e-3 * (1 + exact[:, -1]))
        lrd = 1.0 / (np.maximum(dist, kdist[idx]).mean(1) + 1e-10)
        s = lrd_ref[idx].mean(1) / lrd
        print(f"{name:32s} {QUERIES / secs / 1e3:6.0f} k queries/s  exact {same:.3f}  LOF ROC-AUC "
              f"{roc_auc_score(y, s):.4f}  PR-AUC {average_precision_score(y, s):.4f}", flush=True)

    def timed(search):
        t = time.perf_counter()
        out = search()
        return time.perf_counter() - t, out

    secs, (dq, iq) = timed(lambda: flat.search(q, K))
    exact = np.sort(np.sqrt(np.maximum(dq, 0)), 1)
    report("faiss exact (IndexFlatL2)", secs, dq, iq)
    for m in (16, 32):
        h = faiss.IndexHNSWFlat(ref.shape[1], m)
        h.add(ref)
        for ef in (20, 40, 80):
            h.hnsw.efSearch = ef
            secs, (dq, iq) = timed(lambda: h.search(q, K))
            report(f"faiss HNSW M={m} efSearch={ef}", secs, dq, iq)
    p = hnswlib.Index(space="l2", dim=ref.shape[1])
    p.init_index(max_elements=len(ref), ef_construction=200, M=16, random_seed=42)
    p.add_items(ref)
    p.set_num_threads(1)
    for ef in (20, 40, 80):
        p.set_ef(ef)
        secs, (iq, dq) = timed(lambda: p.knn_query(q, k=K))
        report(f"hnswlib M=16 ef={ef}", secs, dq, iq.astype(np.int64))
    for nlist in (16, 64):
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(ref.shape[1]), ref.shape[1], nlist)
        ivf.train(ref)
        ivf.add(ref)
        for nprobe in (1, 2, 4, 8, nlist):
            ivf.nprobe = nprobe
            secs, (dq, iq) = timed(lambda: ivf.search(q, K))
            report(f"faiss IVF nlist={nlist} nprobe={nprobe}" + (" (all)" if nprobe == nlist else ""), secs, dq, iq)

    if len(sys.argv) > 3:
        with tempfile.TemporaryDirectory() as tmp:
            a, b, out = (os.path.join(tmp, n) for n in ("a.csv", "b.csv", "scores.txt"))
            np.savetxt(a, xa, delimiter=",", fmt="%.7g")
            np.savetxt(b, q, delimiter=",", fmt="%.7g")
            r = subprocess.run([sys.argv[3], "lof", a, b, out, "42"], capture_output=True, text=True, check=True)
            rate = float(r.stderr.strip().split()[-2])
            s = np.loadtxt(out)
            print(f"{'flowhound LOF (exact)':32s} {rate / 1e3:6.0f} k queries/s  exact 1      LOF ROC-AUC {roc_auc_score(y, s):.4f}"
                  f"  PR-AUC {average_precision_score(y, s):.4f}")


if __name__ == "__main__":
    main()
