//! Random Forest classifier (Breiman 2001) for labeled flows: benign or one
//! attack category per row. Bootstrap samples, √d candidate features per
//! split, Gini impurity, optional balanced class weights; a row's class
//! probabilities are the mean of its leaves' class shares over the trees
//! (scikit-learn's `predict_proba`), so P(malicious) = 1 − P(benign) ranks
//! flows and the most probable class names them.
//!
//! Written here, not taken from a crate. Measured on the CIC-IDS2017 sample
//! (24,629 training rows × 57 columns, 10 classes, 100 trees, one core):
//! smartcore 0.4.10 fits in 13.0 s and predicts 100 k rows/s; linfa-ensemble
//! 0.8.1 fits in 21.6 s, predicts 59 k rows/s (macro-F1 0.9999 and 0.9998).
//! Both vote by majority only (no probabilities to rank by), have no class
//! weights, and keep their trees private (no feature importances, no
//! persistence in our checked format); linfa's feature subsets are per tree,
//! not per split. This one bins every feature into ≤ 4,096 quantile bins
//! once and finds splits from per-bin class histograms (in nodes with fewer
//! rows than a quarter of the bins, from the rows sorted by bin), and fits
//! trees in parallel — BENCHMARKS.md has its numbers beside theirs.

use ndarray::ArrayView2;
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::tensors::{Reader, Writer};
use crate::{rng, subsample, DetectError};

const NAME: &str = "random_forest";

/// Most bins per feature (codes fit 16 bits). scikit-learn's forest on the
/// same UNSW-NB15 matrix, binned to 256 / 1,024 / 4,096 / 16,384 quantiles:
/// macro-F1 0.492 / 0.524 / 0.530 / 0.549 (exact values 0.555) — category
/// names need finer cuts than the malicious/benign ranking does.
const MAX_BINS: usize = 4096;

/// Rows the bin edges are taken from at most.
const BIN_SAMPLE: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForestParams {
    pub trees: usize,
    /// Deepest a tree grows (root = 0).
    pub max_depth: usize,
    /// Least training rows in a leaf: distinct rows, as scikit-learn counts
    /// them, not their weight — with balanced class weights a benign row
    /// weighs less than one, and a weighted count kept every split that
    /// isolates a few benign rows from happening (UNSW-NB15 PR-AUC 0.977
    /// against 0.985 counted by rows, on the same matrix).
    pub min_samples_leaf: usize,
    /// Candidate features per split; `None` = ⌊√d⌋.
    pub max_features: Option<usize>,
    /// Weigh classes inversely to their frequency (scikit-learn's
    /// `class_weight="balanced"`): rare attack classes count as much as
    /// benign traffic.
    pub balanced: bool,
    /// Training rows at most (a seeded sample).
    pub max_train: usize,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            trees: 100,
            max_depth: 24,
            min_samples_leaf: 1,
            max_features: None,
            balanced: true,
            max_train: 500_000,
        }
    }
}

impl ForestParams {
    pub fn check(&self) -> Result<(), DetectError> {
        let mut p = Vec::new();
        if !(1..=2000).contains(&self.trees) {
            p.push(format!("trees {} must be 1..=2000", self.trees));
        }
        if !(1..=64).contains(&self.max_depth) {
            p.push(format!("max_depth {} must be 1..=64", self.max_depth));
        }
        if self.min_samples_leaf == 0 {
            p.push("min_samples_leaf must be at least 1".into());
        }
        if self.max_features == Some(0) {
            p.push("max_features must be at least 1".into());
        }
        if self.max_train < 10 {
            p.push(format!("max_train {} must be at least 10", self.max_train));
        }
        DetectError::params(NAME, p)
    }

    /// Fits on rows `x` with class ids `y` (`0..classes`), seeded.
    pub fn fit(&self, x: ArrayView2<'_, f32>, y: &[u16], classes: usize, seed: u64) -> Result<Forest, DetectError> {
        Ok(self.fit_oob(x, y, classes, seed, &[])?.0)
    }

