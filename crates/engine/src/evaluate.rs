//! How well a model separates labeled traffic, per detector and for the
//! ensemble (`flowhound evaluate`): the metrics of
//! `flowhound_detect::metrics` (defined as scikit-learn's) over labeled
//! flows, as a terminal table or JSON (`evaluate --report` writes the
//! dashboard's page, whose ground-truth tab shows the same numbers).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use flowhound_detect::bundle::Bundle;
use flowhound_detect::metrics::{self, Quality};
use flowhound_detect::{Severity, Verdict};
use flowhound_flow::FlowRecord;
use serde_json::json;

/// Labeled rows as the scorers saw them.
#[derive(Debug, Default)]
pub struct Rows {
    labels: Vec<bool>,
    categories: Vec<Option<u32>>,
    names: Vec<String>,
    ids: BTreeMap<String, u32>,
    /// Per detector, then the ensemble: scores and flags.
    scores: Vec<Vec<f32>>,
    flags: Vec<Vec<bool>>,
    /// The forest's predicted class per row (with a forest).
    predicted: Vec<Option<u16>>,
    pub unlabeled: u64,
}

impl Rows {
    fn category(&mut self, c: Option<&str>) -> Option<u32> {
        let c = c?;
        if let Some(id) = self.ids.get(c) {
            return Some(*id);
        }
        let id = self.names.len() as u32;
        self.names.push(c.to_string());
        self.ids.insert(c.to_string(), id);
        Some(id)
    }
}

/// The evaluation of every scorer, in order: detectors, then the ensemble.
#[derive(Debug)]
pub struct Evaluation {
    /// Labeled flows, and of them malicious.
    pub n: usize,
    pub positives: usize,
    unlabeled: u64,
    /// Every scorer's name (detectors in verdict order, then `ensemble`) and quality.
    pub names: Vec<String>,
    pub quality: Vec<Quality>,
    /// The forest's attack-category classification, when there is a forest.
    pub classification: Option<metrics::Classification>,
    /// Votes the ensemble flags at.
    min_votes: usize,
}

impl Rows {
    /// Rows for a model with voters `voters` (the ensemble comes last).
    pub fn new(voters: usize) -> Rows {
        Rows { scores: vec![Vec::new(); voters + 1], flags: vec![Vec::new(); voters + 1], ..Default::default() }
    }

    /// Flows with ground truth.
    pub fn labeled(&self) -> usize {
        self.labels.len()
    }

    /// Every scorer's ROC and precision–recall curves (`points` each at most),
    /// in [`Evaluation::names`] order.
    pub fn curves(&self, points: usize) -> Vec<(metrics::Curve, metrics::Curve)> {
        self.scores.iter().map(|s| metrics::curves(&self.labels, s, points)).collect()
    }

    /// One scored flow; flows without ground truth are counted and skipped.
    pub fn add(&mut self, r: &FlowRecord, v: &Verdict) {
        let Some(t) = &r.truth else {
            self.unlabeled += 1;
            return;
        };
        self.labels.push(t.malicious);
        let c = if t.malicious { self.category(t.category.as_deref()) } else { None };
        self.categories.push(c);
        for (i, (s, f)) in v.models.iter().enumerate() {
            self.scores[i].push(*s);
            self.flags[i].push(*f);
        }
        self.predicted.push(v.category);
        let e = self.scores.len() - 1;
        self.scores[e].push(v.score);
        self.flags[e].push(v.severity != Severity::None);
    }
}

impl Evaluation {
    /// The metrics of every scorer of `bundle` over `rows`.
    pub fn new(bundle: &Bundle, rows: &Rows) -> Evaluation {
        let voters = bundle.ensemble.model_names();
        let cats: Vec<Option<&str>> =
            rows.categories.iter().map(|c| c.map(|c| rows.names[c as usize].as_str())).collect();
        let mut names: Vec<String> = voters.iter().map(|k| k.to_string()).collect();
        names.push("ensemble".into());
        let quality: Vec<Quality> =
            rows.scores.iter().zip(&rows.flags).map(|(s, f)| metrics::quality(&rows.labels, &cats, s, f)).collect();
        // The forest's classes against the truth: benign, or the attack's
        // category (`malicious` without one, as in training).
        let classification = bundle.ensemble.supervised().map(|sup| {
            let truth: Vec<&str> = rows
                .labels
                .iter()
                .zip(&cats)
                .map(|(m, c)| if *m { c.unwrap_or("malicious") } else { "benign" })
                .collect();
            let predicted: Vec<&str> = rows
                .predicted
                .iter()
                .map(|p| p.and_then(|p| sup.classes.get(usize::from(p))).map_or("benign", String::as_str))
                .collect();
            metrics::classification(&truth, &predicted)
        });
        Evaluation {
            classification,
            n: rows.labels.len(),
            positives: rows.labels.iter().filter(|y| **y).count(),
            unlabeled: rows.unlabeled,
            names,
            quality,
            min_votes: bundle.ensemble.min_votes(),
        }
    }
}

