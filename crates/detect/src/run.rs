//! Flow records in, a trained bundle or scored flows out: the two jobs the
//! CLI (and later the dashboard and `watch`) run, independent of where the
//! records come from. Records must arrive in event order per input, as the
//! window features need (the source crate's ordered reduce gives that).

use std::time::{Duration, Instant};

use flowhound_features::{Extractor, ExtractorParams, Pipeline, PipelineParams};
use flowhound_flow::FlowRecord;
use ndarray::ArrayView2;

use crate::bundle::{Bundle, BundleError, TrainingSummary};
use crate::ensemble::{self, EnsembleParams, Stack, Supervised, Verdict};
use crate::forest::ForestParams;
use crate::sample::TrainingSample;
use crate::{DetectError, Kind, Params};

/// A seeded share of the input's flows kept out of training, chosen by
/// position (the n-th record of the inputs, in order), so `evaluate
/// --holdout` on the same inputs scores exactly those flows — with window
/// features computed over the whole stream, as in training.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Holdout {
    pub fraction: f64,
    pub seed: u64,
}

impl Holdout {
    pub fn check(&self) -> Result<(), DetectError> {
        let bad = !(self.fraction > 0.0 && self.fraction < 1.0);
        DetectError::params(
            "holdout",
            if bad { vec![format!("fraction {} must be in (0, 1)", self.fraction)] } else { vec![] },
        )
    }

    /// Whether the record at position `index` is held out (splitmix64 of
    /// the position and seed, compared with the fraction).
    pub fn holds(&self, index: u64) -> bool {
        let mut z = index ^ self.seed.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.fraction
    }
}

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
    /// With a forest to train: every row is kept, with whether the
    /// unsupervised detectors see it and its ground-truth class.
    forest: Option<ForestParams>,
    holdout: Option<Holdout>,
    held_out: u64,
    unsupervised: Vec<bool>,
    class: Vec<Option<u16>>,
    classes: Vec<String>,
    /// Feedback rows added, and attack feedback a model without a forest
    /// could not use.
    feedback: u64,
    feedback_unused: u64,
    /// Days per hour of day a retrained model's original training covered
    /// (its sample rows have no flows left to count them from).
    hour_days: Option<Vec<u16>>,
}

/// An analyst's verdict on a flagged flow, with the raw feature row it was
/// scored on.
#[derive(Debug, Clone, Copy)]
pub enum Feedback<'a> {
    /// A false positive: normal traffic, and its external addresses are
    /// known from now on.
    Benign { row: &'a [f32], external: &'a [std::net::IpAddr] },
    /// A true positive of this attack class (a Random Forest example).
    Attack { row: &'a [f32], class: &'a str },
}

/// What training did, for the summary.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub extract: Duration,
    pub preprocess: Duration,
    pub fit: Vec<(Kind, Duration)>,
    pub calibrate: Duration,
    pub columns: usize,
    /// The Random Forest's fitting time, when trained.
    pub forest: Option<Duration>,
    /// When the training input was far from time order ([`Extractor::order_warning`]).
    pub order_warning: Option<String>,
}

impl Trainer {
    /// `forest`: also train a Random Forest on the rows with ground truth
    /// (benign and malicious alike, whatever `benign_only` says).
    /// `holdout`: leave a seeded share of the flows out of every fit (their
    /// features still see them in the windows), for `evaluate --holdout`.
    pub fn new(
        params: ExtractorParams,
        benign_only: bool,
        forest: Option<ForestParams>,
        holdout: Option<Holdout>,
    ) -> Result<Self, BundleError> {
        if let Some(f) = &forest {
            f.check()?;
        }
        if let Some(h) = &holdout {
            h.check()?;
        }
        let x = params.build(None)?;
        Ok(Trainer {
            params,
            x,
            rows: Vec::new(),
            benign_only,
            records: 0,
            excluded: 0,
            row: Vec::new(),
            forest,
            holdout,
            held_out: 0,
            unsupervised: Vec::new(),
            class: Vec::new(),
            classes: vec!["benign".to_string()],
            feedback: 0,
            feedback_unused: 0,
            hour_days: None,
        })
    }

