//! One analysis: score inputs with a model, explain and classify what is
//! flagged, group it into incidents, and gather the summary, the ground-truth
//! metrics and the charts. The dashboard runs it on uploads in the
//! background; `flowhound report` runs it on files.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{metrics, DetectError, Severity};
use flowhound_engine::evaluate::{Evaluation, Rows};
use flowhound_engine::{run_files, Ending, Flow, Output, OutputError, Pipeline, RunError, Show, Step, Tally};
use flowhound_explain::json::{flow_json, incident_json};
use flowhound_explain::{Allowlist, ExplainParams, Explainer, Finding, Incident, IncidentParams, Incidents};
use flowhound_features::Kind as FeatureKind;
use flowhound_flow::net::Networks;
use flowhound_flow::FlowRecord;
use flowhound_source::{FileReport, Input, ScanEvents, ScanOptions};
use serde_json::{json, Map, Value};

use crate::charts::Charts;

/// Settings of one analysis.
#[derive(Debug)]
pub struct AnalysisParams {
    pub top_features: usize,
    pub incident_gap_secs: u32,
    pub allow: Allowlist,
    /// The model version the summary names.
    pub model_version: i64,
    /// Ground truth only of the flows `train --holdout` kept out (`evaluate
    /// --holdout --report`): the rest were trained on.
    pub holdout: Option<flowhound_detect::Holdout>,
}

impl Default for AnalysisParams {
    fn default() -> Self {
        AnalysisParams {
            top_features: 5,
            incident_gap_secs: 900,
            allow: Allowlist::default(),
            model_version: 1,
            holdout: None,
        }
    }
}

/// Shared with whoever watches: raw bytes read of the total.
#[derive(Debug, Default)]
pub struct Progress {
    pub read: AtomicU64,
    pub total: AtomicU64,
}

impl Progress {
    /// Share done, 0..=1.
    pub fn fraction(&self) -> f64 {
        let (r, t) = (self.read.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed));
        if t == 0 {
            0.0
        } else {
            (r as f64 / t as f64).min(1.0)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// Nothing usable in the input: its problems, one per file.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Bundle(#[from] flowhound_detect::BundleError),
    #[error(transparent)]
    Explain(#[from] flowhound_explain::ExplainError),
}

/// One flagged flow, as stored and shown.
#[derive(Debug, Clone)]
pub struct Anomaly {
    pub flow: u64,
    pub severity: Severity,
    pub class: String,
    pub score: f32,
    pub suppressed: bool,
    /// `detect`'s JSON object of the flow, plus `details`, serialized: a
    /// string is a fraction of a JSON tree's memory (1M flows with 107k
    /// anomalies: 2.2 GB as trees).
    pub json: Box<str>,
    /// The raw feature row it was scored on (for retraining with feedback).
    pub raw: Vec<f32>,
    /// Its external addresses (learned as known when marked benign).
    pub external: Vec<IpAddr>,
}

impl Anomaly {
    /// The stored form of a flagged flow: `detect`'s JSON plus the detail
    /// panel's fields, and what retraining needs.
    pub fn new(x: &Flow<'_>, f: &Finding, names: &[&str], classes: Option<&[String]>, nets: &Networks) -> Anomaly {
        let Flow { id: flow, record: r, verdict: v, raw, .. } = *x;
        let entry = x.shown.entry;
        let mut json = flow_json(flow, r, v, Some(f), entry, names, classes);
        json.insert("details".into(), details(r));
        Anomaly {
            flow,
            severity: v.severity,
            class: f.class.to_string(),
            score: v.score,
            suppressed: entry.is_some(),
            json: Value::Object(json).to_string().into_boxed_str(),
            raw: raw.to_vec(),
            external: [r.src, r.dst].into_iter().flatten().filter(|a| !nets.is_internal(*a)).collect(),
        }
    }
}

/// One incident, as stored and shown.
#[derive(Debug, Clone)]
pub struct IncidentRow {
    pub id: u64,
    pub severity: Severity,
    pub class: String,
    pub score: f32,
    /// `detect --incidents`'s JSON object, serialized.
    pub json: Box<str>,
    /// Its flows (input positions).
    pub members: Vec<u64>,
}

/// Everything one analysis found.
#[derive(Debug)]
pub struct Analysis {
    pub summary: Value,
    pub charts: Value,
    pub anomalies: Vec<Anomaly>,
    pub incidents: Vec<IncidentRow>,
}

impl IncidentRow {
    pub fn new(i: &Incident) -> IncidentRow {
        IncidentRow {
            id: i.id,
            severity: i.peak_severity,
            class: i.class.to_string(),
            score: i.max_score,
            json: incident_json(i).to_string().into_boxed_str(),
            members: i.members.clone(),
        }
    }
}

impl Analysis {
    /// Each flagged flow's incident id, by flow position.
    pub fn incident_of(&self) -> std::collections::HashMap<u64, u64> {
        self.incidents.iter().flat_map(|i| i.members.iter().map(move |f| (*f, i.id))).collect()
    }
}

/// Counts rejected lines and raw bytes read.
struct Events<'a> {
    progress: &'a Progress,
    rejected: u64,
}

impl ScanEvents for Events<'_> {
    fn reject(&mut self, _r: &flowhound_source::LineReject<'_>) {
        self.rejected += 1;
    }
    fn progress(&mut self, raw: u64) {
        self.progress.read.fetch_add(raw, Ordering::Relaxed);
    }
}

