//! Isolation Forest (Liu, Ting & Zhou 2008) with scikit-learn's semantics:
//! `n_estimators` trees, each grown on `max_samples` rows drawn without
//! replacement, to depth ⌈log2 max_samples⌉; a split picks a random feature
//! that is not constant in the node and a threshold uniform between its min
//! and max there (rows `<=` go left); a row's path length is its leaf depth
//! plus c(leaf size), and the score is 2^(−E[h] / c(max_samples)) — 0.5 for
//! average rows, near 1 for outliers.
//!
//! Written here: the Rust crates we found either allocate a boxed node per
//! split or score one row at a time through pointers. This one stores each
//! tree as flat arrays in preorder (left child = next node) and scores a batch
//! tree by tree, so one tree (≤ 511 nodes, 6 KB) stays in L1 while rows stream
//! past. For scoring, each tree is also laid out padded to a complete binary
//! tree (see [`Complete`]), walked without branches eight rows at a time
//! (BENCHMARKS.md has the throughput).

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::tensors::{Reader, Writer};
use crate::{rng, subsample, DetectError, Detector, Kind};

const NAME: &str = "iforest";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IforestParams {
    pub n_estimators: usize,
    pub max_samples: usize,
}

impl Default for IforestParams {
    fn default() -> Self {
        IforestParams { n_estimators: 100, max_samples: 256 }
    }
}

/// Marks a leaf in `feature`.
const LEAF: u32 = u32::MAX;

/// Average path length of an unsuccessful search in a binary search tree of
/// `n` nodes: the depth a leaf of `n` rows would have grown to — the paper's
/// c(n), which normalises path lengths into scores.
pub fn average_path(n: usize) -> f32 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            (2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n) as f32
        }
    }
}

impl IforestParams {
    pub fn check(&self) -> Result<(), DetectError> {
        let mut p = Vec::new();
        if !(1..=10_000).contains(&self.n_estimators) {
            p.push(format!("n_estimators {} must be 1..=10000", self.n_estimators));
        }
        if !(2..=1 << 20).contains(&self.max_samples) {
            p.push(format!("max_samples {} must be 2..=1048576", self.max_samples));
        }
        DetectError::params(NAME, p)
    }

    pub fn fit(&self, x: ArrayView2<'_, f32>, seed: u64) -> Result<Iforest, DetectError> {
        self.check()?;
        let n = x.nrows();
        if n < 2 {
            return Err(DetectError::TooFew { model: NAME, need: 2, got: n });
        }
        let psi = self.max_samples.min(n);
        let max_depth = (psi as f64).log2().ceil() as u32;
        let mut r = rng(seed, 1);
        let mut f = Iforest {
            width: x.ncols(),
            psi,
            roots: Vec::new(),
            feature: Vec::new(),
            value: Vec::new(),
            right: Vec::new(),
            complete: None,
        };
        let mut work = Vec::new();
        for _ in 0..self.n_estimators {
            f.roots.push(f.feature.len() as u32);
            let mut rows = subsample(n, psi, &mut r);
            grow(&mut f, x, &mut rows, 0, max_depth, &mut r, &mut work);
        }
        f.complete = Complete::build(&f);
        Ok(f)
    }
}