    /// A trainer holding a saved model's training sample (see
    /// [`crate::sample`]) with its settings, known addresses and classes: add
    /// [`Feedback`], then [`Trainer::finish`] with the model's parameters.
    /// `add_forest`: give a model without a Random Forest one (for attack
    /// feedback); its training rows, the traffic it learned as normal, are
    /// the forest's benign class.
    pub fn from_bundle(b: &Bundle, add_forest: bool) -> Result<Self, BundleError> {
        let sample = b.sample.as_ref().ok_or(BundleError::NoSample)?;
        let adding = add_forest && b.forest_params.is_none();
        let forest = if adding { Some(ForestParams::default()) } else { b.forest_params.clone() };
        let mut t = Trainer::new(b.features.clone(), b.training.benign_only, forest, None)?;
        for a in b.known.sorted() {
            t.x.learn_external(a);
        }
        for (h, inbound) in b.known.open_sorted() {
            t.x.learn_open(h, inbound);
        }
        t.hour_days = Some(b.training.hour_days.clone());
        t.x.add_category_names(&b.category_names);
        if let Some(sup) = b.ensemble.supervised() {
            t.classes = sup.classes.clone();
        }
        let w = sample.width;
        for (i, row) in sample.rows.chunks_exact(w).enumerate() {
            if t.forest.is_some() {
                let unlabeled_normal = adding && sample.unsupervised[i] && sample.class[i].is_none();
                t.class.push(if unlabeled_normal { Some(0) } else { sample.class[i] });
                t.unsupervised.push(sample.unsupervised[i]);
            } else if !sample.unsupervised[i] {
                continue;
            }
            t.rows.extend_from_slice(row);
        }
        t.records = sample.len() as u64;
        Ok(t)
    }

    /// Adds an analyst's verdict as `weight` training rows (one labeled row
    /// among thousands would not move a detector). A benign row joins the
    /// unsupervised training data with its external addresses learned (its
    /// "never seen" feature cleared, as they are now seen); an attack row is
    /// a Random Forest example and is left out when the model has none
    /// (returns false). A row of another width is an error.
    pub fn add_feedback(&mut self, fb: Feedback<'_>, weight: usize) -> Result<bool, DetectError> {
        let width = self.x.schema().len();
        let row = match fb {
            Feedback::Benign { row, .. } | Feedback::Attack { row, .. } => row,
        };
        if row.len() != width {
            return Err(DetectError::Width { model: "feedback", expected: width, got: row.len() });
        }
        let mut row = row.to_vec();
        let (class, unsupervised) = match fb {
            Feedback::Benign { external, .. } => {
                for a in external {
                    self.x.learn_external(*a);
                }
                if let Some(j) = self.x.schema().index("external_unseen") {
                    row[j] = 0.0;
                }
                (Some(0), true)
            }
            Feedback::Attack { class, .. } => {
                if self.forest.is_none() {
                    self.feedback_unused += 1;
                    return Ok(false);
                }
                let id = match self.classes.iter().position(|c| c == class) {
                    Some(i) => i,
                    None => {
                        self.classes.push(class.to_string());
                        self.classes.len() - 1
                    }
                };
                (u16::try_from(id).ok(), false)
            }
        };
        for _ in 0..weight.max(1) {
            if self.forest.is_some() {
                self.class.push(class);
                self.unsupervised.push(unsupervised);
            }
            self.rows.extend_from_slice(&row);
        }
        self.feedback += 1;
        Ok(true)
    }

    /// The class id of a flow's ground truth (`benign` = 0; an attack
    /// without a category is `malicious`).
    fn class_of(&mut self, r: &FlowRecord) -> Option<u16> {
        let t = r.truth.as_ref()?;
        if !t.malicious {
            return Some(0);
        }
        let name = t.category.as_deref().unwrap_or("malicious");
        let id = match self.classes.iter().position(|c| c == name) {
            Some(i) => i,
            None => {
                self.classes.push(name.to_string());
                self.classes.len() - 1
            }
        };
        u16::try_from(id).ok()
    }