/// Fields of the record beyond the key fields, for the detail panel. Text
/// fields are whatever the input said: the page shows them as text.
fn details(r: &FlowRecord) -> Value {
    let cloud = r.cloud.as_deref();
    json!({
        "bytes": r.bytes.total,
        "packets": r.packets.total,
        "duration_s": r.duration_us.map(|d| d as f64 / 1e6),
        "action": r.action.map(|a| a.as_str()),
        "tcp_flags": r.tcp_flags,
        "state": r.state.as_deref(),
        "service": r.service.as_deref(),
        "direction": r.direction.map(|d| d.as_str()),
        "interface_id": cloud.and_then(|c| c.interface_id.as_deref()),
        "account_id": cloud.and_then(|c| c.account_id.as_deref()),
        "vpc_id": cloud.and_then(|c| c.vpc_id.as_deref()),
        "instance_id": cloud.and_then(|c| c.instance_id.as_deref()),
    })
}

/// Ground truth gathered per flow.
#[derive(Debug)]
struct Truth {
    /// Labels, scores and flags per scorer, as `evaluate` gathers them.
    rows: Rows,
    /// The labeled flows counted (their class confusion).
    tally: Tally,
    holdout: Option<flowhound_detect::Holdout>,
}

/// The analysis' side of a run: charts, ground truth, the time span and the
/// stored form of every flagged flow.
struct Collect<'a> {
    names: &'a [&'static str],
    classes: Option<&'a [String]>,
    nets: Networks,
    charts: Charts,
    truth: Truth,
    anomalies: Vec<Anomaly>,
    span: (i64, i64),
}

impl Output for Collect<'_> {
    fn flow(&mut self, x: &Flow<'_>) -> Result<(), OutputError> {
        let (r, v) = (x.record, x.verdict);
        if let Some(t) = r.start {
            self.span = (self.span.0.min(t.secs()), self.span.1.max(t.secs()));
        }
        self.charts.add(x.id, r, v, x.raw, x.input);
        if r.truth.is_some() && self.truth.holdout.is_none_or(|h| h.holds(x.id)) {
            self.truth.rows.add(r, v);
            self.truth.tally.add(r, v, x.finding, x.shown.entry.is_some());
        }
        if let Some(f) = x.finding {
            self.anomalies.push(Anomaly::new(x, f, self.names, self.classes, &self.nets));
        }
        Ok(())
    }
}

