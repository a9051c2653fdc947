//! The ensemble: every model scores every row; a model *flags* a row above
//! its calibrated threshold; `votes` = models flagging; the row is an anomaly
//! when votes ≥ `min_votes`.
//!
//! Where the thresholds come from — the [`OperatingPoint`], by default: one
//! calibrated level shared by every detector, chosen on held-out benign rows
//! so that the share of them getting `min_votes` flags is the false-positive
//! budget (`train --fpr`, 0.5 % unless given). The vote is then the
//! continuous *vote score* — the `min_votes`-th highest calibrated score —
//! above that level. With `--contamination` instead (the rule before the
//! budget), each detector flags its own top `contamination` share, and 2 of
//! 4 detectors flagging ~5 % each flagged ~4 % of normal traffic.
//!
//! The vote rule for n models (any subset can be trained):
//! - `min_votes` defaults to ⌈n / 2⌉ (at least 1): 2 of 4, 2 of 3, 1 of 2, 1 of 1;
//! - severity with an operating point: from how rare the row's vote score is
//!   among held-out benign rows (its *tail share* p): `low` while p is
//!   within the budget, `medium` below a tenth of it, `high` below a
//!   hundredth — raised one step when every model flags. Without one (or
//!   with `--threshold` overrides): `high` when every model flags (n ≥ 2),
//!   `low` at exactly `min_votes` (when below n), `medium` in between;
//! - confidence = votes / n; with an operating point the mean of that and
//!   how far past the budget the row is (0 at the budget, 1 at a hundredth);
//! - score = the vote score with an operating point, else the mean of the
//!   models' calibrated scores ([`crate::calibrate`]): a continuous ranking
//!   for ROC/PR curves, higher = more anomalous; with a Random Forest, a
//!   [`Stack`] learned from labeled rows instead. The vote and the severity
//!   do not change with it.

use ndarray::ArrayView2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::calibrate::Calibration;
use crate::{DetectError, Detector, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    None,
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::None, Severity::Low, Severity::Medium, Severity::High].into_iter().find(|v| v.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnsembleParams {
    /// Expected share of anomalies in training: each model's threshold is its
    /// training score at quantile 1 − contamination.
    pub contamination: f64,
    /// Votes needed for an anomaly; `None` = ⌈n / 2⌉.
    pub min_votes: Option<usize>,
    /// The false-positive budget: share of held-out benign rows allowed to
    /// be anomalies; sets every threshold ([`OperatingPoint`]). `None`:
    /// each detector's own `contamination` quantile.
    pub fpr: Option<f64>,
}

/// The default false-positive budget. Measured (EVALUATION.md, "Operating
/// point"): on unseen traffic of the same network the share of benign flows
/// flagged lands near the budget; on shifted traffic (another capture, other
/// hours) a few times above it, so the default leaves room below 1 %.
pub const DEFAULT_FPR: f64 = 0.005;

impl Default for EnsembleParams {
    fn default() -> Self {
        EnsembleParams { contamination: 0.05, min_votes: None, fpr: Some(DEFAULT_FPR) }
    }
}

impl EnsembleParams {
    pub fn check(&self, models: usize) -> Result<(), DetectError> {
        let mut p = Vec::new();
        if !(self.contamination > 0.0 && self.contamination < 0.5) {
            p.push(format!("contamination {} must be in (0, 0.5)", self.contamination));
        }
        if let Some(v) = self.min_votes {
            if v == 0 || v > models {
                p.push(format!("min_votes {v} must be 1..={models} (the number of detectors)"));
            }
        }
        if let Some(f) = self.fpr {
            if !(f > 0.0 && f < 0.5) {
                p.push(format!("false-positive budget {f} must be in (0, 0.5)"));
            }
        }
        if models == 0 {
            p.push("no detector chosen".into());
        }
        DetectError::params("ensemble", p)
    }
}

/// One fitted model with its calibration.
#[derive(Debug)]
pub struct Member {
    pub detector: Box<dyn Detector>,
    pub calibration: Calibration,
}

/// One row's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The vote score with an operating point (the `min_votes`-th highest
    /// calibrated score), else the mean calibrated score; [`Stack`]ed with a
    /// forest.
    pub score: f32,
    pub votes: u8,
    pub severity: Severity,
    pub confidence: f32,
    /// Per model, in [`Ensemble::model_names`] order: raw score and flag
    /// (for the Random Forest: P(malicious), flagged when its most probable
    /// class is an attack).
    pub models: Vec<(f32, bool)>,
    /// With a Random Forest: its most probable attack class (an index into
    /// [`Supervised::classes`]) when it flags the row.
    pub category: Option<u16>,
}