    /// [`ForestParams::fit`], and the out-of-bag P(malicious) (1 − P(benign))
    /// of the rows `oob` of `x`: the mean over the trees whose bootstrap
    /// left the row out (every tree for a row outside the training sample),
    /// so it is an honest estimate of how the forest scores rows it never
    /// saw — what the ensemble's stacking weights are learned from. The same
    /// seed gives the same forest with or without `oob`.
    pub fn fit_oob(
        &self,
        x: ArrayView2<'_, f32>,
        y: &[u16],
        classes: usize,
        seed: u64,
        oob: &[usize],
    ) -> Result<(Forest, Vec<f32>), DetectError> {
        self.check()?;
        let (n, d) = x.dim();
        if y.len() != n {
            return Err(DetectError::Fit { model: NAME, reason: format!("{n} rows but {} labels", y.len()) });
        }
        if n < 2 {
            return Err(DetectError::TooFew { model: NAME, need: 2, got: n });
        }
        if classes < 2 || classes > usize::from(u16::MAX) || y.iter().any(|c| usize::from(*c) >= classes) {
            return Err(DetectError::Fit {
                model: NAME,
                reason: format!("labels must be 0..{classes}, at least 2 classes"),
            });
        }
        let rows = subsample(n, self.max_train, &mut rng(seed, 20));
        let edges = bin_edges(x, &rows, seed);
        // Column-major bin codes of the rows used: a split scans one column.
        let m = rows.len();
        let mut codes = vec![0u16; m * d];
        for (j, e) in edges.iter().enumerate() {
            for (i, &r) in rows.iter().enumerate() {
                codes[j * m + i] = bin(e, x[[r, j]]);
            }
        }
        let labels: Vec<u16> = rows.iter().map(|&r| y[r]).collect();
        let mut count = vec![0f64; classes];
        for &c in &labels {
            count[usize::from(c)] += 1.0;
        }
        let present = count.iter().filter(|c| **c > 0.0).count() as f64;
        let weight: Vec<f32> = count
            .iter()
            .map(|&c| if self.balanced && c > 0.0 { (m as f64 / (present * c)) as f32 } else { 1.0 })
            .collect();
        let mtry = self.max_features.unwrap_or(((d as f64).sqrt() as usize).max(1)).min(d);
        let data = Data { codes: &codes, labels: &labels, weight: &weight, edges: &edges, m, d, classes, mtry };
        // Where each `oob` row sits in the training sample, if it does.
        let at: Vec<Option<usize>> = oob.iter().map(|r| rows.binary_search(r).ok()).collect();
        let grown: Vec<(Tree, Vec<f32>)> = (0..self.trees)
            .into_par_iter()
            .map(|t| {
                let (tree, mult) = grow(&data, self, &mut rng(seed, 1000 + t as u64));
                // P(malicious) of this tree for the rows it did not see, NaN for the others.
                let p = oob
                    .iter()
                    .zip(&at)
                    .map(|(&r, a)| match a {
                        Some(i) if mult[*i] > 0 => f32::NAN,
                        _ => 1.0 - tree.leaf(|j| x[[r, j]])[0],
                    })
                    .collect();
                (tree, p)
            })
            .collect();
        // Summed in tree order: the same seed gives the same estimates.
        let mut sum = vec![0f64; oob.len()];
        let mut count = vec![0u32; oob.len()];
        for (_, p) in &grown {
            for ((s, c), v) in sum.iter_mut().zip(&mut count).zip(p) {
                if !v.is_nan() {
                    *s += f64::from(*v);
                    *c += 1;
                }
            }
        }
        let trees: Vec<Tree> = grown.into_iter().map(|(t, _)| t).collect();
        let mut importance = vec![0f64; d];
        for t in &trees {
            for (i, g) in t.gain.iter().enumerate() {
                importance[i] += g;
            }
        }
        let total: f64 = importance.iter().sum();
        let importance = importance.iter().map(|g| if total > 0.0 { (g / total) as f32 } else { 0.0 }).collect();
        let forest = Forest::assemble(&trees, classes, d, importance);
        // A row in every bootstrap (unlikely with many trees) gets the whole forest's estimate.
        let in_all: Vec<usize> = (0..oob.len()).filter(|&i| count[i] == 0).collect();
        let whole = if in_all.is_empty() {
            Vec::new()
        } else {
            forest.predict_proba(x.select(ndarray::Axis(0), &in_all.iter().map(|&i| oob[i]).collect::<Vec<_>>()).view())
        };
        let mut p: Vec<f32> = sum.iter().zip(&count).map(|(s, &c)| (s / f64::from(c.max(1))) as f32).collect();
        for (n, &i) in in_all.iter().enumerate() {
            p[i] = 1.0 - whole[n * classes];
        }
        Ok((forest, p))
    }
}