/// Grows the subtree of `rows` in preorder.
fn grow(
    f: &mut Iforest,
    x: ArrayView2<'_, f32>,
    rows: &mut [usize],
    depth: u32,
    max_depth: u32,
    r: &mut impl Rng,
    work: &mut Vec<usize>,
) {
    let me = f.feature.len();
    if depth >= max_depth || rows.len() <= 1 {
        f.feature.push(LEAF);
        f.value.push(depth as f32 + average_path(rows.len()));
        f.right.push(0);
        return;
    }
    // A random feature among those not constant here, as scikit-learn draws
    // until it finds one; when all are constant the node is a leaf.
    work.clear();
    work.extend(0..x.ncols());
    let split = loop {
        if work.is_empty() {
            break None;
        }
        let k = r.gen_range(0..work.len());
        let j = work.swap_remove(k);
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &i in rows.iter() {
            let v = x[[i, j]];
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi > lo {
            let t = lo + (hi - lo) * r.gen::<f32>();
            // Guard the float edge: a threshold equal to `hi` would send every row left.
            break Some((j, if t >= hi { lo } else { t }));
        }
    };
    let Some((j, t)) = split else {
        f.feature.push(LEAF);
        f.value.push(depth as f32 + average_path(rows.len()));
        f.right.push(0);
        return;
    };
    f.feature.push(j as u32);
    f.value.push(t);
    f.right.push(0);
    // Partition in place: `<= t` first.
    let mut m = 0;
    for k in 0..rows.len() {
        if x[[rows[k], j]] <= t {
            rows.swap(k, m);
            m += 1;
        }
    }
    let (left, right) = rows.split_at_mut(m);
    grow(f, x, left, depth + 1, max_depth, r, work);
    f.right[me] = f.feature.len() as u32;
    grow(f, x, right, depth + 1, max_depth, r, work);
}

/// A fitted forest: all trees' nodes in flat arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct Iforest {
    width: usize,
    psi: usize,
    /// First node of each tree.
    roots: Vec<u32>,
    /// Split feature, or [`LEAF`].
    feature: Vec<u32>,
    /// Split threshold; at a leaf, depth + c(leaf rows).
    value: Vec<f32>,
    /// Right child of a split (the left child is the next node).
    right: Vec<u32>,
    /// The same trees padded for branch-free scoring; `None` when they are
    /// too deep to pad (a `max_samples` above 4,096).
    complete: Option<Complete>,
}

/// Deepest tree padded to a complete one: 2^12 leaves, 48 KB per tree.
const MAX_COMPLETE_DEPTH: u32 = 12;

/// Every tree as a complete binary tree of one depth, in breadth-first order
/// (the children of split `i` are `2i + 1` and `2i + 2`). A leaf that stopped
/// early fills all the leaves below its place with its value, so whichever
/// way the padding splits send a row it ends with the right path length.
/// Scoring is then a fixed number of steps with no branch to mispredict, and
/// eight rows walk a tree in lockstep so their loads overlap. Measured with
/// `cargo bench -p flowhound-detect --bench score` (100 trees, 256 rows each,
/// 56 columns): 257 k → see BENCHMARKS.md rows/s on one core.
#[derive(Debug, Clone, PartialEq)]
struct Complete {
    depth: u32,
    /// (feature, threshold) of each tree's 2^depth − 1 splits, tree after tree.
    splits: Vec<(u32, f32)>,
    /// Each tree's 2^depth leaf values (depth + c(leaf rows)), tree after tree.
    leaves: Vec<f32>,
}

impl Complete {
    fn build(f: &Iforest) -> Option<Complete> {
        // Depth of every tree, iteratively: a corrupt file may chain nodes
        // far deeper than any stack.
        let mut depth = 0u32;
        let mut stack = Vec::new();
        for &root in &f.roots {
            stack.push((root as usize, 0u32));
            while let Some((i, d)) = stack.pop() {
                if d > MAX_COMPLETE_DEPTH {
                    return None;
                }
                depth = depth.max(d);
                if f.feature[i] != LEAF {
                    stack.push((i + 1, d + 1));
                    stack.push((f.right[i] as usize, d + 1));
                }
            }
        }
        let (n_split, n_leaf) = ((1usize << depth) - 1, 1usize << depth);
        let mut c = Complete {
            depth,
            splits: vec![(0, 0.0); n_split * f.roots.len()],
            leaves: vec![0.0; n_leaf * f.roots.len()],
        };
        for (t, &root) in f.roots.iter().enumerate() {
            let (splits, leaves) =
                (&mut c.splits[t * n_split..(t + 1) * n_split], &mut c.leaves[t * n_leaf..(t + 1) * n_leaf]);
            // (node, its place in the complete tree)
            let mut stack = vec![(root as usize, 0usize)];
            let level_of = |p: usize| usize::BITS - 1 - (p + 1).leading_zeros();
            while let Some((i, p)) = stack.pop() {
                if f.feature[i] == LEAF {
                    // Leaves below place p at the last level: a run of 2^(depth − level).
                    let level = level_of(p);
                    let span = 1usize << (depth - level);
                    let first = (p + 1 - (1 << level)) * span;
                    leaves[first..first + span].fill(f.value[i]);
                } else {
                    splits[p] = (f.feature[i], f.value[i]);
                    stack.push((i + 1, 2 * p + 1));
                    stack.push((f.right[i] as usize, 2 * p + 2));
                }
            }
        }
        Some(c)
    }

