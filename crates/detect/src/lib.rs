//! Anomaly detectors, the ensemble that combines their votes, and the model
//! bundle that saves all of it.
//!
//! Every detector follows one shape: a params type validated by `check()`
//! (listing every problem), `fit` on a matrix of preprocessed features (rows
//! = flows, row-major `f32`) with an explicit seed, and a fitted model that
//! scores batches — **higher score = more anomalous** for every model. Same
//! seed and data give the same model, byte for byte once saved.
//!
//! | detector | file | idea |
//! |---|---|---|
//! | Isolation Forest | [`iforest`] | short random-split paths isolate outliers (written here: no crate was good enough) |
//! | Local Outlier Factor | [`lof`] | density of a flow vs its 20 nearest training neighbours (novelty mode) |
//! | One-Class SVM | [`ocsvm`] | RBF support of the training data (linfa-svm's SMO on a subsample) |
//! | Autoencoder | [`autoencoder`] | reconstruction error of a small dense network (candle) |
//!
//! [`ensemble`] calibrates each model's scores on its training scores,
//! flags above a contamination quantile, votes and ranks; [`bundle`] writes
//! and reads the model folder.

pub mod autoencoder;
pub mod bundle;
pub mod calibrate;
pub mod ensemble;
pub mod forest;
pub mod iforest;
pub mod knn;
pub mod lof;
pub mod metrics;
pub mod ocsvm;
pub mod run;
pub mod sample;
mod tensors;

use std::fmt::Debug;

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

pub use bundle::{Bundle, BundleError, TrainingSummary};
pub use ensemble::{Ensemble, EnsembleParams, Severity, Verdict};
pub use run::{Batch, Batches, Feedback, Holdout, Scorer, TrainReport, Trainer};

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("invalid {model} parameters: {}", .problems.join("; "))]
    Params { model: &'static str, problems: Vec<String> },
    #[error("{model}: need at least {need} training rows, got {got}")]
    TooFew { model: &'static str, need: usize, got: usize },
    #[error("{model}: training failed: {reason}")]
    Fit { model: &'static str, reason: String },
    #[error("{model}: saved model is corrupt: {reason}")]
    Corrupt { model: &'static str, reason: String },
    #[error("{model}: expects {expected} features per row, got {got}")]
    Width { model: &'static str, expected: usize, got: usize },
}

impl DetectError {
    /// `Ok` when no problem was found, else every problem in one error.
    pub(crate) fn params(model: &'static str, problems: Vec<String>) -> Result<(), Self> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DetectError::Params { model, problems })
        }
    }

    pub(crate) fn corrupt(model: &'static str, reason: impl ToString) -> Self {
        DetectError::Corrupt { model, reason: reason.to_string() }
    }
}

/// The detectors flowhound knows, by the name used on the command line, in
/// output and in the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Iforest,
    Lof,
    Ocsvm,
    Autoencoder,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Iforest, Kind::Lof, Kind::Ocsvm, Kind::Autoencoder];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Iforest => "iforest",
            Kind::Lof => "lof",
            Kind::Ocsvm => "ocsvm",
            Kind::Autoencoder => "autoencoder",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s.trim().to_ascii_lowercase())
    }
}

/// A fitted model.
pub trait Detector: Send + Sync + Debug {
    fn kind(&self) -> Kind;

    /// Width of the rows it was fitted on.
    fn width(&self) -> usize;

    /// Scores rows (higher = more anomalous) into `out` (one per row).
    /// Callers check the width first ([`check_width`]).
    fn score(&self, x: ArrayView2<'_, f32>, out: &mut [f32]);

    /// The model's own file in the bundle (safetensors).
    fn to_bytes(&self) -> Vec<u8>;

    /// For explanations: per row of `x` and per column, how much that column
    /// made the model call the row anomalous (>= 0, rows not normalized), or
    /// `None` when the model has no such notion (LOF and the SVM score a
    /// neighbourhood or a kernel sum, not columns).
    fn attribute(&self, _x: ArrayView2<'_, f32>) -> Option<ndarray::Array2<f32>> {
        None
    }
}

/// Rejects a matrix of the wrong width with a clear error.
pub fn check_width(d: &dyn Detector, x: ArrayView2<'_, f32>) -> Result<(), DetectError> {
    if x.ncols() == d.width() {
        Ok(())
    } else {
        Err(DetectError::Width { model: d.kind().name(), expected: d.width(), got: x.ncols() })
    }
}

/// Settings of one detector, validated by [`Params::check`] and turned into a
/// fitted model by [`Params::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Params {
    Iforest(iforest::IforestParams),
    Lof(lof::LofParams),
    Ocsvm(ocsvm::OcsvmParams),
    Autoencoder(autoencoder::AutoencoderParams),
}

impl Params {
    /// The defaults of one detector.
    pub fn default_for(k: Kind) -> Params {
        match k {
            Kind::Iforest => Params::Iforest(Default::default()),
            Kind::Lof => Params::Lof(Default::default()),
            Kind::Ocsvm => Params::Ocsvm(Default::default()),
            Kind::Autoencoder => Params::Autoencoder(Default::default()),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Params::Iforest(_) => Kind::Iforest,
            Params::Lof(_) => Kind::Lof,
            Params::Ocsvm(_) => Kind::Ocsvm,
            Params::Autoencoder(_) => Kind::Autoencoder,
        }
    }

    pub fn check(&self) -> Result<(), DetectError> {
        match self {
            Params::Iforest(p) => p.check(),
            Params::Lof(p) => p.check(),
            Params::Ocsvm(p) => p.check(),
            Params::Autoencoder(p) => p.check(),
        }
    }

    /// Fits on `x` (preprocessed rows) with `seed`.
    pub fn fit(&self, x: ArrayView2<'_, f32>, seed: u64) -> Result<Box<dyn Detector>, DetectError> {
        self.check()?;
        Ok(match self {
            Params::Iforest(p) => Box::new(p.fit(x, seed)?),
            Params::Lof(p) => Box::new(p.fit(x, seed)?),
            Params::Ocsvm(p) => Box::new(p.fit(x, seed)?),
            Params::Autoencoder(p) => Box::new(p.fit(x, seed)?),
        })
    }
}

/// Reads a saved model of kind `k`.
pub fn load(k: Kind, bytes: &[u8]) -> Result<Box<dyn Detector>, DetectError> {
    Ok(match k {
        Kind::Iforest => Box::new(iforest::Iforest::from_bytes(bytes)?),
        Kind::Lof => Box::new(lof::Lof::from_bytes(bytes)?),
        Kind::Ocsvm => Box::new(ocsvm::Ocsvm::from_bytes(bytes)?),
        Kind::Autoencoder => Box::new(autoencoder::Autoencoder::from_bytes(bytes)?),
    })
}

/// A seeded RNG for one purpose of one model: the same seed gives the same
/// stream, and different purposes do not share one.
pub(crate) fn rng(seed: u64, stream: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// `k` distinct row indices of `0..n` in ascending order (all when `k >= n`).
pub(crate) fn subsample(n: usize, k: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    let mut idx = rand::seq::index::sample(rng, n, k).into_vec();
    idx.sort_unstable();
    idx
}