impl Evaluation {
    pub fn json(&self) -> serde_json::Value {
        to_json(self)
    }

    /// The terminal tables.
    pub fn table(&self) -> String {
        table(self, self.min_votes)
    }
}

fn to_json(ev: &Evaluation) -> serde_json::Value {
    let (last, models) = ev.quality.split_last().map_or((None, &[][..]), |(l, m)| (Some(l), m));
    let models: serde_json::Map<String, serde_json::Value> =
        ev.names.iter().zip(models).map(|(n, q)| (n.clone(), serde_json::to_value(q).unwrap_or_default())).collect();
    json!({
        "n": ev.n,
        "positives": ev.positives,
        "unlabeled": ev.unlabeled,
        "models": models,
        "ensemble": last,
        "classification": ev.classification,
    })
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.4}"))
}

/// The headline numbers of one scorer, formatted, in [`METRICS`] order.
const METRICS: [&str; 7] = ["precision", "recall", "F1", "accuracy", "FPR", "ROC-AUC", "PR-AUC"];

fn cells(q: &Quality) -> [String; 7] {
    let f = |v: f64| format!("{v:.4}");
    [f(q.precision), f(q.recall), f(q.f1), f(q.accuracy), f(q.fpr), opt(q.roc_auc), opt(q.pr_auc)]
}

/// "flagged (share %)" of one category's `n` flows for one scorer.
fn detected(q: &Quality, category: &str, n: u64) -> String {
    let hit = q.per_category.get(category).map_or(0, |d| d.detected);
    format!("{hit} ({:.0} %)", 100.0 * hit as f64 / n.max(1) as f64)
}

/// The forest's per-class table, for the terminal.
fn class_table(c: &metrics::Classification) -> String {
    let mut s = format!(
        "\nrandom_forest attack-category classification: accuracy {:.4}, macro-F1 {:.4}, weighted F1 {:.4}\n",
        c.accuracy, c.macro_f1, c.weighted_f1
    );
    let _ = writeln!(s, "{:<24} {:>9} {:>9} {:>9} {:>8}", "class", "precision", "recall", "F1", "flows");
    for (name, q) in &c.per_class {
        let _ = writeln!(s, "{name:<24} {:>9.4} {:>9.4} {:>9.4} {:>8}", q.precision, q.recall, q.f1, q.support);
    }
    s
}

fn table(ev: &Evaluation, min_votes: usize) -> String {
    let mut s = format!(
        "{} labeled flows: {} malicious, {} benign{}\n\n",
        ev.n,
        ev.positives,
        ev.n - ev.positives,
        if ev.unlabeled > 0 {
            format!(" ({} flows without ground truth skipped)", ev.unlabeled)
        } else {
            String::new()
        }
    );
    let _ = write!(s, "{:<14}", "model");
    for m in METRICS {
        let _ = write!(s, " {m:>9}");
    }
    let _ = writeln!(s, " {:>8} {:>8} {:>8} {:>8}", "TP", "FP", "TN", "FN");
    for (n, q) in ev.names.iter().zip(&ev.quality) {
        let _ = write!(s, "{n:<14}");
        for c in cells(q) {
            let _ = write!(s, " {c:>9}");
        }
        let c = &q.confusion;
        let _ = writeln!(s, " {:>8} {:>8} {:>8} {:>8}", c.tp, c.fp, c.tn, c.fn_);
    }
    let _ = writeln!(
        s,
        "(flags at each detector's calibrated threshold; the ensemble flags at ≥ {min_votes} votes; \
         ROC-AUC and PR-AUC from the continuous scores)"
    );
    if let Some(c) = &ev.classification {
        s += &class_table(c);
    }
    let Some(ens) = ev.quality.last() else { return s };
    if !ens.per_category.is_empty() {
        s += "\ndetected per attack category (flows flagged / flows):\n";
        let _ = write!(s, "{:<24} {:>8}", "category", "flows");
        for n in &ev.names {
            let _ = write!(s, " {:>14}", n);
        }
        s.push('\n');
        for (cat, d) in &ens.per_category {
            let _ = write!(s, "{:<24} {:>8}", cat, d.n);
            for q in &ev.quality {
                let _ = write!(s, " {:>14}", detected(q, cat, d.n));
            }
            s.push('\n');
        }
    }
    s
}