    /// Adds each row's path length in every tree to `sums`.
    fn add_path_lengths(&self, rows: &[&[f32]], sums: &mut [f32]) {
        let (n_split, n_leaf) = ((1usize << self.depth) - 1, 1usize << self.depth);
        for (splits, leaves) in self.splits.chunks_exact(n_split.max(1)).zip(self.leaves.chunks_exact(n_leaf)) {
            for (rows, sums) in rows.chunks(LOCKSTEP).zip(sums.chunks_mut(LOCKSTEP)) {
                let mut at = [0usize; LOCKSTEP];
                for _ in 0..self.depth {
                    for (a, row) in at.iter_mut().zip(rows) {
                        let (j, t) = splits[*a];
                        // Left on `x <= t`, so NaN goes right, as in the preorder walk.
                        *a = 2 * *a + 2 - usize::from(row[j as usize] <= t);
                    }
                }
                for (s, a) in sums.iter_mut().zip(&at) {
                    *s += leaves[*a - n_split];
                }
            }
        }
    }
}

/// Rows walking a tree together (measured: 8 → 646 k rows/s, 16 → 572 k;
/// blocks of 128 rows passing every tree in turn instead of tree-major → 442 k).
const LOCKSTEP: usize = 8;

impl Iforest {
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Mean path length of one row over all trees.
    pub fn path_length(&self, row: &[f32]) -> f32 {
        let mut sum = 0.0;
        for &root in &self.roots {
            sum += self.leaf_value(root as usize, row);
        }
        sum / self.roots.len() as f32
    }