/// Quantile cut points of each feature, at most `MAX_BINS − 1`, from a
/// seeded sample of `rows`: midpoints between distinct neighbouring values.
fn bin_edges(x: ArrayView2<'_, f32>, rows: &[usize], seed: u64) -> Vec<Vec<f32>> {
    let s = subsample(rows.len(), BIN_SAMPLE, &mut rng(seed, 21));
    (0..x.ncols())
        .map(|j| {
            let mut v: Vec<f32> = s.iter().map(|&i| x[[rows[i], j]]).filter(|v| !v.is_nan()).collect();
            v.sort_by(f32::total_cmp);
            v.dedup();
            if v.len() < MAX_BINS {
                return v.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect();
            }
            let mut e: Vec<f32> = (1..MAX_BINS)
                .map(|q| {
                    let i = q * (v.len() - 1) / MAX_BINS;
                    v[i] + (v[i + 1] - v[i]) / 2.0
                })
                .collect();
            e.dedup();
            e
        })
        .collect()
}

/// A value's bin: the number of cut points at or below it; NaN goes last,
/// where `x < threshold` (false for NaN) sends it at prediction time too.
fn bin(edges: &[f32], v: f32) -> u16 {
    if v.is_nan() {
        edges.len() as u16
    } else {
        edges.partition_point(|e| *e <= v) as u16
    }
}

/// What every tree reads.
struct Data<'a> {
    codes: &'a [u16],
    labels: &'a [u16],
    weight: &'a [f32],
    edges: &'a [Vec<f32>],
    m: usize,
    d: usize,
    classes: usize,
    mtry: usize,
}

/// A tree as grown: nodes in preorder.
struct Tree {
    /// Per node: split feature (`u32::MAX` for a leaf), threshold, right
    /// child (the left child is the next node), leaf class shares.
    feature: Vec<u32>,
    threshold: Vec<f32>,
    right: Vec<u32>,
    value: Vec<Vec<f32>>,
    /// Weighted Gini decrease per feature.
    gain: Vec<f64>,
}

impl Tree {
    /// The class shares of the leaf a row reaches (`x < threshold` goes
    /// left, to the next node, as in [`Forest::predict_proba`]).
    fn leaf(&self, value: impl Fn(usize) -> f32) -> &[f32] {
        let mut n = 0;
        while self.feature[n] != u32::MAX {
            n = if value(self.feature[n] as usize) < self.threshold[n] { n + 1 } else { self.right[n] as usize };
        }
        &self.value[n]
    }
}

fn gini(h: &[f64], total: f64) -> f64 {
    if total <= 0.0 {
        return 0.0;
    }
    1.0 - h.iter().map(|c| (c / total) * (c / total)).sum::<f64>()
}

