//! How well a model separates labeled traffic, per detector and for the
//! ensemble (`flowhound evaluate`): the metrics of
//! `flowhound_detect::metrics` (defined as scikit-learn's) over labeled
//! flows, as a terminal table, JSON, or a self-contained HTML page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use flowhound_detect::bundle::Bundle;
use flowhound_detect::metrics::{self, Curve, Quality};
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
    n: usize,
    positives: usize,
    unlabeled: u64,
    names: Vec<String>,
    quality: Vec<Quality>,
    curves: Vec<(Curve, Curve)>,
    /// The forest's attack-category classification, when there is a forest.
    classification: Option<metrics::Classification>,
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
    /// The metrics of every scorer of `bundle` over `rows`; `curves`: the
    /// ROC and PR curves too (for the HTML page).
    pub fn new(bundle: &Bundle, rows: &Rows, curves: bool) -> Evaluation {
        let voters = bundle.ensemble.model_names();
        let cats: Vec<Option<&str>> =
            rows.categories.iter().map(|c| c.map(|c| rows.names[c as usize].as_str())).collect();
        let mut names: Vec<String> = voters.iter().map(|k| k.to_string()).collect();
        names.push("ensemble".into());
        let quality: Vec<Quality> =
            rows.scores.iter().zip(&rows.flags).map(|(s, f)| metrics::quality(&rows.labels, &cats, s, f)).collect();
        let curves = if curves {
            rows.scores.iter().map(|s| metrics::curves(&rows.labels, s, 400)).collect()
        } else {
            Vec::new()
        };
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
            curves,
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

    /// The self-contained HTML page, naming the `model`.
    pub fn html(&self, model: &str) -> String {
        html(self, model, self.min_votes)
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

/// Text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const COLORS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#d62728"];

/// One SVG plot of curves in the unit square.
fn plot(title: &str, x: &str, y: &str, names: &[String], curves: &[&[(f64, f64)]]) -> String {
    let (w, h, m) = (360.0, 300.0, 40.0);
    let px = |v: f64| m + v * (w - 2.0 * m);
    let py = |v: f64| h - m - v * (h - 2.0 * m);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img"><title>{}</title>"#,
        esc(title)
    );
    let _ = write!(
        s,
        r##"<rect x="{m}" y="{m}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        w - 2.0 * m,
        h - 2.0 * m
    );
    for t in [0.0, 0.5, 1.0] {
        let _ = write!(s, r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">{t}</text>"#, px(t), h - m + 14.0);
        let _ = write!(s, r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{t}</text>"#, m - 4.0, py(t) + 3.0);
    }
    let _ = write!(s, r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>"#, w / 2.0, h - 6.0, esc(x));
    let _ = write!(
        s,
        r#"<text x="12" y="{}" font-size="12" text-anchor="middle" transform="rotate(-90 12 {})">{}</text>"#,
        h / 2.0,
        h / 2.0,
        esc(y)
    );
    let _ = write!(s, r#"<text x="{}" y="16" font-size="13" text-anchor="middle">{}</text>"#, w / 2.0, esc(title));
    for (i, (n, c)) in names.iter().zip(curves).enumerate() {
        let pts: Vec<String> = c.iter().map(|(a, b)| format!("{:.1},{:.1}", px(*a), py(*b))).collect();
        let color = COLORS[i % COLORS.len()];
        let width = if i + 1 == names.len() { 2.5 } else { 1.5 };
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{}"><title>{}</title></polyline>"#,
            pts.join(" "),
            esc(n)
        );
    }
    s + "</svg>"
}

fn html(ev: &Evaluation, model: &str, min_votes: usize) -> String {
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>flowhound evaluation</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}\
         .plots{display:flex;flex-wrap:wrap;gap:2em}.cm{display:inline-block;margin-right:1.5em}.key span{margin-right:1em}\
         </style></head><body>",
    );
    let _ = write!(
        s,
        "<h1>flowhound evaluation</h1><p>Model <code>{}</code>; {} labeled flows: {} malicious, {} benign{}.</p>",
        esc(model),
        ev.n,
        ev.positives,
        ev.n - ev.positives,
        if ev.unlabeled > 0 { format!(" ({} without ground truth skipped)", ev.unlabeled) } else { String::new() }
    );
    s += "<table><tr><th>model</th>";
    for m in METRICS {
        let _ = write!(s, "<th>{m}</th>");
    }
    s += "</tr>";
    for (n, q) in ev.names.iter().zip(&ev.quality) {
        let _ = write!(s, "<tr><td>{}</td>", esc(n));
        for c in cells(q) {
            let _ = write!(s, "<td>{c}</td>");
        }
        s += "</tr>";
    }
    let _ = write!(
        s,
        "</table><p>Flags at each detector's calibrated threshold; the ensemble flags at ≥ {min_votes} votes.</p>"
    );
    s += "<p class=\"key\">";
    for (i, n) in ev.names.iter().enumerate() {
        let _ = write!(s, "<span style=\"color:{}\">■ {}</span>", COLORS[i % COLORS.len()], esc(n));
    }
    s += "</p><div class=\"plots\">";
    let roc: Vec<&[(f64, f64)]> = ev.curves.iter().map(|c| c.0.as_slice()).collect();
    let pr: Vec<&[(f64, f64)]> = ev.curves.iter().map(|c| c.1.as_slice()).collect();
    s += &plot("ROC", "false-positive rate", "true-positive rate", &ev.names, &roc);
    s += &plot("Precision–recall", "recall", "precision", &ev.names, &pr);
    s += "</div><h2>Confusion matrices</h2>";
    for (n, q) in ev.names.iter().zip(&ev.quality) {
        let c = &q.confusion;
        let _ = write!(
            s,
            "<div class=\"cm\"><table><tr><th>{}</th><th>flagged</th><th>not flagged</th></tr>\
             <tr><td>malicious</td><td>{}</td><td>{}</td></tr><tr><td>benign</td><td>{}</td><td>{}</td></tr></table></div>",
            esc(n),
            c.tp,
            c.fn_,
            c.fp,
            c.tn
        );
    }
    if let Some(ens) = ev.quality.last().filter(|e| !e.per_category.is_empty()) {
        s += "<h2>Detected per attack category</h2><table><tr><th>category</th><th>flows</th>";
        for n in &ev.names {
            let _ = write!(s, "<th>{}</th>", esc(n));
        }
        s += "</tr>";
        for (cat, d) in &ens.per_category {
            let _ = write!(s, "<tr><td>{}</td><td>{}</td>", esc(cat), d.n);
            for q in &ev.quality {
                let _ = write!(s, "<td>{}</td>", detected(q, cat, d.n));
            }
            s += "</tr>";
        }
        s += "</table>";
    }
    if let Some(c) = &ev.classification {
        let _ = write!(
            s,
            "<h2>Random Forest: attack categories</h2><p>accuracy {:.4}, macro-F1 {:.4}, weighted F1 {:.4}</p>\
             <table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>flows</th></tr>",
            c.accuracy, c.macro_f1, c.weighted_f1
        );
        for (name, q) in &c.per_class {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
                esc(name),
                q.precision,
                q.recall,
                q.f1,
                q.support
            );
        }
        s += "</table>";
    }
    s + "</body></html>\n"
}
