//! Exact nearest neighbours by brute force through one matrix product:
//! ‖q − r‖² = ‖q‖² + ‖r‖² − 2 q·r, with q·r for a block of queries against all
//! reference rows as one SGEMM (ndarray → matrixmultiply, SIMD-dispatched).
//!
//! Why not a tree: our rows have ~40–70 dimensions, where k-d and ball trees
//! visit most leaves anyway. A block of 64 queries against 5,000 reference rows
//! is 20 MFLOP of SGEMM, far cheaper than 64 tree walks — see BENCHMARKS.md.
//! Also serves the One-Class SVM, whose RBF kernel needs the same distances.

use ndarray::{Array2, ArrayView1, ArrayView2, Axis, Slice};

/// Queries per block. SGEMM packs the whole reference once per call, so a
/// larger block pays that less often: 64 → 256 took `detect` on 1M generated
/// flows from 18.2–19.2 s to 16.4–16.7 s (a 2,048-row LOF reference; 512
/// measured slower on the benchmark blobs).
const BLOCK: usize = 256;

/// Rows per group in the neighbour selection.
const GROUP: usize = 8;

/// Reference rows with their squared norms.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub points: Array2<f32>,
    norms: Vec<f32>,
}

fn sq_norms(x: ArrayView2<'_, f32>) -> Vec<f32> {
    x.outer_iter().map(|r| r.dot(&r)).collect()
}