/// Grows one tree; also gives each training row's bootstrap multiplicity
/// (0 = out of bag).
fn grow(data: &Data<'_>, p: &ForestParams, r: &mut impl Rng) -> (Tree, Vec<u32>) {
    let (m, k) = (data.m, data.classes);
    // Bootstrap: m draws with replacement, kept as a multiplicity per row.
    let mut mult = vec![0u32; m];
    for _ in 0..m {
        mult[r.gen_range(0..m)] += 1;
    }
    let mut idx: Vec<u32> = (0..m as u32).filter(|&i| mult[i as usize] > 0).collect();
    // Each row's weight in this tree: bootstrap copies × class weight.
    let rw: Vec<f64> =
        (0..m).map(|i| f64::from(mult[i]) * f64::from(data.weight[usize::from(data.labels[i])])).collect();
    let w = |i: u32| rw[i as usize];
    let mut t = Tree {
        feature: Vec::new(),
        threshold: Vec::new(),
        right: Vec::new(),
        value: Vec::new(),
        gain: vec![0.0; data.d],
    };
    // Depth-first: (range of idx, depth, index of the parent's `right` slot to fill).
    let mut stack: Vec<(usize, usize, usize, Option<usize>)> = vec![(0, idx.len(), 0, None)];
    let mut hist = vec![0f64; MAX_BINS * k];
    // Distinct rows per bin, for `min_samples_leaf`.
    let mut rows_in = vec![0u32; MAX_BINS];
    let mut order: Vec<usize> = (0..data.d).collect();
    // The node's occupied bins of one candidate feature, in order: bin,
    // class weights (`k` per bin), rows.
    let (mut groups, mut group_h, mut group_rows) = (Vec::<u16>::new(), Vec::<f64>::new(), Vec::<u32>::new());
    let mut keyed: Vec<(u16, u32)> = Vec::new();
    let mut node_h = vec![0f64; k];
    // Class weights left and right of a candidate split, reused.
    let (mut left, mut right) = (vec![0f64; k], vec![0f64; k]);
    while let Some((lo, hi, depth, parent)) = stack.pop() {
        let me = t.feature.len();
        if let Some(pi) = parent {
            t.right[pi] = me as u32;
        }
        node_h.iter_mut().for_each(|v| *v = 0.0);
        for &i in &idx[lo..hi] {
            node_h[usize::from(data.labels[i as usize])] += w(i);
        }
        let total: f64 = node_h.iter().sum();
        let impurity = gini(&node_h, total);
        let mut best: Option<(f64, usize, usize)> = None; // (gain, feature, bin)
        if depth < p.max_depth && impurity > 0.0 && (hi - lo) >= 2 * p.min_samples_leaf {
            // Candidate features in a random order until `mtry` of them vary
            // within the node: a feature constant here (a one-hot column
            // deep in a tree, most often) cannot split it and does not use
            // up a draw — scikit-learn's rule. Counting it, as a plain
            // sample of `mtry` features did, ended many nodes as impure
            // leaves (UNSW-NB15 PR-AUC 0.978 → see forest_matrix).
            let mut visited = 0;
            for t in 0..data.d {
                if visited == data.mtry {
                    break;
                }
                let pick = r.gen_range(t..data.d);
                order.swap(t, pick);
                let j = order[t];
                let nb = data.edges[j].len() + 1;
                if nb < 2 {
                    continue;
                }
                let col = &data.codes[j * m..][..m];
                groups.clear();
                group_h.clear();
                group_rows.clear();
                if (hi - lo) * 4 < nb {
                    // Few rows for many bins (deep nodes): sort the rows
                    // by bin instead of sweeping every bin's histogram.
                    keyed.clear();
                    keyed.extend(idx[lo..hi].iter().map(|&i| (col[i as usize], i)));
                    keyed.sort_unstable();
                    for &(b, i) in &keyed {
                        if groups.last() != Some(&b) {
                            groups.push(b);
                            group_h.resize(group_h.len() + k, 0.0);
                            group_rows.push(0);
                        }
                        let g = groups.len() - 1;
                        group_h[g * k + usize::from(data.labels[i as usize])] += w(i);
                        group_rows[g] += 1;
                    }
                } else {
                    hist[..nb * k].iter_mut().for_each(|v| *v = 0.0);
                    rows_in[..nb].iter_mut().for_each(|v| *v = 0);
                    for &i in &idx[lo..hi] {
                        let b = usize::from(col[i as usize]);
                        hist[b * k + usize::from(data.labels[i as usize])] += w(i);
                        rows_in[b] += 1;
                    }
                    for b in (0..nb).filter(|&b| rows_in[b] > 0) {
                        groups.push(b as u16);
                        group_h.extend_from_slice(&hist[b * k..][..k]);
                        group_rows.push(rows_in[b]);
                    }
                }
                if groups.len() < 2 {
                    continue;
                }
                visited += 1;
                left.iter_mut().for_each(|v| *v = 0.0);
                let mut lt = 0.0;
                let mut left_rows = 0;
                for g in 0..groups.len() - 1 {
                    let hb = &group_h[g * k..][..k];
                    let nbw: f64 = hb.iter().sum();
                    for (l, h) in left.iter_mut().zip(hb) {
                        *l += h;
                    }
                    lt += nbw;
                    left_rows += group_rows[g] as usize;
                    let b = usize::from(groups[g]);
                    let rt = total - lt;
                    if left_rows < p.min_samples_leaf || (hi - lo) - left_rows < p.min_samples_leaf || rt <= 1e-12 {
                        continue;
                    }
                    for ((r, a), b) in right.iter_mut().zip(&node_h).zip(&left) {
                        *r = a - b;
                    }
                    let g = impurity - (lt / total) * gini(&left, lt) - (rt / total) * gini(&right, rt);
                    if g > 1e-12 && best.is_none_or(|(bg, _, _)| g > bg) {
                        best = Some((g, j, b));
                    }
                }
            }
        }
        match best {
            Some((g, j, b)) => {
                t.gain[j] += g * total;
                t.feature.push(j as u32);
                t.threshold.push(data.edges[j][b]);
                t.right.push(0);
                t.value.push(Vec::new());
                // Partition: bin ≤ b to the left.
                let col = &data.codes[j * m..][..m];
                let (mut a, mut z) = (lo, hi);
                while a < z {
                    if usize::from(col[idx[a] as usize]) <= b {
                        a += 1;
                    } else {
                        z -= 1;
                        idx.swap(a, z);
                    }
                }
                // Right pushed first: the left child is grown next, so it
                // directly follows its parent (preorder).
                stack.push((a, hi, depth + 1, Some(me)));
                stack.push((lo, a, depth + 1, None));
            }
            None => {
                t.feature.push(u32::MAX);
                t.threshold.push(0.0);
                t.right.push(0);
                t.value.push(node_h.iter().map(|c| (c / total.max(1e-300)) as f32).collect());
            }
        }
    }
    (t, mult)
}

