//! One-Class SVM (Schölkopf et al. 2001) with an RBF kernel: the smallest
//! region holding a 1 − ν share of the training rows. linfa-svm's SMO solver
//! fits it; the solver builds the full n × n kernel matrix, so it trains on a
//! seeded sample of at most `max_train` rows (3,000 → 72 MB in f64, fitted in
//! seconds; see BENCHMARKS.md). The fitted model keeps only the support
//! vectors and their weights; scoring is ours, batched through the same
//! distance SGEMM as LOF: score = ρ − Σ αᵢ exp(−γ‖x − svᵢ‖²), > 0 outside
//! the learned support (higher = more anomalous).

use linfa::prelude::*;
use linfa::DatasetBase;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::knn::Reference;
use crate::tensors::{Reader, Writer};
use crate::{rng, subsample, DetectError, Detector, Kind};

const NAME: &str = "ocsvm";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OcsvmParams {
    /// Upper bound on the share of training rows outside the support.
    pub nu: f64,
    /// RBF γ; `None` = scikit-learn's `gamma="scale"`: 1 / (features × variance of X).
    pub gamma: Option<f64>,
    /// Training rows at most (a seeded sample): the solver is O(n²) in memory.
    pub max_train: usize,
}

impl Default for OcsvmParams {
    fn default() -> Self {
        OcsvmParams { nu: 0.05, gamma: None, max_train: 3000 }
    }
}

impl OcsvmParams {
    pub fn check(&self) -> Result<(), DetectError> {
        let mut p = Vec::new();
        if !(self.nu > 0.0 && self.nu <= 1.0) {
            p.push(format!("nu {} must be in (0, 1]", self.nu));
        }
        if let Some(g) = self.gamma {
            if !(g > 0.0 && g.is_finite()) {
                p.push(format!("gamma {g} must be positive"));
            }
        }
        if !(10..=20_000).contains(&self.max_train) {
            p.push(format!("max_train {} must be 10..=20000 (the kernel matrix is n²)", self.max_train));
        }
        DetectError::params(NAME, p)
    }

    pub fn fit(&self, x: ArrayView2<'_, f32>, seed: u64) -> Result<Ocsvm, DetectError> {
        self.check()?;
        if x.nrows() < 10 {
            return Err(DetectError::TooFew { model: NAME, need: 10, got: x.nrows() });
        }
        let mut r = rng(seed, 3);
        let picked = subsample(x.nrows(), self.max_train, &mut r);
        let d = x.ncols();
        let train = Array2::from_shape_fn((picked.len(), d), |(i, j)| f64::from(x[[picked[i], j]]));
        let gamma = self.gamma.unwrap_or_else(|| {
            let var = train.var(0.0);
            if var > 0.0 {
                1.0 / (d as f64 * var)
            } else {
                1.0
            }
        });
        let ds = DatasetBase::from(train.clone());
        let model = linfa_svm::Svm::<f64, linfa::dataset::Pr>::params()
            .nu_weight(self.nu)
            .gaussian_kernel(1.0 / gamma)
            .fit(&ds)
            .map_err(|e| DetectError::Fit { model: NAME, reason: e.to_string() })?;
        // linfa keeps, in training-row order, the rows whose weight is above
        // 100 ε; the same rule picks our support vectors.
        let keep: Vec<usize> =
            (0..model.alpha.len()).filter(|i| model.alpha[*i].abs() > 100.0 * f64::EPSILON).collect();
        if keep.is_empty() {
            return Err(DetectError::Fit { model: NAME, reason: "no support vectors".into() });
        }
        let sv = Array2::from_shape_fn((keep.len(), d), |(i, j)| train[[keep[i], j]] as f32);
        let alpha = keep.iter().map(|i| model.alpha[*i] as f32).collect();
        Ok(Ocsvm { sv: Reference::new(sv), alpha, rho: model.rho as f32, gamma: gamma as f32 })
    }
}

/// A fitted One-Class SVM: support vectors, weights, offset, γ.
#[derive(Debug, Clone, PartialEq)]
pub struct Ocsvm {
    sv: Reference,
    alpha: Vec<f32>,
    rho: f32,
    gamma: f32,
}

impl Ocsvm {
    pub fn support_vectors(&self) -> usize {
        self.alpha.len()
    }

    /// Σ αᵢ K(x, svᵢ) for every row (linfa's `weighted_sum`), for tests.
    pub fn decision(&self, x: ArrayView2<'_, f32>) -> Vec<f32> {
        let mut out = vec![0.0; x.nrows()];
        self.sv.for_each_distances(x, |i, d| {
            out[i] = d.iter().zip(&self.alpha).map(|(d, a)| a * (-self.gamma * d.max(0.0)).exp()).sum::<f32>();
        });
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DetectError> {
        let r = Reader::new(NAME, bytes)?;
        let (s, sv) = r.f32("support_vectors", &[None, None])?;
        let (_, alpha) = r.f32("alpha", &[Some(s[0])])?;
        let (rho, gamma) = (r.scalar("rho")?, r.scalar("gamma")?);
        if s[0] == 0 || s[1] == 0 || gamma <= 0.0 {
            return Err(DetectError::corrupt(NAME, "no support vectors or γ ≤ 0"));
        }
        let sv = Array2::from_shape_vec((s[0], s[1]), sv).map_err(|e| DetectError::corrupt(NAME, e))?;
        Ok(Ocsvm { sv: Reference::new(sv), alpha, rho, gamma })
    }
}

impl Detector for Ocsvm {
    fn kind(&self) -> Kind {
        Kind::Ocsvm
    }

    fn width(&self) -> usize {
        self.sv.points.ncols()
    }

    fn score(&self, x: ArrayView2<'_, f32>, out: &mut [f32]) {
        for (o, v) in out.iter_mut().zip(self.decision(x)) {
            *o = self.rho - v;
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let p = &self.sv.points;
        Writer::default()
            .f32("support_vectors", &[p.nrows(), p.ncols()], p.as_slice().unwrap_or(&[]))
            .f32("alpha", &[self.alpha.len()], &self.alpha)
            .f32("rho", &[1], &[self.rho])
            .f32("gamma", &[1], &[self.gamma])
            .finish()
    }
}