/// Scores `inputs` with `bundle`; `progress` is updated as bytes are read.
pub fn analyze(
    bundle: &Bundle,
    inputs: &[Input],
    opts: &ScanOptions,
    p: &AnalysisParams,
    progress: &Progress,
) -> Result<Analysis, AnalysisError> {
    progress.total.store(inputs.iter().map(Input::size).sum(), Ordering::Relaxed);
    let names = bundle.ensemble.model_names();
    let classes = bundle.ensemble.supervised().map(|s| s.classes.as_slice());
    let step = Step::new(Explainer::new(bundle, None, &ExplainParams { top: p.top_features })?);
    let incidents = Incidents::new(IncidentParams { gap_secs: p.incident_gap_secs, samples: 5, ..Default::default() });
    // Every anomaly is stored and grows its incident, suppressed ones too
    // (marked): the page filters them. Incidents as `detect` reports them:
    // single low-severity flows no rule names (the digest) are counted, not
    // listed as incidents of their own — they are in the flow table.
    let show = Show { suppressed: true, ..Show::default() };
    let mut pipeline = Pipeline::new(bundle, step, show, p.allow.clone(), incidents, Ending::AtEnd { digest: true });
    let mut collect = Collect {
        names: &names,
        classes,
        nets: Networks::new(&bundle.features.internal),
        charts: Charts::new(names.clone()),
        truth: Truth { rows: Rows::new(names.len()), tally: Tally::default(), holdout: p.holdout },
        anomalies: Vec::new(),
        span: (i64::MAX, i64::MIN),
    };
    let mut events = Events { progress, rejected: 0 };
    let report = run_files(&mut pipeline, inputs, opts, &mut events, &mut [&mut collect]).map_err(|e| match e {
        RunError::Detect(e) => AnalysisError::Detect(e),
        RunError::Explain(e) => AnalysisError::Explain(e),
        RunError::Bundle(e) => AnalysisError::Bundle(e),
        RunError::Output(e) => AnalysisError::Input(e.to_string()),
    })?;
    let Collect { charts, truth, anomalies, span: (first, last), .. } = collect;
    let tally = std::mem::take(&mut pipeline.tally);
    let order_warning = tally.order_warning.clone();
    let Tally { flows, by_severity, ref by_class, suppressed, .. } = tally;
    if flows == 0 {
        let problems: Vec<String> = report
            .files
            .iter()
            .map(|f| format!("{}: {}", file_name(&f.name), public_error(f).unwrap_or_else(|| "no flow records".into())))
            .collect();
        return Err(AnalysisError::Input(if problems.is_empty() {
            "no flow records".into()
        } else {
            problems.join("; ")
        }));
    }
    let incidents: Vec<IncidentRow> = tally.incidents.iter().map(IncidentRow::new).collect();
    let schema = &bundle.pipeline.input;
    let raw_names: Vec<String> = schema.names().map(str::to_string).collect();
    let numeric: Vec<bool> = schema.features.iter().map(|f| f.kind != FeatureKind::Categorical).collect();
    let threshold =
        bundle.ensemble.operating_point().map_or(1.0 - bundle.ensemble_params.contamination, |op| f64::from(op.level));
    let charts = charts.finish(threshold, &raw_names, &numeric);
    let incidents_by_severity = |s: Severity| incidents.iter().filter(|i| i.severity == s).count();
    let mut summary = json!({
        "flows": flows,
        "anomalies": by_severity[1..].iter().sum::<u64>(),
        "by_severity": {"high": by_severity[3], "medium": by_severity[2], "low": by_severity[1]},
        "by_model": names.iter().zip(&charts["models"]["flagged"].as_array().cloned().unwrap_or_default()).map(|(n, c)| (n.to_string(), c.clone())).collect::<Map<String, Value>>(),
        "by_class": by_class,
        "suppressed": suppressed,
        "incidents": {"total": incidents.len(), "high": incidents_by_severity(Severity::High), "medium": incidents_by_severity(Severity::Medium), "low": incidents_by_severity(Severity::Low), "digest": tally.digest},
        "time_span": if first <= last { json!({"first": ts(first), "last": ts(last)}) } else { Value::Null },
        "rejected_lines": events.rejected,
        // Uploads are read as they come: say when their windows mixed periods.
        "order_warning": order_warning.map(|w| format!("{w}: upload the flows in time order")),
        "files": report.files.iter().map(|f| json!({"name": file_name(&f.name), "format": f.format, "records": f.records, "rejected": f.rejected, "error": public_error(f)})).collect::<Vec<_>>(),
        "model_version": p.model_version,
        "voters": names,
        "min_votes": bundle.ensemble.min_votes(),
        "threshold": threshold,
    });
    if truth.rows.labeled() > 0 {
        summary["ground_truth"] = ground_truth(&truth, bundle);
    }
    Ok(Analysis { summary, charts, anomalies, incidents })
}