/// A fitted forest, all trees in flat arrays (preorder, like the Isolation
/// Forest): per node its feature (`u32::MAX` = leaf), threshold (`x <
/// threshold` goes left, to the next node), right child, and for leaves
/// the offset of their class shares in `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    classes: usize,
    width: usize,
    roots: Vec<u32>,
    feature: Vec<u32>,
    threshold: Vec<f32>,
    right: Vec<u32>,
    values: Vec<f32>,
    importance: Vec<f32>,
}

impl Forest {
    fn assemble(trees: &[Tree], classes: usize, width: usize, importance: Vec<f32>) -> Forest {
        let mut f = Forest {
            classes,
            width,
            roots: Vec::new(),
            feature: Vec::new(),
            threshold: Vec::new(),
            right: Vec::new(),
            values: Vec::new(),
            importance,
        };
        for t in trees {
            let base = f.feature.len() as u32;
            f.roots.push(base);
            for (i, &feat) in t.feature.iter().enumerate() {
                f.feature.push(feat);
                f.threshold.push(t.threshold[i]);
                if feat == u32::MAX {
                    f.right.push(f.values.len() as u32);
                    f.values.extend(&t.value[i]);
                } else {
                    f.right.push(base + t.right[i]);
                }
            }
        }
        f
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// Mean decrease in Gini impurity per model-input column, summing to 1.
    pub fn importance(&self) -> &[f32] {
        &self.importance
    }

    /// Class probabilities of every row, row-major (`classes` per row).
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Vec<f32> {
        let k = self.classes;
        let mut out = vec![0f32; x.nrows() * k];
        let scale = 1.0 / self.roots.len().max(1) as f32;
        out.par_chunks_mut(k * 256).enumerate().for_each(|(c, chunk)| {
            for (o, row) in chunk.chunks_mut(k).zip(x.outer_iter().skip(c * 256)) {
                for &root in &self.roots {
                    let mut n = root as usize;
                    while self.feature[n] != u32::MAX {
                        let v = row[self.feature[n] as usize];
                        n = if v < self.threshold[n] { n + 1 } else { self.right[n] as usize };
                    }
                    let leaf = &self.values[self.right[n] as usize..][..k];
                    for (a, b) in o.iter_mut().zip(leaf) {
                        *a += b * scale;
                    }
                }
            }
        });
        out
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        Writer::default()
            .u32("meta", &[3], &[self.classes as u32, self.width as u32, self.roots.len() as u32])
            .u32("roots", &[self.roots.len()], &self.roots)
            .u32("feature", &[self.feature.len()], &self.feature)
            .f32("threshold", &[self.threshold.len()], &self.threshold)
            .u32("right", &[self.right.len()], &self.right)
            .f32("values", &[self.values.len()], &self.values)
            .f32("importance", &[self.importance.len()], &self.importance)
            .finish()
    }

    /// Reads what [`Forest::to_bytes`] wrote, checking every index, so a
    /// corrupt file is an error, never a panic or an endless walk.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DetectError> {
        let r = Reader::new(NAME, bytes)?;
        let (_, meta) = r.u32("meta", &[Some(3)])?;
        let (classes, width, trees) = (meta[0] as usize, meta[1] as usize, meta[2] as usize);
        let (_, roots) = r.u32("roots", &[Some(trees)])?;
        let (s, feature) = r.u32("feature", &[None])?;
        let (_, threshold) = r.f32("threshold", &[Some(s[0])])?;
        let (_, right) = r.u32("right", &[Some(s[0])])?;
        let (_, values) = r.f32("values", &[None])?;
        let (_, importance) = r.f32("importance", &[Some(width)])?;
        let bad = |why: String| Err(DetectError::corrupt(NAME, why));
        if classes < 2 || width == 0 || trees == 0 {
            return bad(format!("{classes} classes, width {width}, {trees} trees"));
        }
        let n = feature.len();
        for (i, &f) in feature.iter().enumerate() {
            if f == u32::MAX {
                if right[i] as usize + classes > values.len() {
                    return bad(format!("leaf {i} points past the class shares"));
                }
            } else if f as usize >= width || i + 1 >= n || right[i] as usize <= i + 1 || right[i] as usize >= n {
                // Children strictly after their parent: every walk ends.
                return bad(format!("node {i}: feature {f} or child {} out of range", right[i]));
            }
        }
        if roots.iter().any(|&r| r as usize >= n) {
            return bad("a tree root out of range".into());
        }
        Ok(Forest { classes, width, roots, feature, threshold, right, values, importance })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::SeedableRng;

    /// Three classes in 6 dimensions: class by the sign pattern of two
    /// features, the rest noise; 10 % of class 2 only.
    fn data(n: usize, seed: u64) -> (Array2<f32>, Vec<u16>) {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, 6), |_| r.gen_range(-1.0f32..1.0));
        let y = x
            .outer_iter()
            .map(|row| {
                if row[0] > 0.6 && row[3] > 0.0 {
                    2
                } else if row[0] + row[1] > 0.0 {
                    1
                } else {
                    0
                }
            })
            .collect();
        (x, y)
    }

    /// A class that lives in 4 of 3,000 distinct values: 256 quantile bins
    /// (~12 values each) could not cut it out; every value has its own bin
    /// below `MAX_BINS`, and deep nodes take the sorted path.
    #[test]
    fn narrow_value_ranges_are_separable() {
        let n = 3000;
        let x = Array2::from_shape_fn((n, 2), |(i, j)| if j == 0 { i as f32 } else { (i % 7) as f32 });
        let y: Vec<u16> = (0..n).map(|i| u16::from((1000..1004).contains(&i))).collect();
        let p = ForestParams { trees: 30, ..Default::default() };
        let f = p.fit(x.view(), &y, 2, 5).expect("fits");
        let proba = f.predict_proba(x.view());
        let wrong: Vec<usize> = (0..n).filter(|&i| (proba[i * 2 + 1] > 0.5) != (y[i] == 1)).collect();
        assert!(wrong.is_empty(), "misclassified rows {wrong:?}");
    }

    /// One informative column among 19 constant ones, one candidate per
    /// split, balanced weights (benign rows weigh < 1): every tree must
    /// still find the informative column, and split down to single benign
    /// rows.
    #[test]
    fn constant_columns_do_not_use_up_the_draws() {
        let n = 400;
        let x = Array2::from_shape_fn((n, 20), |(i, j)| if j == 7 { i as f32 } else { 1.0 });
        // Benign except a band and one isolated row inside the benign range.
        let y: Vec<u16> = (0..n).map(|i| u16::from((300..340).contains(&i) || i == 100)).collect();
        let p = ForestParams { trees: 30, max_features: Some(1), ..Default::default() };
        let f = p.fit(x.view(), &y, 2, 3).expect("fits");
        let proba = f.predict_proba(x.view());
        let wrong = (0..n).filter(|&i| (proba[i * 2 + 1] > 0.5) != (y[i] == 1)).count();
        assert!(wrong <= 1, "{wrong} training rows misclassified");
        assert!(proba[2 * 300 + 1] > 0.9 && proba[2 * 200 + 1] < 0.1, "{} {}", proba[601], proba[401]);
        assert!(f.importance()[7] > 0.999, "{:?}", f.importance());
    }

    #[test]
    fn learns_the_classes_and_their_features() {
        let (x, y) = data(6000, 1);
        let (xt, yt) = data(2000, 2);
        let f =
            ForestParams { trees: 40, ..Default::default() }.fit(x.view(), &y, 3, 7).unwrap_or_else(|e| panic!("{e}"));
        let p = f.predict_proba(xt.view());
        let mut right = 0;
        for (i, row) in p.chunks(3).enumerate() {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4, "probabilities sum to 1: {row:?}");
            let best = (0..3).max_by(|a, b| row[*a].total_cmp(&row[*b])).unwrap_or(0);
            right += usize::from(best == usize::from(yt[i]));
        }
        assert!(right > 1900, "{right} of 2000 right");
        // Features 0, 1 and 3 decide; the three noise columns matter little.
        let imp = f.importance();
        assert!((imp.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert!(imp[0] > 0.3 && imp[1] > 0.1 && imp[3] > 0.05, "{imp:?}");
        assert!(imp[2] + imp[4] + imp[5] < 0.15, "{imp:?}");
    }

    #[test]
    fn deterministic_and_round_trips() {
        let (x, y) = data(1500, 3);
        let p = ForestParams { trees: 10, ..Default::default() };
        let a = p.fit(x.view(), &y, 3, 5).unwrap_or_else(|e| panic!("{e}"));
        let b = p.fit(x.view(), &y, 3, 5).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.to_bytes() == b.to_bytes(), "same seed, same forest");
        let c = p.fit(x.view(), &y, 3, 6).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.to_bytes() != c.to_bytes(), "another seed, another forest");
        let back = Forest::from_bytes(&a.to_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert!(back.predict_proba(x.view()) == a.predict_proba(x.view()));
    }

    #[test]
    fn corrupt_bytes_are_errors() {
        let (x, y) = data(500, 4);
        let f =
            ForestParams { trees: 3, ..Default::default() }.fit(x.view(), &y, 3, 1).unwrap_or_else(|e| panic!("{e}"));
        let mut bad = f.clone();
        bad.right[0] = 0; // a loop
        assert!(Forest::from_bytes(&bad.to_bytes()).is_err());
        let mut bad = f.clone();
        bad.feature[0] = 99;
        assert!(Forest::from_bytes(&bad.to_bytes()).is_err());
        let bytes = f.to_bytes();
        assert!(Forest::from_bytes(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn balanced_weights_find_a_rare_class() {
        // 1 % of rows are class 1, in a corner; unweighted, a shallow forest
        // would call the corner benign.
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let x = Array2::from_shape_fn((5000, 3), |_| r.gen_range(0.0f32..1.0));
        let y: Vec<u16> = x.outer_iter().map(|row| u16::from(row[0] > 0.9 && row[1] > 0.9)).collect();
        let corner = ndarray::arr2(&[[0.95f32, 0.95, 0.5]]);
        let p = ForestParams { trees: 20, max_depth: 2, ..Default::default() };
        let f = p.fit(x.view(), &y, 2, 3).unwrap_or_else(|e| panic!("{e}"));
        let q = f.predict_proba(corner.view());
        assert!(q[1] > 0.5, "the rare class wins in its corner: {q:?}");
        let plain = ForestParams { balanced: false, ..p }.fit(x.view(), &y, 2, 3).unwrap_or_else(|e| panic!("{e}"));
        let q = plain.predict_proba(corner.view());
        assert!(q[1] < 0.5, "unweighted, the corner stays benign: {q:?}");
        let bad = ForestParams { trees: 0, max_depth: 0, ..Default::default() }.check();
        let msg = bad.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(msg.contains("trees") && msg.contains("max_depth"), "{msg}");
    }
}
