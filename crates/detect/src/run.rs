//! Flow records in, a trained bundle or scored flows out: the two jobs the
//! CLI (and later the dashboard and `watch`) run, independent of where the
//! records come from. Records must arrive in event order per input, as the
//! window features need (the source crate's ordered reduce gives that).

use std::time::{Duration, Instant};

use flowhound_features::{Extractor, ExtractorParams, Pipeline, PipelineParams};
use flowhound_flow::FlowRecord;
use ndarray::ArrayView2;

use crate::bundle::{Bundle, BundleError, TrainingSummary};
use crate::ensemble::{self, EnsembleParams, Verdict};
use crate::{DetectError, Kind, Params};

/// Collects feature rows from training records.
#[derive(Debug)]
pub struct Trainer {
    params: ExtractorParams,
    x: Extractor,
    rows: Vec<f32>,
    benign_only: bool,
    records: u64,
    excluded: u64,
    row: Vec<f32>,
}

/// What training did, for the summary.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub extract: Duration,
    pub preprocess: Duration,
    pub fit: Vec<(Kind, Duration)>,
    pub calibrate: Duration,
    pub columns: usize,
}

impl Trainer {
    pub fn new(params: ExtractorParams, benign_only: bool) -> Result<Self, BundleError> {
        let x = params.build(None)?;
        Ok(Trainer { params, x, rows: Vec::new(), benign_only, records: 0, excluded: 0, row: Vec::new() })
    }

    /// Extracts features of `recs` (in order). With `benign_only`, rows whose
    /// ground truth says malicious still feed the windows (they are part of
    /// the traffic context) but are not kept for fitting; rows without ground
    /// truth are kept.
    pub fn push(&mut self, recs: &[FlowRecord]) {
        for r in recs {
            let attack = self.benign_only && r.truth.as_ref().is_some_and(|t| t.malicious);
            self.x.learn_addresses(!attack);
            self.row.clear();
            self.x.extract(r, &mut self.row);
            self.records += 1;
            if attack {
                self.excluded += 1;
                continue;
            }
            self.rows.extend_from_slice(&self.row);
        }
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Fits preprocessing and the detectors; `done` hears of each detector.
    pub fn finish(
        self,
        pipeline: &PipelineParams,
        detectors: &[Params],
        ep: &EnsembleParams,
        seed: u64,
        extract_time: Duration,
        done: &(dyn Fn(Kind, Duration) + Sync),
    ) -> Result<(Bundle, TrainReport), BundleError> {
        let t = Instant::now();
        let p = Pipeline::fit(pipeline, self.x.schema(), &self.rows, self.x.category_names())?;
        let width = self.x.schema().len();
        let mut model_rows: Vec<f32> = Vec::with_capacity(self.rows.len() / width.max(1) * p.output_width());
        // Invalid rows (non-finite values) were left out of the fit; leave
        // them out of the models' training too.
        for r in self.rows.chunks_exact(width) {
            if Pipeline::is_valid_row(r) {
                p.transform_row(r, &mut model_rows);
            }
        }
        drop(self.rows);
        let n = model_rows.len() / p.output_width();
        let x = ArrayView2::from_shape((n, p.output_width()), &model_rows)
            .map_err(|e| DetectError::Fit { model: "preprocessing", reason: e.to_string() })?;
        let preprocess = t.elapsed();
        let times = std::sync::Mutex::new(Vec::new());
        let t = Instant::now();
        let e = ensemble::fit(detectors, ep, x, seed, &|k, d| {
            if let Ok(mut v) = times.lock() {
                v.push((k, d));
            }
            done(k, d);
        })?;
        let total = t.elapsed();
        let mut fit = times.into_inner().unwrap_or_default();
        fit.sort_by_key(|(k, _)| *k);
        let slowest = fit.iter().map(|(_, d)| *d).max().unwrap_or_default();
        let training = TrainingSummary {
            records: self.records,
            rows: n as u64,
            fit_rows: ensemble::split_sizes(n).0 as u64,
            calibration_rows: ensemble::split_sizes(n).1 as u64,
            invalid_rows: p.invalid_rows,
            excluded_malicious: self.excluded,
            benign_only: self.benign_only,
            seed,
            known_external: self.x.known_external().len() as u64,
        };
        let report = TrainReport {
            extract: extract_time,
            preprocess,
            fit,
            calibrate: total.saturating_sub(slowest),
            columns: p.output_width(),
        };
        let bundle = Bundle {
            features: self.params,
            known: self.x.known_external().clone(),
            pipeline: p,
            ensemble: e,
            ensemble_params: ep.clone(),
            params: detectors.to_vec(),
            training,
            flowhound_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        Ok((bundle, report))
    }
}

/// Scores flow records with a loaded bundle.
#[derive(Debug)]
pub struct Scorer<'a> {
    bundle: &'a Bundle,
    x: Extractor,
    raw: Vec<f32>,
    input: Vec<f32>,
}

impl<'a> Scorer<'a> {
    pub fn new(bundle: &'a Bundle) -> Result<Self, BundleError> {
        let x = bundle.features.build(Some(bundle.known.clone()))?;
        Ok(Scorer { bundle, x, raw: Vec::new(), input: Vec::new() })
    }

    /// Verdicts for `recs`, in order (the window state carries over between calls).
    pub fn score(&mut self, recs: &[FlowRecord]) -> Result<Vec<Verdict>, DetectError> {
        self.raw.clear();
        self.input.clear();
        for r in recs {
            self.x.extract(r, &mut self.raw);
        }
        let w = self.x.schema().len();
        for row in self.raw.chunks_exact(w) {
            self.bundle.pipeline.transform_row(row, &mut self.input);
        }
        let x = ArrayView2::from_shape((recs.len(), self.bundle.pipeline.output_width()), &self.input)
            .map_err(|e| DetectError::Fit { model: "preprocessing", reason: e.to_string() })?;
        self.bundle.ensemble.judge(x)
    }

    /// Hosts holding window state.
    pub fn active_hosts(&self) -> usize {
        self.x.active_hosts()
    }
}