/// A file's problem without the server's folders in it.
fn public_error(f: &FileReport) -> Option<String> {
    let e = f.error.as_deref()?;
    let short = file_name(&f.name);
    let e = e.replace(&format!("{}: ", f.name), "").replace(&f.name, &short);
    Some(without_flags(&e))
}

/// A reader's message without the command-line advice in it ("name the
/// format with --input-format …"): a page user has no flags to give.
fn without_flags(e: &str) -> String {
    let parts: Vec<&str> = e.split("; ").collect();
    let kept: Vec<&str> = parts.iter().copied().filter(|p| !p.contains(" --")).collect();
    if kept.len() == parts.len() {
        return e.to_string();
    }
    format!(
        "{} (the dashboard detects the format itself: VPC Flow Logs, Zeek conn logs, UNSW-NB15, CIC-IDS2017, flowhound CSV or JSON lines, pcap/pcapng; convert other files with `flowhound convert` first)",
        kept.join("; ")
    )
}

/// A file's own name: the server's folders are nobody's business.
pub fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

fn ts(secs: i64) -> Option<String> {
    flowhound_flow::Timestamp::from_secs(secs).map(|t| t.to_rfc3339())
}

/// `evaluate`'s numbers: the ensemble's quality, curves and confusion tables
/// (`quality`, `roc`, `pr`, `class_confusion`), every detector's
/// (`detectors`), and the forest's attack-category classification.
fn ground_truth(t: &Truth, bundle: &Bundle) -> Value {
    let ev = Evaluation::new(bundle, &t.rows);
    let pts = |c: &metrics::Curve| c.iter().map(|(x, y)| json!([round(*x), round(*y)])).collect::<Vec<_>>();
    let detectors: Vec<Value> = ev
        .names
        .iter()
        .zip(&ev.quality)
        .zip(t.rows.curves(200))
        .map(|((name, q), (roc, pr))| json!({"name": name, "quality": q, "roc": pts(&roc), "pr": pts(&pr)}))
        .collect();
    let ensemble = detectors.last().cloned().unwrap_or(Value::Null);
    json!({
        "labeled": ev.n,
        "malicious": ev.positives,
        "quality": ensemble["quality"],
        "roc": ensemble["roc"],
        "pr": ensemble["pr"],
        "detectors": detectors,
        "classification": ev.classification,
        "class_confusion": t.tally.confusion.iter().map(|((c, k), n)| json!({"category": c, "class": k, "flows": n})).collect::<Vec<_>>(),
    })
}

fn round(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_errors_leave_command_line_flags_out() {
        let e = super::without_flags("first line starts with \"ELF\"; name the format with --input-format (vpc|zeek)");
        assert!(e.starts_with("first line starts with \"ELF\" (the dashboard detects"), "{e}");
        assert!(!e.contains("--"), "{e}");
        assert_eq!(super::without_flags("read error after line 3: x; y"), "read error after line 3: x; y");
    }
}