    /// Extracts features of `recs` (in order). With `benign_only`, rows whose
    /// ground truth says malicious still feed the windows (they are part of
    /// the traffic context) but are not kept for fitting; rows without ground
    /// truth are kept.
    pub fn push(&mut self, recs: &[FlowRecord]) {
        // `--extra all`: the columns are known once the first record is.
        if let (Some(r), 0) = (recs.first(), self.records) {
            if self.params.resolve_all(r) {
                if let Ok(x) = self.params.build(None) {
                    self.x = x;
                }
            }
        }
        for r in recs {
            let attack = self.benign_only && r.truth.as_ref().is_some_and(|t| t.malicious);
            let held = self.holdout.is_some_and(|h| h.holds(self.records));
            // A held-out flow's addresses stay unknown: evaluation must see
            // its never-seen external addresses as never seen.
            self.x.learn_addresses(!attack && !held);
            self.row.clear();
            self.x.extract(r, &mut self.row);
            self.records += 1;
            if held {
                self.held_out += 1;
                continue;
            }
            if attack {
                self.excluded += 1;
            }
            if self.forest.is_some() {
                let c = self.class_of(r);
                self.class.push(c);
                self.unsupervised.push(!attack);
            } else if attack {
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
        mut self,
        pipeline: &PipelineParams,
        detectors: &[Params],
        ep: &EnsembleParams,
        seed: u64,
        extract_time: Duration,
        done: &(dyn Fn(Kind, Duration) + Sync),
    ) -> Result<(Bundle, TrainReport), BundleError> {
        let t = Instant::now();
        let width = self.x.schema().len();
        // Time of day counts only in hours training covered on enough days:
        // empty it in the other rows, as detection will.
        let hour_days = self.hour_days.clone().unwrap_or_else(|| self.x.hour_days().to_vec());
        flowhound_features::neutralize_hours(
            self.x.schema(),
            &mut self.rows,
            &flowhound_features::known_hours(&hour_days),
        );
        let sample = TrainingSample::take(&self.rows, width, &self.class, &self.unsupervised);
        // With a forest, the rows hold attacks too; the unsupervised side
        // (preprocessing and detectors) sees only its own rows.
        let unsup_rows: Vec<f32> = if self.forest.is_some() {
            self.rows
                .chunks_exact(width)
                .zip(&self.unsupervised)
                .filter(|(_, u)| **u)
                .flat_map(|(r, _)| r)
                .copied()
                .collect()
        } else {
            std::mem::take(&mut self.rows)
        };
        let p = Pipeline::fit(pipeline, self.x.schema(), &unsup_rows, self.x.category_names())?;
        let mut model_rows: Vec<f32> = Vec::with_capacity(unsup_rows.len() / width.max(1) * p.output_width());
        // Invalid rows (non-finite values) were left out of the fit; leave
        // them out of the models' training too.
        for r in unsup_rows.chunks_exact(width) {
            if Pipeline::is_valid_row(r) {
                p.transform_row(r, &mut model_rows);
            }
        }
        drop(unsup_rows);
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
        let (e, forest_time, forest_rows) = match &self.forest {
            Some(fp) => {
                let t = Instant::now();
                let (mut fx, mut fy) = (Vec::new(), Vec::new());
                // Whether each forest row also fitted a detector: those are
                // left out of the stacking rows (a detector scores its own
                // training rows too low).
                let (fit_rows, _) = ensemble::split_rows(n, seed);
                let detector_fit = fit_rows.map(|f| {
                    let mut m = vec![false; n];
                    f.into_iter().for_each(|i| m[i] = true);
                    m
                });
                let mut fitted = Vec::new();
                let mut u = 0;
                for ((r, c), unsup) in self.rows.chunks_exact(width).zip(&self.class).zip(&self.unsupervised) {
                    let valid = Pipeline::is_valid_row(r);
                    let was_fit = *unsup && valid && detector_fit.as_ref().is_none_or(|m| m[u]);
                    u += usize::from(*unsup && valid);
                    if let (Some(c), true) = (c, valid) {
                        p.transform_row(r, &mut fx);
                        fy.push(*c);
                        fitted.push(was_fit);
                    }
                }
                let present: std::collections::BTreeSet<u16> = fy.iter().copied().collect();
                if !present.contains(&0) || present.len() < 2 {
                    return Err(DetectError::Fit {
                        model: crate::ensemble::FOREST_NAME,
                        reason: format!(
                            "supervised training needs ground truth with benign and malicious flows; {} of {} flows carry any ({} classes)",
                            fy.len(),
                            self.records,
                            present.len()
                        ),
                    }
                    .into());
                }
                let fxv = ArrayView2::from_shape((fy.len(), p.output_width()), &fx)
                    .map_err(|e| DetectError::Fit { model: "preprocessing", reason: e.to_string() })?;
                let stack_rows = stacking_rows(&fitted, &fy, seed);
                let (forest, oob) = fp.fit_oob(fxv, &fy, self.classes.len(), seed, &stack_rows)?;
                let sx = fxv.select(ndarray::Axis(0), &stack_rows);
                let cal = e.calibrated_scores(sx.view())?;
                let w = cal.len() + 1;
                let mut z = Vec::with_capacity(stack_rows.len() * w);
                for (i, p) in oob.iter().enumerate() {
                    z.extend(cal.iter().map(|c| c[i]));
                    z.push(*p);
                }
                let y: Vec<bool> = stack_rows.iter().map(|&i| fy[i] != 0).collect();
                let stack = Stack::fit(&z, w, &y);
                let e = e.with_supervised(Supervised { forest, classes: self.classes.clone(), stack })?;
                (e, Some(t.elapsed()), fy.len() as u64)
            }
            None => (e, None, 0),
        };
        let mut fit = times.into_inner().unwrap_or_default();
        fit.sort_by_key(|(k, _)| *k);
        let slowest = fit.iter().map(|(_, d)| *d).max().unwrap_or_default();
        let (fit_rows, calibration_rows) = ensemble::split_sizes(n);
        let training = TrainingSummary {
            records: self.records,
            rows: n as u64,
            fit_rows: fit_rows as u64,
            calibration_rows: calibration_rows as u64,
            invalid_rows: p.invalid_rows,
            excluded_malicious: self.excluded,
            benign_only: self.benign_only,
            seed,
            known_external: self.x.known_external().len() as u64,
            forest_rows,
            holdout: self.holdout,
            held_out: self.held_out,
            feedback: self.feedback,
            feedback_unused: self.feedback_unused,
            hour_days,
        };
        let report = TrainReport {
            extract: extract_time,
            preprocess,
            fit,
            calibrate: total.saturating_sub(slowest),
            columns: p.output_width(),
            forest: forest_time,
            order_warning: self.x.order_warning(self.records),
        };
        let bundle = Bundle {
            features: self.params,
            known: self.x.known_external().clone(),
            pipeline: p,
            ensemble: e,
            ensemble_params: ep.clone(),
            params: detectors.to_vec(),
            forest_params: self.forest.clone(),
            training,
            flowhound_version: env!("CARGO_PKG_VERSION").to_string(),
            sample: Some(sample),
            category_names: self.x.category_names().clone(),
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
        Ok(Scorer { bundle, x: extractor(bundle)?, raw: Vec::new(), input: Vec::new() })
    }

    /// Verdicts for `recs`, in order (the window state carries over between calls).
    pub fn score(&mut self, recs: &[FlowRecord]) -> Result<Vec<Verdict>, DetectError> {
        let (mut raw, mut input) = (std::mem::take(&mut self.raw), std::mem::take(&mut self.input));
        self.prepare(recs, &mut raw, &mut input);
        (self.raw, self.input) = (raw, input);
        judge(self.bundle, recs.len(), &self.input)
    }

    /// Raw features and model input of `recs`, row-major, into the buffers
    /// (cleared first). Sequential: the window state follows the records.
    fn prepare(&mut self, recs: &[FlowRecord], raw: &mut Vec<f32>, input: &mut Vec<f32>) {
        raw.clear();
        input.clear();
        for r in recs {
            self.x.extract(r, raw);
        }
        for row in raw.chunks_exact(self.x.schema().len()) {
            self.bundle.pipeline.transform_row(row, input);
        }
    }

    /// The rows behind the last [`Scorer::score`] call, row-major: raw
    /// features (the extractor's schema) and model input (the pipeline's
    /// output), for explanations.
    pub fn last_rows(&self) -> (&[f32], &[f32]) {
        (&self.raw, &self.input)
    }

    pub fn bundle(&self) -> &'a Bundle {
        self.bundle
    }

    /// Hosts holding window state.
    pub fn active_hosts(&self) -> usize {
        self.x.active_hosts()
    }

    /// The window state after every record scored so far.
    pub fn checkpoint(&self) -> Vec<u8> {
        self.x.checkpoint()
    }

    /// Continues from a [`Scorer::checkpoint`] made with the same model.
    pub fn restore(&mut self, b: &[u8]) -> Result<(), flowhound_features::FeatureError> {
        self.x.restore(b)
    }

    /// When the `flows` scored so far were far from time order ([`Extractor::order_warning`]).
    pub fn order_warning(&self, flows: u64) -> Option<String> {
        self.x.order_warning(flows)
    }
}

/// The feature extractor a bundle scores with (its known addresses and
/// hours of day), with empty windows.
pub fn extractor(bundle: &Bundle) -> Result<Extractor, BundleError> {
    let mut x = bundle.features.build(Some(bundle.known.clone()))?;
    x.set_hour_days(&bundle.training.hour_days);
    Ok(x)
}

/// Verdicts on rows of raw features (`raw`, row-major, the extractor's
/// schema), with their model input written to `input` (cleared first): what
/// a [`Scorer`] does after extraction, for rows extracted elsewhere.
pub fn score_rows(bundle: &Bundle, raw: &[f32], input: &mut Vec<f32>) -> Result<Vec<Verdict>, DetectError> {
    input.clear();
    let w = bundle.features.schema().len().max(1);
    for row in raw.chunks_exact(w) {
        bundle.pipeline.transform_row(row, input);
    }
    judge(bundle, raw.len() / w, input)
}

/// The models' verdicts on `n` rows of model input.
fn judge(bundle: &Bundle, n: usize, input: &[f32]) -> Result<Vec<Verdict>, DetectError> {
    let x = ArrayView2::from_shape((n, bundle.pipeline.output_width()), input)
        .map_err(|e| DetectError::Fit { model: "preprocessing", reason: e.to_string() })?;
    bundle.ensemble.judge(x)
}

/// Scores records gathered into batches of a fixed size: the readers hand
/// over a few thousand records at a time, and larger batches let the models
/// use every core. Hands each scored batch, in input order, to a callback.
///
/// Pipelined: while the models judge one batch (on every core, through
/// rayon), this thread hands the batch before it to the callback (for
/// `detect`, explanations and output) and computes the features of the next
/// one (sequential: the windows follow the records). A full batch is thus
/// handed over two batches later; [`Batches::flush`] drains everything.
#[derive(Debug)]
pub struct Batches<'a> {
    scorer: Scorer<'a>,
    pending: Vec<FlowRecord>,
    size: usize,
    /// Features computed, not yet judged.
    prepared: Option<Prepared>,
    /// Judged, not yet handed over.
    judged: Option<(Prepared, Vec<Verdict>)>,
}

/// One batch's records with their raw features and model input.
#[derive(Debug)]
struct Prepared {
    recs: Vec<FlowRecord>,
    raw: Vec<f32>,
    input: Vec<f32>,
}

/// Flows scored at once by default.
pub const BATCH: usize = 16_384;

/// One scored batch: records, verdicts, and the rows behind them (raw
/// features and model input, row-major) for explanations.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub recs: &'a [FlowRecord],
    pub verdicts: &'a [Verdict],
    pub raw: &'a [f32],
    pub input: &'a [f32],
}

