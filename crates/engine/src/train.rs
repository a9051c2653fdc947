//! Training: features → preprocessing → detectors (→ forest) → a model
//! bundle, from checked settings; and the summary a person reads after it.

use std::path::Path;
use std::time::{Duration, Instant};

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{BundleError, EnsembleParams, Kind, Params, TrainReport, Trainer};
use flowhound_features::{ExtractorParams, PipelineParams};
use flowhound_source::{Input, ScanEvents, ScanOptions, ScanReport};

use crate::config::ConfigError;
use crate::feedback::TrainingExample;
use crate::retrain::FeedbackUse;

/// How a model is trained.
#[derive(Debug, Clone)]
pub struct TrainParams {
    pub features: ExtractorParams,
    pub pipeline: PipelineParams,
    /// Detectors to fit, comma-separated.
    pub detectors: String,
    /// A false-positive budget (the default) …
    pub fpr: Option<f64>,
    /// … or the expected share of anomalies in the training data.
    pub contamination: Option<f64>,
    pub min_votes: Option<usize>,
    /// Only flows whose ground truth says benign.
    pub benign_only: bool,
    /// Also a Random Forest on the ground truth.
    pub supervised: bool,
    /// The share of flows kept out for `evaluate --holdout`.
    pub holdout: Option<f64>,
    pub seed: u64,
    /// Analyst verdicts that join the training data, each counted this often.
    pub feedback: Vec<TrainingExample>,
    pub feedback_weight: usize,
}