/// The supervised member: a Random Forest over benign traffic (class 0)
/// and the attack categories of the training ground truth.
#[derive(Debug, Clone)]
pub struct Supervised {
    pub forest: crate::forest::Forest,
    /// Class names, `classes[0] == "benign"`.
    pub classes: Vec<String>,
    /// How the voters' scores combine into the ensemble's score (`None`:
    /// the plain mean, as without a forest).
    pub stack: Option<Stack>,
}

/// The ensemble's score when a Random Forest is present: a logistic
/// regression (stacking) over the detectors' calibrated scores and the
/// logit of the forest's P(malicious), fitted on labeled training rows that
/// no model was fitted on — the forest's out-of-bag estimates, the
/// detectors' held-out rows. A plain mean let three unsupervised scores
/// outvote the one model that saw attacks: on UNSW-NB15 the mean ranked
/// worse (PR-AUC 0.951) than the forest alone (0.987); the learned weights
/// say how far each model is worth trusting on this traffic.
///
/// Written here: six weights by Newton's method need no crate (linfa-logistic
/// would bring argmin and its solvers into the build for this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    pub bias: f32,
    /// One per detector (in model order), then the forest's.
    pub weights: Vec<f32>,
}

/// The forest's probability as a stacking input: its logit, clamped so
/// that 0 and 1 (common with 100 trees) stay finite.
fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-3, 1.0 - 1e-3);
    (p / (1.0 - p)).ln()
}

impl Stack {
    /// L2 penalty on the weights (not the bias): keeps them finite when the
    /// training rows are separable, as they often are for the forest.
    const PENALTY: f64 = 1.0;

    /// The stacked score of one row: `calibrated` detector scores, then
    /// the forest's P(malicious).
    pub fn score(&self, calibrated: &[f32], p_malicious: f32) -> f32 {
        let mut z = f64::from(self.bias);
        for (w, v) in self.weights.iter().zip(calibrated.iter().copied().chain([logit(p_malicious)])) {
            z += f64::from(*w) * f64::from(v);
        }
        (1.0 / (1.0 + (-z).exp())) as f32
    }

    /// Fits the weights on rows `x` (row-major: the detectors' calibrated
    /// scores, then the forest's P(malicious)) with labels `y`. `None` when
    /// the rows hold one class only or a value is not finite.
    pub fn fit(x: &[f32], width: usize, y: &[bool]) -> Option<Stack> {
        if width == 0 || x.len() != width * y.len() || !y.iter().any(|v| *v) || y.iter().all(|v| *v) {
            return None;
        }
        let d = width + 1; // bias first
        let rows: Vec<Vec<f64>> = x
            .chunks_exact(width)
            .map(|r| {
                let (det, f) = r.split_at(width - 1);
                std::iter::once(1.0).chain(det.iter().map(|v| f64::from(*v))).chain([f64::from(logit(f[0]))]).collect()
            })
            .collect();
        if rows.iter().flatten().any(|v| !v.is_finite()) {
            return None;
        }
        let mut w = vec![0f64; d];
        for _ in 0..100 {
            let mut g = vec![0f64; d];
            let mut h = vec![0f64; d * d];
            for (r, &t) in rows.iter().zip(y) {
                let z: f64 = r.iter().zip(&w).map(|(a, b)| a * b).sum();
                let p = 1.0 / (1.0 + (-z).exp());
                let e = f64::from(u8::from(t)) - p;
                let s = (p * (1.0 - p)).max(1e-12);
                for a in 0..d {
                    g[a] += e * r[a];
                    for b in 0..d {
                        h[a * d + b] += s * r[a] * r[b];
                    }
                }
            }
            for a in 1..d {
                g[a] -= Self::PENALTY * w[a];
                h[a * d + a] += Self::PENALTY;
            }
            let step = solve(&mut h, &mut g, d)?;
            for (a, s) in w.iter_mut().zip(&step) {
                *a += s;
            }
            if step.iter().all(|s| s.abs() < 1e-7) {
                break;
            }
        }
        let w: Vec<f32> = w.iter().map(|v| *v as f32).collect();
        w.iter().all(|v| v.is_finite()).then(|| Stack { bias: w[0], weights: w[1..].to_vec() })
    }
}