    #[inline]
    fn leaf_value(&self, mut i: usize, row: &[f32]) -> f32 {
        loop {
            let j = self.feature[i];
            if j == LEAF {
                return self.value[i];
            }
            i = if row[j as usize] <= self.value[i] { i + 1 } else { self.right[i] as usize };
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DetectError> {
        let r = Reader::new(NAME, bytes)?;
        let (_, meta) = r.u32("meta", &[Some(2)])?;
        let (width, psi) = (meta[0] as usize, meta[1] as usize);
        let (_, roots) = r.u32("roots", &[None])?;
        let (s, feature) = r.u32("feature", &[None])?;
        let (_, value) = r.f32("value", &[Some(s[0])])?;
        let (_, right) = r.u32("right", &[Some(s[0])])?;
        let n = feature.len();
        // Every index must stay inside the arrays and every split must point
        // forward, so a corrupt file can neither panic nor loop.
        let nodes_ok = (0..n).all(|i| {
            feature[i] == LEAF
                || ((feature[i] as usize) < width
                    && i + 1 < n
                    && (right[i] as usize) > i + 1
                    && (right[i] as usize) < n)
        });
        if roots.is_empty() || psi < 2 || roots.iter().any(|r| *r as usize >= n) || !nodes_ok {
            return Err(DetectError::corrupt(NAME, "tree structure is inconsistent"));
        }
        let mut f = Iforest { width, psi, roots, feature, value, right, complete: None };
        f.complete = Complete::build(&f);
        Ok(f)
    }
}

impl Detector for Iforest {
    fn kind(&self) -> Kind {
        Kind::Iforest
    }

    fn width(&self) -> usize {
        self.width
    }

    fn score(&self, x: ArrayView2<'_, f32>, out: &mut [f32]) {
        let norm = average_path(self.psi);
        let x = x.as_standard_layout();
        let rows: Vec<&[f32]> = x.outer_iter().map(|r| r.to_slice().unwrap_or(&[])).collect();
        let mut sums = vec![0.0f32; rows.len()];
        if let Some(c) = &self.complete {
            c.add_path_lengths(&rows, &mut sums);
        } else {
            // Tree-major: one tree's nodes stay in cache while the rows pass.
            for &root in &self.roots {
                for (s, row) in sums.iter_mut().zip(&rows) {
                    *s += self.leaf_value(root as usize, row);
                }
            }
        }
        let trees = self.roots.len() as f32;
        for (o, s) in out.iter_mut().zip(sums) {
            *o = 2f32.powf(-(s / trees) / norm);
        }
    }

    /// Path attribution: in every tree, each split on the row's path
    /// credits its feature with how far the row lies past the cut,
    /// |x_j − t| (model input is standardized, so columns compare), divided
    /// by the path's length so short paths (the anomalous case) weigh most.
    /// Summed over trees. Measured on a row 8 standard deviations out in one
    /// of 8 columns: equal credit per split gave that column 18 % of the
    /// weight, credit to the last split only 32 %, distance past the cut the
    /// most (see the detectors test). A simplification of DIFFI (Carletti et
    /// al., 2023), which needs node sizes the saved model does not keep.
    fn attribute(&self, x: ArrayView2<'_, f32>) -> Option<Array2<f32>> {
        let mut out = Array2::zeros((x.nrows(), self.width));
        let mut path = Vec::with_capacity(32);
        for (row, mut o) in x.outer_iter().zip(out.outer_iter_mut()) {
            let row = row.to_vec();
            for &root in &self.roots {
                path.clear();
                let mut i = root as usize;
                let len = loop {
                    let j = self.feature[i];
                    if j == LEAF {
                        break self.value[i];
                    }
                    path.push((j as usize, (row[j as usize] - self.value[i]).abs()));
                    i = if row[j as usize] <= self.value[i] { i + 1 } else { self.right[i] as usize };
                };
                let w = 1.0 / len.max(1.0);
                for &(j, past) in &path {
                    o[j] += past * w;
                }
            }
        }
        Some(out)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let n = self.feature.len();
        Writer::default()
            .u32("meta", &[2], &[self.width as u32, self.psi as u32])
            .u32("roots", &[self.roots.len()], &self.roots)
            .u32("feature", &[n], &self.feature)
            .f32("value", &[n], &self.value)
            .u32("right", &[n], &self.right)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The padded layout gives every row exactly the preorder walk's path
    /// lengths — NaN rows, early leaves and duplicate rows included.
    #[test]
    fn complete_layout_matches_the_preorder_walk() {
        let mut x = Array2::from_shape_fn((5000, 5), |(i, j)| ((i * 37 + j * 11) % 101) as f32 / 7.0);
        // Duplicates stop a branch early (all columns constant), so leaves sit at many depths.
        for i in 0..200 {
            x.row_mut(i).fill(1.0);
        }
        for (psi, depth) in [(256, Some(8)), (100, Some(7)), (5000, None)] {
            let f = IforestParams { n_estimators: 30, max_samples: psi }.fit(x.view(), 3).expect("fit");
            assert_eq!(f.complete.as_ref().map(|c| c.depth), depth, "max_samples {psi}");
            let mut q = Array2::from_shape_fn((77, 5), |(i, j)| ((i * 13 + j * 5) % 89) as f32 / 6.0 - 1.0);
            q[[3, 2]] = f32::NAN;
            q.row_mut(4).fill(1.0);
            let mut got = vec![0.0; q.nrows()];
            f.score(q.view(), &mut got);
            for (i, row) in q.outer_iter().enumerate() {
                let want = 2f32.powf(-f.path_length(&row.to_vec()) / average_path(f.psi));
                assert!((got[i] - want).abs() < 1e-6, "max_samples {psi} row {i}: {} vs {want}", got[i]);
            }
            // The padded layout is rebuilt on load.
            let back = Iforest::from_bytes(&f.to_bytes()).expect("load");
            assert_eq!(back, f);
        }
    }
}
