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
//! past (BENCHMARKS.md has the throughput).

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
/// `n` nodes: the depth a leaf of `n` rows would have grown to.
pub fn c(n: usize) -> f32 {
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
        };
        let mut work = Vec::new();
        for _ in 0..self.n_estimators {
            f.roots.push(f.feature.len() as u32);
            let mut rows = subsample(n, psi, &mut r);
            grow(&mut f, x, &mut rows, 0, max_depth, &mut r, &mut work);
        }
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
        f.value.push(depth as f32 + c(rows.len()));
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
        f.value.push(depth as f32 + c(rows.len()));
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
}

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
        Ok(Iforest { width, psi, roots, feature, value, right })
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
        let norm = c(self.psi);
        let x = x.as_standard_layout();
        let rows: Vec<&[f32]> = x.outer_iter().map(|r| r.to_slice().unwrap_or(&[])).collect();
        let mut sums = vec![0.0f32; rows.len()];
        // Tree-major: one tree's nodes stay in cache while the rows pass.
        for &root in &self.roots {
            for (s, row) in sums.iter_mut().zip(&rows) {
                *s += self.leaf_value(root as usize, row);
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
