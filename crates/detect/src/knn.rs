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
    pub fn for_each_distances(&self, q: ArrayView2<'_, f32>, mut f: impl FnMut(usize, &[f32])) {
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
        if k == 0 {
            return;
        }
        let by_distance = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
        let mut mins: Vec<f32> = Vec::new();
        self.for_each_distances(q, |i, row| {
            best.clear();
            // Only rows nearer than the current k-th reach the sorted insert.
            // Over a random order that would be ~k·(1 + ln(m/k)) rows, and
            // the insert's binary search and shift were a third of `detect`'s
            // time on flows; so the scan starts from a bound instead: the
            // k-th smallest of the minima of blocks of eight is at least the
            // k-th smallest distance (k blocks each hold one at most that
            // far), and few rows beat it. Collecting candidates unsorted and
            // selecting every 2k, and an unordered best-k with a scan for the
            // worst, were both measured slower than this sorted insert.
            let mut worst = f32::INFINITY;
            let skip_self = |c: usize| exclude_self && i / 8 == c;
            mins.clear();
            mins.extend(row.chunks_exact(8).enumerate().map(|(c, ch)| {
                if skip_self(c) {
                    f32::INFINITY
                } else {
                    ch.iter().fold(f32::INFINITY, |m, &d| if d < m { d } else { m })
                }
            }));
            if mins.len() >= k {
                worst = *mins.select_nth_unstable_by(k - 1, f32::total_cmp).1;
            }
            // Until k rows are in, `worst` is the bound, and a row exactly at it counts.
            let mut consider = |j: usize, d: f32, worst: &mut f32| {
                if (d < *worst || (d == *worst && best.len() < k)) && !(exclude_self && j == i) {
                    let pos = best.partition_point(|b| b.0 <= d);
                    best.insert(pos, (d, j as u32));
                    if best.len() > k {
                        best.pop();
                    }
                    if best.len() == k {
                        *worst = best[k - 1].0;
                    }
                }
            };
            // Eight rows at a time: one vector compare tells whether any of
            // them is nearer than the current k-th; most blocks are skipped.
            let chunks = row.chunks_exact(8);
            let tail = chunks.remainder();
            for (c, chunk) in chunks.enumerate() {
                if chunk.iter().fold(false, |any, &d| any | (d <= worst)) {
                    for (o, &d) in chunk.iter().enumerate() {
                        consider(c * 8 + o, d, &mut worst);
                    }
                }
            }
            let base = row.len() - tail.len();
            for (o, &d) in tail.iter().enumerate() {
                consider(base + o, d, &mut worst);
            }
            // The expansion above loses precision to cancellation (two equal
            // rows can come out ~1e-3 apart); recompute the few chosen
            // distances directly, so an exact duplicate is exactly 0 — LOF
            // depends on that — and order them again.
            let query = q.row(i);
            for b in best.iter_mut() {
                b.0 = sq_dist(query, self.points.row(b.1 as usize));
            }
            best.sort_by(by_distance);
            for (n, (d, j)) in best.iter().enumerate() {
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
}