/// Parses a detector list, listing every unknown name.
pub fn detectors(list: &str) -> Result<Vec<Params>, ConfigError> {
    let mut out: Vec<Params> = Vec::new();
    let mut bad = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Kind::parse(name) {
            Some(k) if out.iter().any(|p| p.kind() == k) => bad.push(format!("{name:?} is listed twice")),
            Some(k) => out.push(Params::default_for(k)),
            None => bad.push(format!("{name:?} is not a detector")),
        }
    }
    if out.is_empty() && bad.is_empty() {
        bad.push("no detector given".into());
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError::Invalid(vec![format!(
            "--detectors: {} (choose from iforest, lof, ocsvm, autoencoder)",
            bad.join("; ")
        )]))
    }
}

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Inputs that could not be read completely: no model of part of the data.
    #[error("{} of {total} inputs could not be read completely; fix or leave out:\n  {}", .failed.len(), .failed.join("\n  "))]
    Inputs { failed: Vec<String>, total: usize },
    #[error("no flow records to train on")]
    NoRecords,
    /// Settings the trainer refused (window, forest or holdout parameters).
    #[error(transparent)]
    Settings(BundleError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Detect(#[from] flowhound_detect::DetectError),
}

/// A trained model, how long it took, and what feedback went into it.
#[derive(Debug)]
pub struct Trained {
    pub bundle: Bundle,
    pub report: TrainReport,
    pub feedback: Option<FeedbackUse>,
}

/// A training run with checked settings.
#[derive(Debug)]
pub struct Train {
    params: TrainParams,
    detectors: Vec<Params>,
    ensemble: EnsembleParams,
}

impl TrainParams {
    /// Every problem of the settings at once.
    pub fn check(self) -> Result<Train, ConfigError> {
        let mut bad = Vec::new();
        let detectors = detectors(&self.detectors).map_err(|e| bad.push(e.to_string())).unwrap_or_default();
        let ensemble = match self.contamination {
            Some(contamination) => EnsembleParams { contamination, min_votes: self.min_votes, fpr: None },
            None => EnsembleParams {
                min_votes: self.min_votes,
                fpr: Some(self.fpr.unwrap_or(flowhound_detect::ensemble::DEFAULT_FPR)),
                ..EnsembleParams::default()
            },
        };
        if !detectors.is_empty() {
            if let Err(e) = ensemble.check(detectors.len()) {
                bad.push(e.to_string());
            }
        }
        if let Err(e) = self.pipeline.check() {
            bad.push(e.to_string());
        }
        if !bad.is_empty() {
            return Err(ConfigError::Invalid(bad));
        }
        Ok(Train { params: self, detectors, ensemble })
    }
}

impl Train {
    /// Reads `inputs` into the trainer (`events` hears of the scan).
    pub fn read(self, inputs: &[Input], opts: &ScanOptions, events: &mut dyn ScanEvents) -> Result<Read, TrainError> {
        let p = &self.params;
        let forest = p.supervised.then(flowhound_detect::forest::ForestParams::default);
        let holdout = p.holdout.map(|fraction| flowhound_detect::Holdout { fraction, seed: p.seed });
        let mut trainer =
            Trainer::new(p.features.clone(), p.benign_only, forest, holdout).map_err(TrainError::Settings)?;
        let t = Instant::now();
        let scan = flowhound_source::scan_records(inputs, opts, events, |recs| trainer.push(&recs));
        let extract = t.elapsed();
        let failed: Vec<String> =
            scan.failed_files().map(|f| format!("{}: {}", f.name, f.error.as_deref().unwrap_or_default())).collect();
        if !failed.is_empty() {
            return Err(TrainError::Inputs { failed, total: scan.files.len() });
        }
        if trainer.records() == 0 {
            return Err(TrainError::NoRecords);
        }
        Ok(Read { train: self, trainer, extract, scan })
    }
}

/// Training data read, ready to fit.
#[derive(Debug)]
pub struct Read {
    train: Train,
    trainer: Trainer,
    extract: Duration,
    /// The scan (per-file problems).
    pub scan: ScanReport,
}

impl Read {
    /// Flow records read.
    pub fn records(&self) -> u64 {
        self.trainer.records()
    }

    /// Adds the feedback and fits; `fitted` hears as each detector is done.
    pub fn fit(mut self, fitted: &(dyn Fn(Kind, Duration) + Sync)) -> Result<Trained, TrainError> {
        let p = &self.train.params;
        let feedback = if p.feedback.is_empty() {
            None
        } else {
            Some(crate::retrain::add_examples(&mut self.trainer, &p.feedback, p.feedback_weight)?)
        };
        let t = &self.train;
        let (bundle, report) =
            self.trainer.finish(&p.pipeline, &t.detectors, &t.ensemble, p.seed, self.extract, fitted)?;
        Ok(Trained { bundle, report, feedback })
    }
}

/// What training did, for the terminal.
fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

pub fn summary(b: &Bundle, r: &TrainReport, dir: &Path) -> String {
    let t = &b.training;
    let mut s = format!(
        "trained on {} of {} flows{}{} ({} invalid rows left out); {} model columns from {} features\n",
        t.rows,
        t.records,
        if t.held_out > 0 { format!(", {} held out for evaluate --holdout", t.held_out) } else { String::new() },
        if t.benign_only {
            format!(", benign only: {} attack flows left out", t.excluded_malicious)
        } else {
            String::new()
        },
        t.invalid_rows,
        r.columns,
        b.pipeline.input.len(),
    );
    s += &format!("  features      {:>8}\n  preprocessing {:>8}\n", secs(r.extract), secs(r.preprocess));
    for m in b.ensemble.members() {
        let k = m.detector.kind();
        let d = r.fit.iter().find(|(f, _)| *f == k).map(|(_, d)| *d).unwrap_or_default();
        s += &format!("  {:<13} {:>8}  threshold {:.4}\n", k.name(), secs(d), m.calibration.threshold);
    }
    s += &format!(
        "  calibration   {:>8}  {}\n",
        secs(r.calibrate),
        if t.calibration_rows == t.rows {
            format!("on all {} rows (too few to hold some out)", t.rows)
        } else {
            format!("detectors fitted on {} rows, thresholds from {} held-out rows", t.fit_rows, t.calibration_rows)
        }
    );
    if let (Some(sup), Some(d)) = (b.ensemble.supervised(), r.forest) {
        s += &format!(
            "  random_forest {:>8}  {} trees on {} labeled rows; classes: {}\n",
            secs(d),
            sup.forest.trees(),
            t.forest_rows,
            sup.classes.join(", ")
        );
    }
    let covered = flowhound_features::known_hours(&t.hour_days).iter().filter(|k| **k).count();
    if t.hour_days.iter().any(|d| *d > 0) && covered < 24 {
        s += &format!(
            "time of day counts in {covered} of 24 hours (UTC): the others were covered on fewer than {} days of training, so the time of day of their flows is left neutral\n",
            flowhound_features::MIN_HOUR_DAYS
        );
    }
    let open = b.known.open_sorted();
    if !open.is_empty() {
        let inbound = open.iter().filter(|(_, i)| *i).count();
        s += &format!(
            "new external peers are normal for {} host(s) inbound and {} outbound (each met at least {} in training); elsewhere a never-seen external address stays a signal\n",
            inbound,
            open.len() - inbound,
            flowhound_features::OPEN_AFTER
        );
    }
    if let Some(op) = b.ensemble.operating_point() {
        s += &format!(
            "false-positive budget {} ({:.0} alerts per million flows like the training's; measured on {} held-out rows): every detector flags above calibrated level {:.4}\n",
            op.fpr,
            op.fpr * 1e6,
            op.rows,
            op.level
        );
    }
    s += &format!(
        "anomaly = {} of {} voters flag it; {} external addresses known; seed {}\nmodel written to {}\n",
        b.ensemble.min_votes(),
        b.ensemble.voters(),
        t.known_external,
        t.seed,
        dir.display()
    );
    if let Some(w) = &r.order_warning {
        s += &format!("{w}: {}\n", crate::SORT_HINT);
    }
    s
}