/// ‖a − b‖², summed over eight lanes so it vectorizes.
fn sq_dist(a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>) -> f32 {
    let (Some(a), Some(b)) = (a.as_slice(), b.as_slice()) else {
        return a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    };
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| (x - y) * (x - y)).sum();
    for (x, y) in ca.zip(cb) {
        for ((l, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *l += (x - y) * (x - y);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

impl Reference {
    pub fn new(points: Array2<f32>) -> Self {
        let norms = sq_norms(points.view());
        Reference { points, norms }
    }

    pub fn len(&self) -> usize {
        self.points.nrows()
    }

    pub fn is_empty(&self) -> bool {
        self.points.nrows() == 0
    }

    /// Calls `f(query index, squared distances to every reference row)` for
    /// each query row, a block at a time.
    pub fn for_each_distances(&self, q: ArrayView2<'_, f32>, mut f: impl FnMut(usize, &mut [f32])) {
        let rt = self.points.t();
        for start in (0..q.nrows()).step_by(BLOCK) {
            let end = (start + BLOCK).min(q.nrows());
            let block = q.slice_axis(Axis(0), Slice::from(start..end));
            let qn = sq_norms(block);
            let mut d = block.dot(&rt);
            for (i, mut row) in d.axis_iter_mut(Axis(0)).enumerate() {
                // Plain arithmetic so it vectorizes; rounding can leave a true
                // zero slightly negative, which callers clamp where it matters.
                let q = qn[i];
                let Some(row) = row.as_slice_mut() else { continue };
                for (v, rn) in row.iter_mut().zip(&self.norms) {
                    *v = q + rn - 2.0 * *v;
                }
                f(start + i, row);
            }
        }
    }

    /// The `k` nearest reference rows of every query, nearest first: Euclidean
    /// distances into `dist` and indices into `idx` (`k` per query). With
    /// `exclude_self`, query `i` is reference row `i` and is skipped
    /// (training-set neighbourhoods).
    pub fn knn(&self, q: ArrayView2<'_, f32>, k: usize, exclude_self: bool, dist: &mut [f32], idx: &mut [u32]) {
        let m = self.len();
        if k == 0 || m == 0 {
            return;
        }
        let by_distance = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        // Rows in groups of eight, group c holding rows c, c + g, c + 2g, …:
        // strided, so the groups' minima are an element-wise minimum of eight
        // contiguous slices (vector instructions), not a horizontal one per
        // group. The k-th smallest group minimum `b` is at least the k-th
        // smallest distance (k groups each hold one at most that far), so
        // the k nearest are among the rows at most `b` — a few dozen, found
        // in the groups whose minimum is at most `b`. They are selected
        // unsorted. This replaced a scan of every row with a sorted insert
        // of each row nearer than the current k-th: the selection was 60 %
        // of a LOF query and the distances' SGEMM only 40 % (BENCHMARKS.md).
        let groups = m.div_ceil(GROUP);
        let mut mins = vec![0.0f32; groups];
        let mut sel: Vec<f32> = Vec::with_capacity(groups);
        let mut cand: Vec<(f32, u32)> = Vec::new();
        self.for_each_distances(q, |i, row| {
            // Out of the group minima (so `b` bounds the others), and out of
            // the candidates even when `b` is infinite (fewer groups than k).
            let skip = |j: usize| exclude_self && j == i;
            if exclude_self && i < row.len() {
                row[i] = f32::INFINITY;
            }
            mins.copy_from_slice(&row[..groups]);
            for part in row[groups..].chunks(groups) {
                // A select, not a conditional store, so it compiles to `minps`.
                for (mn, &d) in mins.iter_mut().zip(part) {
                    *mn = if d < *mn { d } else { *mn };
                }
            }
            let b = if groups >= k {
                sel.clone_from(&mins);
                *sel.select_nth_unstable_by(k - 1, f32::total_cmp).1
            } else {
                f32::INFINITY
            };
            cand.clear();
            for (c, &mn) in mins.iter().enumerate() {
                if mn <= b {
                    for j in (c..m).step_by(groups) {
                        if row[j] <= b && !skip(j) {
                            cand.push((row[j], j as u32));
                        }
                    }
                }
            }
            if cand.len() > k {
                cand.select_nth_unstable_by(k - 1, by_distance);
                cand.truncate(k);
            }
            // The expansion loses precision to cancellation (two equal
            // rows can come out ~1e-3 apart); recompute the few chosen
            // distances directly, so an exact duplicate is exactly 0 — LOF
            // depends on that — and order them again.
            let query = q.row(i);
            for c in cand.iter_mut() {
                c.0 = sq_dist(query, self.points.row(c.1 as usize));
            }
            cand.sort_by(by_distance);
            for (n, (d, j)) in cand.iter().enumerate() {
                dist[i * k + n] = d.sqrt();
                idx[i * k + n] = *j;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_search() {
        let pts = Array2::from_shape_fn((300, 7), |(i, j)| ((i * 31 + j * 17) % 97) as f32 / 9.0);
        let q = Array2::from_shape_fn((130, 7), |(i, j)| ((i * 13 + j * 7) % 89) as f32 / 8.0);
        let r = Reference::new(pts.clone());
        let k = 5;
        let (mut d, mut ix) = (vec![0.0; 130 * k], vec![0u32; 130 * k]);
        r.knn(q.view(), k, false, &mut d, &mut ix);
        for i in 0..130 {
            let mut all: Vec<f32> = pts
                .outer_iter()
                .map(|p| p.iter().zip(q.row(i)).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt())
                .collect();
            all.sort_by(f32::total_cmp);
            assert_eq!(d[i * k], all[0], "query {i}: the nearest distance is computed directly");
            for n in 0..k {
                assert!(
                    (d[i * k + n] - all[n]).abs() < 1e-5,
                    "query {i} neighbour {n}: {} vs {}",
                    d[i * k + n],
                    all[n]
                );
            }
        }
    }

    #[test]
    fn training_neighbourhoods_skip_the_row_itself_and_keep_ties_in_index_order() {
        // 203 pseudo-random rows (not a multiple of the group size), every
        // fourth one a copy of the row before: ties at distance 0, and
        // between copies of a row.
        let mut seed = 5u64;
        let mut pts = Array2::from_shape_fn((203, 9), |_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 3.0
        });
        for i in (3..203).step_by(4) {
            let prev = pts.row(i - 1).to_owned();
            pts.row_mut(i).assign(&prev);
        }
        let r = Reference::new(pts.clone());
        let k = 6;
        let (mut d, mut ix) = (vec![0.0; 203 * k], vec![0u32; 203 * k]);
        r.knn(pts.view(), k, true, &mut d, &mut ix);
        for i in 0..203 {
            let mut all: Vec<(f32, u32)> =
                (0..203).filter(|&j| j != i).map(|j| (sq_dist(pts.row(i), pts.row(j)), j as u32)).collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let want: Vec<(f32, u32)> = all[..k].iter().map(|(d, j)| (d.sqrt(), *j)).collect();
            let got: Vec<(f32, u32)> = (0..k).map(|n| (d[i * k + n], ix[i * k + n])).collect();
            assert_eq!(got, want, "row {i}");
            assert!(!got.iter().any(|(_, j)| *j as usize == i), "row {i} is not its own neighbour");
        }
        // A copy's nearest neighbour is its twin, at exactly 0.
        assert_eq!((d[3 * k], ix[3 * k]), (0.0, 2));
    }
}