impl Batch<'_> {
    pub fn iter(&self) -> impl Iterator<Item = (&FlowRecord, &Verdict)> {
        self.recs.iter().zip(self.verdicts)
    }

    /// Width of a raw feature row.
    pub fn raw_width(&self) -> usize {
        self.raw.len() / self.recs.len().max(1)
    }
}

impl<'a> Batches<'a> {
    /// The scorer's [`Scorer::order_warning`].
    pub fn order_warning(&self, flows: u64) -> Option<String> {
        self.scorer.order_warning(flows)
    }

    pub fn new(bundle: &'a Bundle, size: usize) -> Result<Self, BundleError> {
        Ok(Batches {
            scorer: Scorer::new(bundle)?,
            pending: Vec::with_capacity(size),
            size: size.max(1),
            prepared: None,
            judged: None,
        })
    }

    /// Queues `recs`; once a batch is full, moves every batch in flight one
    /// stage on (which may hand an earlier batch over).
    pub fn push<E: From<DetectError>>(
        &mut self,
        recs: &[FlowRecord],
        each: &mut impl FnMut(&Batch<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.pending.extend_from_slice(recs);
        if self.pending.len() >= self.size {
            self.turn(each)?;
        }
        Ok(())
    }

    /// Scores and hands over everything queued or in flight.
    pub fn flush<E: From<DetectError>>(&mut self, each: &mut impl FnMut(&Batch<'_>) -> Result<(), E>) -> Result<(), E> {
        while self.in_flight() {
            self.turn(each)?;
        }
        Ok(())
    }

    /// One step of the pipeline: the prepared batch is judged on another
    /// thread while this one hands over the judged batch and prepares the
    /// pending records.
    fn turn<E: From<DetectError>>(&mut self, each: &mut impl FnMut(&Batch<'_>) -> Result<(), E>) -> Result<(), E> {
        let bundle = self.scorer.bundle;
        let to_judge = self.prepared.take();
        let to_hand = self.judged.take();
        let recs = std::mem::replace(&mut self.pending, Vec::with_capacity(self.size));
        let (handed, judged, prepared) = std::thread::scope(|s| {
            let job = to_judge.map(|p| {
                s.spawn(move || {
                    let v = judge(bundle, p.recs.len(), &p.input);
                    (p, v)
                })
            });
            let handed = to_hand.map_or(Ok(()), |(p, verdicts)| {
                each(&Batch { recs: &p.recs, verdicts: &verdicts, raw: &p.raw, input: &p.input })
            });
            let prepared = (!recs.is_empty() && handed.is_ok()).then(|| {
                let (mut raw, mut input) = (Vec::new(), Vec::new());
                self.scorer.prepare(&recs, &mut raw, &mut input);
                Prepared { recs, raw, input }
            });
            let judged = job.map(|j| j.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
            (handed, judged, prepared)
        });
        handed?;
        self.prepared = prepared;
        if let Some((p, v)) = judged {
            self.judged = Some((p, v.map_err(E::from)?));
        }
        Ok(())
    }

    /// Records queued for the batch being filled.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether any record is not yet handed over.
    pub fn in_flight(&self) -> bool {
        !self.pending.is_empty() || self.prepared.is_some() || self.judged.is_some()
    }

    pub fn bundle(&self) -> &'a Bundle {
        self.scorer.bundle()
    }

    /// The window state, when no record is in flight (every record pushed
    /// has been handed over, so the state covers exactly those): `None`
    /// otherwise — [`Batches::flush`] first.
    pub fn checkpoint(&self) -> Option<Vec<u8>> {
        (!self.in_flight()).then(|| self.scorer.checkpoint())
    }

    /// Continues from a [`Batches::checkpoint`] made with the same model.
    pub fn restore(&mut self, b: &[u8]) -> Result<(), flowhound_features::FeatureError> {
        self.scorer.restore(b)
    }
}

/// Labeled rows the stacking weights are learned from at most: six weights
/// need far fewer, and each row costs a score from every detector.
const STACK_ROWS: usize = 50_000;

/// The forest rows (indices into its training rows, class ids `y`) the
/// stacking weights are learned from: those no detector was fitted on
/// (`fitted`), a seeded sample of at most [`STACK_ROWS`]. When these hold
/// one class only (tiny training sets, where every row fits the detectors),
/// every row instead.
fn stacking_rows(fitted: &[bool], y: &[u16], seed: u64) -> Vec<usize> {
    let held: Vec<usize> = (0..y.len()).filter(|&i| !fitted[i]).collect();
    let both = |rows: &[usize]| rows.iter().any(|&i| y[i] == 0) && rows.iter().any(|&i| y[i] != 0);
    let rows = if both(&held) { held } else { (0..y.len()).collect() };
    let pick = crate::subsample(rows.len(), STACK_ROWS, &mut crate::rng(seed, 22));
    pick.into_iter().map(|i| rows[i]).collect()
}