/// Solves `a · x = b` (`a` is d × d, row-major) by Gaussian elimination with
/// partial pivoting; `None` when singular.
fn solve(a: &mut [f64], b: &mut [f64], d: usize) -> Option<Vec<f64>> {
    for c in 0..d {
        let p = (c..d).max_by(|i, j| a[i * d + c].abs().total_cmp(&a[j * d + c].abs()))?;
        if a[p * d + c].abs() < 1e-12 {
            return None;
        }
        if p != c {
            for k in 0..d {
                a.swap(p * d + k, c * d + k);
            }
            b.swap(p, c);
        }
        for r in c + 1..d {
            let f = a[r * d + c] / a[c * d + c];
            for k in c..d {
                a[r * d + k] -= f * a[c * d + k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0f64; d];
    for c in (0..d).rev() {
        let s: f64 = (c + 1..d).map(|k| a[c * d + k] * x[k]).sum();
        x[c] = (b[c] - s) / a[c * d + c];
    }
    Some(x)
}

/// The operating point: the budget in force, the calibrated level every
/// detector flags above, and the vote score's upper tail on held-out benign
/// rows (for another budget at `detect --fpr`, and for severity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub fpr: f64,
    pub level: f32,
    /// Held-out rows the tail was measured on.
    pub rows: u64,
    /// (share of the held-out rows whose vote score is above, that score),
    /// shares falling from 0.5 in log steps down to 1 / rows, scores rising.
    pub tail: Vec<(f64, f32)>,
}

/// Tail points per factor of ten.
const TAIL_STEPS: f64 = 8.0;

impl OperatingPoint {
    /// From the vote scores of the held-out rows, for budget `fpr`.
    pub fn fit(vote_scores: &[f32], fpr: f64) -> Option<OperatingPoint> {
        let mut s: Vec<f32> = vote_scores.iter().copied().filter(|v| v.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(|a, b| b.total_cmp(a));
        let n = s.len();
        let mut tail = Vec::new();
        for i in 0.. {
            let share = 0.5 * 10f64.powf(-f64::from(i) / TAIL_STEPS);
            let k = (share * n as f64).floor() as usize;
            if k == 0 {
                break;
            }
            // The k-th highest: k rows score at least this, k−1 above it.
            tail.push((share, s[k - 1]));
        }
        tail.push((1.0 / n as f64, s[0]));
        let mut op = OperatingPoint { fpr, level: 0.0, rows: n as u64, tail };
        op.level = op.level_for(fpr);
        Some(op)
    }

    pub fn is_valid(&self) -> bool {
        self.fpr > 0.0
            && self.fpr < 0.5
            && self.level.is_finite()
            && !self.tail.is_empty()
            && self.tail.iter().all(|(p, v)| *p > 0.0 && *p <= 1.0 && v.is_finite())
            && self.tail.windows(2).all(|w| w[0].0 >= w[1].0 && w[0].1 <= w[1].1)
    }

    /// The vote-score level a share `fpr` of the held-out rows is above
    /// (interpolated in log share; a budget below one row flags only what
    /// scores above every held-out row).
    pub fn level_for(&self, fpr: f64) -> f32 {
        let t = &self.tail;
        if fpr >= t[0].0 {
            return t[0].1;
        }
        for w in t.windows(2) {
            let ((pa, va), (pb, vb)) = (w[0], w[1]);
            if fpr >= pb {
                let f = if pa > pb { (pa.ln() - fpr.ln()) / (pa.ln() - pb.ln()) } else { 1.0 };
                return va + (vb - va) * f as f32;
            }
        }
        t[t.len() - 1].1
    }

    /// The share of held-out benign rows with a vote score at least `v`:
    /// how rare a row scoring `v` is among normal traffic. Past the highest
    /// held-out row it keeps falling toward 0 (scores are below 2).
    pub fn share_at(&self, v: f32) -> f64 {
        let t = &self.tail;
        if v <= t[0].1 {
            return t[0].0;
        }
        for w in t.windows(2) {
            let ((pa, va), (pb, vb)) = (w[0], w[1]);
            if v <= vb {
                let f = if vb > va { f64::from((v - va) / (vb - va)) } else { 1.0 };
                return (pa.ln() + (pb.ln() - pa.ln()) * f).exp();
            }
        }
        let (p, top) = t[t.len() - 1];
        p * f64::from(((2.0 - v) / (2.0 - top).max(1e-6)).clamp(0.0, 1.0))
    }
}

/// The `k`-th highest of `v` (k ≥ 1, clamped to the length): the vote score.
fn kth_highest(v: &mut [f32], k: usize) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let k = k.clamp(1, v.len());
    v.sort_by(|a, b| b.total_cmp(a));
    v[k - 1]
}

/// Name of the supervised member in outputs.
pub const FOREST_NAME: &str = "random_forest";

#[derive(Debug)]
pub struct Ensemble {
    members: Vec<Member>,
    min_votes: usize,
    supervised: Option<Supervised>,
    operating: Option<OperatingPoint>,
    /// A threshold was set by hand (`--threshold`): the operating point no
    /// longer decides, severity is the vote count's.
    manual: bool,
}

/// Rows per parallel task: large enough for SGEMM blocks and candle batches
/// to pay off, small enough to share the work between cores.
const CHUNK: usize = 2048;

impl Ensemble {
    pub fn new(members: Vec<Member>, min_votes: Option<usize>) -> Result<Self, DetectError> {
        let n = members.len();
        EnsembleParams { contamination: 0.05, min_votes, fpr: None }.check(n)?;
        Ok(Ensemble {
            members,
            min_votes: min_votes.unwrap_or(n.div_ceil(2).max(1)),
            supervised: None,
            operating: None,
            manual: false,
        })
    }

    /// Adds the operating point the thresholds were set from (a loaded model).
    pub fn with_operating_point(mut self, op: OperatingPoint) -> Result<Self, DetectError> {
        if !op.is_valid() {
            return Err(DetectError::Fit { model: "ensemble", reason: "operating point: invalid tail".into() });
        }
        self.operating = Some(op);
        Ok(self)
    }

    pub fn operating_point(&self) -> Option<&OperatingPoint> {
        self.operating.as_ref()
    }

    /// Moves the operating point to another budget (`detect --fpr`): every
    /// detector's threshold to the level that budget gives. `false` for a
    /// model trained without one (`--contamination`).
    pub fn set_fpr(&mut self, fpr: f64) -> bool {
        let Some(op) = &mut self.operating else { return false };
        op.fpr = fpr;
        op.level = op.level_for(fpr);
        let level = op.level;
        for m in &mut self.members {
            m.calibration.threshold = m.calibration.raw_at(level);
        }
        true
    }

    /// Adds the Random Forest as one more voter. The vote threshold stays
    /// what the unsupervised detectors set (2 of 4 by default): the forest
    /// adds a vote, it does not raise the bar.
    pub fn with_supervised(mut self, s: Supervised) -> Result<Self, DetectError> {
        let stack_ok = s.stack.as_ref().is_none_or(|k| {
            k.weights.len() == self.members.len() + 1 && k.weights.iter().chain([&k.bias]).all(|v| v.is_finite())
        });
        if !stack_ok {
            return Err(DetectError::Fit {
                model: FOREST_NAME,
                reason: format!(
                    "stacking weights: {} for {} models, or not all finite",
                    s.stack.as_ref().map_or(0, |k| k.weights.len()),
                    self.members.len() + 1
                ),
            });
        }
        if s.forest.width() != self.width() || s.forest.classes() != s.classes.len() || s.classes.len() < 2 {
            return Err(DetectError::Fit {
                model: FOREST_NAME,
                reason: format!(
                    "forest of width {} with {} classes ({} names) for models of width {}",
                    s.forest.width(),
                    s.forest.classes(),
                    s.classes.len(),
                    self.width()
                ),
            });
        }
        self.supervised = Some(s);
        Ok(self)
    }

    pub fn supervised(&self) -> Option<&Supervised> {
        self.supervised.as_ref()
    }

    /// Every voter's name, in [`Verdict::models`] order.
    pub fn model_names(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.members.iter().map(|m| m.detector.kind().name()).collect();
        if self.supervised.is_some() {
            v.push(FOREST_NAME);
        }
        v
    }

    /// Voters: the detectors, and the forest when there is one.
    pub fn voters(&self) -> usize {
        self.members.len() + usize::from(self.supervised.is_some())
    }

    /// Per model that can say: which input columns made it flag each row of
    /// `x` (see [`crate::Detector::attribute`]), by model name.
    pub fn attributions(&self, x: ArrayView2<'_, f32>) -> Vec<(&'static str, ndarray::Array2<f32>)> {
        self.members.iter().filter_map(|m| Some((m.detector.kind().name(), m.detector.attribute(x)?))).collect()
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn kinds(&self) -> Vec<Kind> {
        self.members.iter().map(|m| m.detector.kind()).collect()
    }

    pub fn min_votes(&self) -> usize {
        self.min_votes
    }

    pub fn width(&self) -> usize {
        self.members.first().map_or(0, |m| m.detector.width())
    }

    /// Overrides one model's threshold (raw score units).
    pub fn set_threshold(&mut self, k: Kind, threshold: f32) -> bool {
        match self.members.iter_mut().find(|m| m.detector.kind() == k) {
            Some(m) => {
                m.calibration.threshold = threshold;
                self.manual = true;
                true
            }
            None => false,
        }
    }

    /// The operating point when it decides (not overridden by hand).
    fn deciding(&self) -> Option<&OperatingPoint> {
        self.operating.as_ref().filter(|_| !self.manual)
    }

    /// Severity and confidence of a row with `votes` flags and vote score
    /// `vs` (see the module docs).
    fn grade(&self, votes: usize, vs: f32) -> (Severity, f32) {
        let n = self.voters();
        let agree = votes as f32 / n as f32;
        let Some(op) = self.deciding() else { return (self.severity(votes), agree) };
        if votes < self.min_votes {
            return (Severity::None, agree / 2.0);
        }
        let p = op.share_at(vs);
        let past = ((op.fpr / p.max(1e-12)).log10() / 2.0).clamp(0.0, 1.0) as f32;
        let mut s = if p <= op.fpr / 100.0 {
            Severity::High
        } else if p <= op.fpr / 10.0 {
            Severity::Medium
        } else {
            Severity::Low
        };
        if votes == n && n >= 2 {
            s = match s {
                Severity::Low => Severity::Medium,
                _ => Severity::High,
            };
        }
        (s, (agree + past) / 2.0)
    }

    pub fn severity(&self, votes: usize) -> Severity {
        let n = self.voters();
        if votes < self.min_votes {
            Severity::None
        } else if votes == n && n >= 2 {
            Severity::High
        } else if votes == self.min_votes && votes < n {
            Severity::Low
        } else {
            Severity::Medium
        }
    }

    /// Raw scores of every model (model-major: `out[m][row]`), in parallel
    /// over row chunks.
    pub fn raw_scores(&self, x: ArrayView2<'_, f32>) -> Result<Vec<Vec<f32>>, DetectError> {
        for m in &self.members {
            crate::check_width(m.detector.as_ref(), x)?;
        }
        let n = x.nrows();
        let mut out = vec![vec![0.0f32; n]; self.members.len()];
        let chunks: Vec<(usize, Vec<Vec<f32>>)> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let (a, b) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
                let part = x.slice_axis(ndarray::Axis(0), ndarray::Slice::from(a..b));
                let scores = self
                    .members
                    .iter()
                    .map(|m| {
                        let mut o = vec![0.0; b - a];
                        m.detector.score(part, &mut o);
                        o
                    })
                    .collect();
                (a, scores)
            })
            .collect();
        for (a, scores) in chunks {
            for (m, s) in scores.into_iter().enumerate() {
                out[m][a..a + s.len()].copy_from_slice(&s);
            }
        }
        Ok(out)
    }

    /// Calibrated scores of every detector (model-major), the forest left out.
    pub fn calibrated_scores(&self, x: ArrayView2<'_, f32>) -> Result<Vec<Vec<f32>>, DetectError> {
        let raw = self.raw_scores(x)?;
        Ok(self
            .members
            .iter()
            .zip(raw)
            .map(|(m, r)| r.into_iter().map(|v| m.calibration.calibrated(v)).collect())
            .collect())
    }

    /// Scores and votes on every row.
    pub fn judge(&self, x: ArrayView2<'_, f32>) -> Result<Vec<Verdict>, DetectError> {
        let raw = self.raw_scores(x)?;
        let n_models = self.voters();
        let k = self.supervised.as_ref().map_or(0, |s| s.classes.len());
        let proba = self.supervised.as_ref().map(|s| s.forest.predict_proba(x));
        let stack = self.supervised.as_ref().and_then(|s| s.stack.as_ref());
        Ok((0..x.nrows())
            .map(|i| {
                let mut sum = 0.0;
                // Kept only for a stack: no allocation per row without one.
                let keep = stack.is_some();
                let mut calibrated = Vec::new();
                // The detectors' calibrated scores for the vote score, on
                // the stack: four detectors at most.
                let mut level = [0f32; Kind::ALL.len()];
                let mut votes = 0;
                let mut models: Vec<(f32, bool)> = self
                    .members
                    .iter()
                    .zip(&raw)
                    .enumerate()
                    .map(|(j, (m, r))| {
                        let v = r[i];
                        let flag = m.calibration.flags(v);
                        votes += usize::from(flag);
                        let c = m.calibration.calibrated(v);
                        sum += c;
                        if keep {
                            calibrated.push(c);
                        }
                        if let Some(l) = level.get_mut(j) {
                            *l = c;
                        }
                        (v, flag)
                    })
                    .collect();
                let n_det = self.members.len().min(level.len());
                let vote_score = self.operating.is_some().then(|| kth_highest(&mut level[..n_det], self.min_votes));
                let mut category = None;
                let mut stacked = None;
                let mut supervised_says = false;
                if let Some(p) = &proba {
                    // Flagged when the most probable class is an attack (as
                    // scikit-learn's `predict`; P(malicious) > 0.5 called
                    // 30 % of UNSW-NB15's benign flows attacks: balanced
                    // class weights inflate it); P(malicious) ranks, and is
                    // its calibrated score too: a probability.
                    let row = &p[i * k..][..k];
                    let malicious = (1.0 - row[0]).clamp(0.0, 1.0);
                    let best = (0..k).max_by(|a, b| row[*a].total_cmp(&row[*b]).then(b.cmp(a))).unwrap_or(0);
                    let flag = best != 0;
                    votes += usize::from(flag);
                    sum += malicious;
                    stacked = stack.map(|k| k.score(&calibrated, malicious));
                    models.push((malicious, flag));
                    if flag {
                        category = Some(best as u16);
                    }
                    // The model that saw the attacks decides alone too (the
                    // detectors' budget leaves most attacks it knows below
                    // the vote): by the stacked probability, a logistic
                    // regression fitted on held-out labeled rows, when there
                    // is one.
                    supervised_says = stacked.map_or(flag, |p| p > 0.5);
                }
                let (mut severity, confidence) = self.grade(votes, vote_score.unwrap_or(0.0));
                if severity == Severity::None && supervised_says {
                    severity = Severity::Low;
                }
                Verdict {
                    score: stacked.or(vote_score).unwrap_or(sum / n_models as f32),
                    votes: votes as u8,
                    severity,
                    confidence,
                    models,
                    category,
                }
            })
            .collect())
    }
}

/// Training rows held out for calibration at most: quantiles of 100k
/// scores are as good as of all, and LOF/SVM scoring is the costly part.
pub const CALIBRATION_ROWS: usize = 100_000;

/// Rows the detectors are fitted on at most. None of them looks at more
/// (autoencoder 50k, SVM 3k, LOF 2k, each tree 256), and the copy stays small.
pub const FIT_ROWS: usize = 200_000;

/// Below this many training rows every row is used for both fitting and
/// calibration: too few to spare a fifth.
pub const MIN_HOLDOUT_ROWS: usize = 1000;

/// How many training rows fit the detectors and how many, held out from the
/// fit, calibrate their thresholds: a fifth (at most [`CALIBRATION_ROWS`])
/// when there are at least [`MIN_HOLDOUT_ROWS`]; else all rows do both.
///
/// Why hold out: a detector scores the rows it was fitted on lower than new
/// rows of the same traffic (LOF and the SVM keep some as their reference or
/// support), so thresholds set on them flag too much new benign traffic —
/// on the CIC-IDS2017 benign half, 12 % instead of the intended ~5 %.
pub fn split_sizes(n: usize) -> (usize, usize) {
    if n < MIN_HOLDOUT_ROWS {
        return (n, n);
    }
    let cal = (n / 5).min(CALIBRATION_ROWS);
    ((n - cal).min(FIT_ROWS), cal)
}

/// Which of `n` training rows fit the detectors (`None`: all of them) and
/// which calibrate them ([`split_sizes`]), seeded; both sorted.
pub fn split_rows(n: usize, seed: u64) -> (Option<Vec<usize>>, Vec<usize>) {
    let (n_fit, n_cal) = split_sizes(n);
    if n_cal == n {
        return (None, (0..n).collect());
    }
    let mut rows = rand::seq::index::sample(&mut crate::rng(seed, 9), n, n_fit + n_cal).into_vec();
    let mut fit = rows.split_off(n_cal);
    // Row order kept: memory locality, and the same rows in the same
    // order for the same seed.
    fit.sort_unstable();
    rows.sort_unstable();
    (Some(fit), rows)
}

/// Fits every detector (in parallel) on part of `x`, then calibrates each on
/// its scores of the rows held out (see [`split_sizes`]); the split is seeded.
/// `done` hears of each detector as it finishes, with its fitting time.
pub fn fit(
    params: &[crate::Params],
    ep: &EnsembleParams,
    x: ArrayView2<'_, f32>,
    seed: u64,
    done: &(dyn Fn(Kind, std::time::Duration) + Sync),
) -> Result<Ensemble, DetectError> {
    ep.check(params.len())?;
    let mut kinds: Vec<Kind> = params.iter().map(crate::Params::kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.len() != params.len() {
        return Err(DetectError::Params { model: "ensemble", problems: vec!["a detector is listed twice".into()] });
    }
    let n = x.nrows();
    let (fit_rows, cal_rows) = split_rows(n, seed);
    let fit_x = fit_rows.as_ref().map(|r| x.select(ndarray::Axis(0), r));
    let fitted: Vec<Box<dyn Detector>> = {
        let fit_view = match &fit_x {
            Some(a) => a.view(),
            None => x.view(),
        };
        params
            .par_iter()
            .map(|p| {
                let t = std::time::Instant::now();
                let m = p.fit(fit_view, seed)?;
                done(p.kind(), t.elapsed());
                Ok(m)
            })
            .collect::<Result<_, DetectError>>()?
    };
    drop(fit_x);
    let sample = x.select(ndarray::Axis(0), &cal_rows);
    let members: Vec<Member> = fitted
        .into_iter()
        .map(|d| Member { detector: d, calibration: Calibration { threshold: 0.0, quantiles: Vec::new() } })
        .collect();
    let mut e = Ensemble { members, min_votes: 1, supervised: None, operating: None, manual: false };
    let raw = e.raw_scores(sample.view())?;
    for (m, scores) in e.members.iter_mut().zip(&raw) {
        m.calibration = Calibration::fit(scores, ep.contamination).ok_or_else(|| DetectError::Fit {
            model: m.detector.kind().name(),
            reason: "no finite score on the training rows".into(),
        })?;
    }
    let n = e.members.len();
    e.min_votes = ep.min_votes.unwrap_or(n.div_ceil(2).max(1));
    if let Some(fpr) = ep.fpr {
        // The vote score of every held-out row, then one level for all.
        let mut row = Vec::with_capacity(n);
        let votes: Vec<f32> = (0..sample.nrows())
            .map(|i| {
                row.clear();
                row.extend(e.members.iter().zip(&raw).map(|(m, r)| m.calibration.calibrated(r[i])));
                kth_highest(&mut row, e.min_votes)
            })
            .collect();
        let op = OperatingPoint::fit(&votes, fpr).ok_or_else(|| DetectError::Fit {
            model: "ensemble",
            reason: "no finite vote score on the held-out rows".into(),
        })?;
        e.operating = Some(op);
        e.set_fpr(fpr);
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Rows of two detector scores and a forest probability: the first
    /// detector is noise, the second weakly informative, the forest strongly.
    fn rows(n: usize, seed: u64) -> (Vec<f32>, Vec<bool>) {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let attack = i % 5 == 0;
            let noise: f32 = r.gen_range(0.0..1.0);
            let weak: f32 = r.gen_range(0.0..1.0) + if attack { 0.3 } else { 0.0 };
            let forest: f32 = if attack { r.gen_range(0.3..1.0) } else { r.gen_range(0.0..0.7) };
            x.extend([noise, weak, forest]);
            y.push(attack);
        }
        (x, y)
    }

    #[test]
    fn stacking_weighs_the_informative_models() {
        // These Newton steps, replayed in numpy on rows like these, match
        // scikit-learn's LogisticRegression(C=1) (the same penalty) to 1e-3;
        // the noise weight's standard error at this size is ~0.1.
        let (x, y) = rows(20_000, 1);
        let s = Stack::fit(&x, 3, &y).expect("two classes");
        assert_eq!(s.weights.len(), 3);
        assert!(s.weights[0].abs() < 0.35, "noise weight {:?}", s.weights);
        assert!(s.weights[1] > 0.5 && s.weights[2] > 1.0, "{:?}", s.weights);
        // Higher forest probability and detector score → higher score; in (0, 1).
        let (lo, hi) = (s.score(&[0.5, 0.2], 0.2), s.score(&[0.5, 0.9], 0.9));
        assert!(0.0 < lo && lo < hi && hi < 1.0, "{lo} {hi}");
        // Separable rows (the forest alone decides) still give finite weights.
        let sep: Vec<f32> = y.iter().flat_map(|&a| [0.5, 0.5, if a { 1.0 } else { 0.0 }]).collect();
        let s = Stack::fit(&sep, 3, &y).expect("two classes");
        assert!(s.weights.iter().all(|w| w.is_finite()) && s.weights[2] > 1.0, "{s:?}");
        assert!(s.score(&[0.5, 0.5], 1.0) > 0.9 && s.score(&[0.5, 0.5], 0.0) < 0.1);
    }

    #[test]
    fn stacking_needs_both_classes_and_finite_inputs() {
        let (x, y) = rows(100, 2);
        assert!(Stack::fit(&x, 3, &[false; 100]).is_none());
        assert!(Stack::fit(&x, 3, &[true; 100]).is_none());
        assert!(Stack::fit(&x[..30], 3, &y).is_none(), "rows and labels disagree");
        let mut bad = x.clone();
        bad[4] = f32::NAN;
        assert!(Stack::fit(&bad, 3, &y).is_none());
    }

    #[test]
    fn the_operating_point_flags_the_budgeted_share_of_held_out_rows() {
        // Vote scores 0.0000, 0.0001, …, 0.9999: the top 1 % is above 0.99.
        let v: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        let op = OperatingPoint::fit(&v, 0.01).expect("finite");
        assert!(op.is_valid());
        let flagged = v.iter().filter(|x| **x > op.level).count();
        assert!((99..=101).contains(&flagged), "{flagged} flagged at level {}", op.level);
        // Another budget moves the level; rarer scores have smaller shares.
        assert!(op.level_for(0.001) > op.level && op.level_for(0.1) < op.level);
        let (a, b, c) = (op.share_at(0.95), op.share_at(0.999), op.share_at(1.5));
        assert!((a - 0.05).abs() < 0.005 && b < 0.0015 && c < 1e-4 && c > 0.0, "{a} {b} {c}");
        // A budget below one row: only what scores above every held-out row.
        assert_eq!(op.level_for(1e-6), 0.9999);
        assert!(OperatingPoint::fit(&[f32::NAN], 0.01).is_none());
        // The vote score is the k-th highest.
        assert_eq!(kth_highest(&mut [0.2, 0.9, 0.5, 0.7], 2), 0.7);
        assert_eq!(kth_highest(&mut [0.2, 0.9], 5), 0.2);
    }

    #[test]
    fn solve_matches_a_known_system() {
        // 2x + y = 5, x + 3y = 10 → x = 1, y = 3 (first column pivot swapped).
        let mut a = vec![1.0, 3.0, 2.0, 1.0];
        let mut b = vec![10.0, 5.0];
        let x = solve(&mut a, &mut b, 2).expect("regular");
        assert!((x[0] - 1.0).abs() < 1e-12 && (x[1] - 3.0).abs() < 1e-12, "{x:?}");
        assert!(solve(&mut [1.0, 2.0, 2.0, 4.0], &mut [1.0, 2.0], 2).is_none(), "singular");
    }
}
