//! Local Outlier Factor (Breunig et al. 2000) in novelty mode, as
//! scikit-learn's `LocalOutlierFactor(novelty=True)`: the training rows (a
//! seeded sample of at most `reference` of them, duplicates removed) are the
//! reference set; a new row's LOF is the mean local reachability density of
//! its k nearest reference rows divided by its own. ≈ 1 inside a cluster,
//! well above 1 for a row in a sparser region than its neighbours.
//!
//! Duplicates are removed because flow features repeat exactly (every DNS
//! query to one resolver looks alike): with more than k copies of a point its
//! k-distance is 0, its density infinite, and any row near it would get an
//! astronomically large LOF. scikit-learn warns about this case; we avoid it.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::knn::Reference;
use crate::tensors::{Reader, Writer};
use crate::{rng, subsample, DetectError, Detector, Kind};

const NAME: &str = "lof";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LofParams {
    /// Neighbours (scikit-learn's `n_neighbors`).
    pub k: usize,
    /// Training rows kept as the reference set at most (a seeded sample):
    /// scoring cost grows linearly with it.
    pub reference: usize,
}

impl Default for LofParams {
    fn default() -> Self {
        LofParams { k: 20, reference: 2048 }
    }
}

impl LofParams {
    pub fn check(&self) -> Result<(), DetectError> {
        let mut p = Vec::new();
        if !(1..=1000).contains(&self.k) {
            p.push(format!("k {} must be 1..=1000", self.k));
        }
        if self.reference <= self.k || self.reference > 1 << 20 {
            p.push(format!("reference {} must exceed k and be at most 1048576", self.reference));
        }
        DetectError::params(NAME, p)
    }

    pub fn fit(&self, x: ArrayView2<'_, f32>, seed: u64) -> Result<Lof, DetectError> {
        self.check()?;
        let mut r = rng(seed, 2);
        let picked = subsample(x.nrows(), self.reference, &mut r);
        let mut rows: Vec<Vec<u32>> = picked.iter().map(|&i| x.row(i).iter().map(|v| v.to_bits()).collect()).collect();
        rows.sort_unstable();
        rows.dedup();
        let m = rows.len();
        if m <= self.k {
            return Err(DetectError::TooFew { model: NAME, need: self.k + 1, got: m });
        }
        let d = x.ncols();
        let pts = Array2::from_shape_fn((m, d), |(i, j)| f32::from_bits(rows[i][j]));
        let reference = Reference::new(pts);
        let k = self.k;
        let (mut dist, mut idx) = (vec![0.0; m * k], vec![0u32; m * k]);
        reference.knn(reference.points.view(), k, true, &mut dist, &mut idx);
        let kdist: Vec<f32> = (0..m).map(|i| dist[i * k + k - 1]).collect();
        let lrd: Vec<f32> = (0..m).map(|i| density(&dist[i * k..][..k], &idx[i * k..][..k], &kdist)).collect();
        Ok(Lof { k, reference, kdist, lrd })
    }
}

/// Local reachability density from a row's neighbour distances: 1 / mean
/// reach-distance, with scikit-learn's 1e-10 guard.
fn density(dist: &[f32], idx: &[u32], kdist: &[f32]) -> f32 {
    let sum: f32 = dist.iter().zip(idx).map(|(d, j)| d.max(kdist[*j as usize])).sum();
    1.0 / (sum / dist.len() as f32 + 1e-10)
}

/// A fitted LOF: the reference rows, their k-distances and densities.
#[derive(Debug, Clone, PartialEq)]
pub struct Lof {
    k: usize,
    reference: Reference,
    kdist: Vec<f32>,
    lrd: Vec<f32>,
}

impl Lof {
    pub fn reference_rows(&self) -> usize {
        self.reference.len()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DetectError> {
        let r = Reader::new(NAME, bytes)?;
        let (_, meta) = r.u32("meta", &[Some(1)])?;
        let k = meta[0] as usize;
        let (s, pts) = r.f32("points", &[None, None])?;
        let (_, kdist) = r.f32("kdist", &[Some(s[0])])?;
        let (_, lrd) = r.f32("lrd", &[Some(s[0])])?;
        if k == 0 || s[0] <= k || s[1] == 0 {
            return Err(DetectError::corrupt(NAME, format!("k = {k} with {} reference rows", s[0])));
        }
        let pts = Array2::from_shape_vec((s[0], s[1]), pts).map_err(|e| DetectError::corrupt(NAME, e))?;
        Ok(Lof { k, reference: Reference::new(pts), kdist, lrd })
    }
}

impl Detector for Lof {
    fn kind(&self) -> Kind {
        Kind::Lof
    }

    fn width(&self) -> usize {
        self.reference.points.ncols()
    }

    fn score(&self, x: ArrayView2<'_, f32>, out: &mut [f32]) {
        let (n, k) = (x.nrows(), self.k);
        let (mut dist, mut idx) = (vec![0.0; n * k], vec![0u32; n * k]);
        self.reference.knn(x, k, false, &mut dist, &mut idx);
        for (i, o) in out.iter_mut().enumerate().take(n) {
            let (d, j) = (&dist[i * k..][..k], &idx[i * k..][..k]);
            let own = density(d, j, &self.kdist);
            let around: f32 = j.iter().map(|j| self.lrd[*j as usize]).sum::<f32>() / k as f32;
            *o = around / own;
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let p = &self.reference.points;
        Writer::default()
            .u32("meta", &[1], &[self.k as u32])
            .f32("points", &[p.nrows(), p.ncols()], p.as_slice().unwrap_or(&[]))
            .f32("kdist", &[self.kdist.len()], &self.kdist)
            .f32("lrd", &[self.lrd.len()], &self.lrd)
            .finish()
    }
}
