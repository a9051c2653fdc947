//! `flowhound detect`: score every flow with a trained model folder.

use std::io::Write as _;
use std::path::PathBuf;

use flowhound_detect::bundle::Bundle;
use flowhound_detect::run::BATCH;
use flowhound_detect::{Batch, Batches, Kind, Severity, Verdict};
use flowhound_flow::FlowRecord;

use super::findings::{self, FindingArgs, Findings};
use super::sinks::SinkArgs;
use super::InputArgs;
use crate::exit::{Classify, CliError, CliResult};
use crate::output::Output;
use flowhound_engine::{finish_incidents, Show, Step, Tally};
use flowhound_explain::allow::Entry;
use flowhound_explain::json::predicted;
use flowhound_explain::Finding;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DetectFormat {
    Jsonl,
    Csv,
    Table,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum MinSeverity {
    #[default]
    Low,
    Medium,
    High,
}

impl MinSeverity {
    pub fn severity(self) -> Severity {
        match self {
            MinSeverity::Low => Severity::Low,
            MinSeverity::Medium => Severity::Medium,
            MinSeverity::High => Severity::High,
        }
    }
}

/// Which scored flows are written, and the thresholds they are scored
/// with: the same for `detect` and `watch`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ScoreArgs {
    /// Write every flow, not only anomalies.
    #[arg(long)]
    pub all: bool,

    /// Write anomalies of at least this severity.
    #[arg(long, value_enum, default_value_t = MinSeverity::Low)]
    pub min_severity: MinSeverity,

    /// Override a detector's threshold (raw score units), e.g. `iforest=0.6`;
    /// repeatable. The vote then decides alone: severity is the vote count's.
    #[arg(long, value_name = "NAME=VALUE")]
    pub threshold: Vec<String>,

    /// False-positive budget for this run instead of the one the model was
    /// trained with (`train --fpr`): every detector's threshold moves to the
    /// level where this share of held-out normal flows is anomalous.
    #[arg(long, value_name = "SHARE", conflicts_with = "threshold")]
    pub fpr: Option<f64>,
}

impl ScoreArgs {
    /// Which flows the run shows, with the finding options.
    pub fn show(&self, findings: &FindingArgs) -> Show {
        Show {
            all: self.all,
            min_severity: self.min_severity.severity(),
            suppressed: findings.show_suppressed,
            incidents: findings.incidents,
        }
    }
}

/// Score every flow of INPUT with a model from `train`: one line per
/// anomalous flow (every flow with --all) and a summary on stderr.
#[derive(Debug, clap::Args)]
#[command(after_help = "Output fields (JSON lines): flow (0-based position in the input), time, src, dst, src_port,\n\
dst_port, protocol, score (ensemble, higher = more anomalous), votes, severity (none|low|medium|high),\n\
confidence (votes / voters), models {name: {score, flagged}} (random_forest: P(malicious), flagged when\n\
an attack class is the most probable, when trained with --supervised, with predicted_category), threat_class,\n\
threat_variant, attack_technique (MITRE ATT&CK), reason (one sentence), explanation [{feature, value, baseline,\n\
z, contribution}] for flagged flows, suppressed (and suppressed_reason) from --allowlist, and label/category\n\
when the input carries ground truth. With --incidents: one object per incident (docs/explain.md).\n\nExamples:\n  flowhound detect -m model flows.log\n  flowhound detect -m model flows.log.gz --all -o scored.jsonl\n  flowhound detect -m model logs/ --format table --min-severity high\n  flowhound detect -m model flows.log --threshold iforest=0.62\n  flowhound detect -m model flows.log --incidents --format table --allowlist allow.toml")]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// Model folder written by `train`.
    #[arg(short, long = "model", value_name = "MODEL_DIR")]
    pub model: PathBuf,

    /// Output file (`.gz` compresses); stdout when absent or `-`.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[arg(long, value_enum, default_value_t = DetectFormat::Jsonl)]
    pub format: DetectFormat,

    #[command(flatten)]
    pub score: ScoreArgs,

    #[command(flatten)]
    pub findings: FindingArgs,

    #[command(flatten)]
    pub sinks: SinkArgs,
}

pub fn run(a: Args) -> CliResult {
    let (tally, verdict) = detect(&a)?;
    if !a.input.quiet {
        eprint!("{}", tally.render());
    }
    verdict
}

/// Loads the model, scores the inputs into the output, and returns the tally
/// with the scan's verdict (failed inputs → exit 3, after everything readable
/// was written).
pub fn detect(a: &Args) -> CliResult<(Tally, CliResult)> {
    let bundle = load_model(&a.model, &a.score.threshold, a.score.fpr)?;
    let (inputs, opts) = a.input.prepare()?;
    let dispatcher = a.sinks.open("detect", a.output.as_deref(), &a.model, || {
        inputs.iter().map(|i| i.name()).collect::<Vec<_>>().join(" ")
    })?;
    let mut out = Output::create(a.output.as_deref()).usage()?;
    let (mut tally, verdict) = score_into(&bundle, &inputs, &opts, a, &mut out)?;
    out.finish()?;
    if let Some(mut d) = dispatcher {
        d.send(&tally.incidents);
        let summary = d.finish(&tally.run_stats());
        let dropped = summary.dropped();
        tally.delivery = Some(summary);
        if dropped > 0 {
            // Still a result: the tally is printed, then the run fails.
            let e = CliError::from(anyhow::anyhow!(
                "{dropped} alert(s) could not be delivered nor spooled (see the summary)"
            ));
            return Ok((tally, verdict.and(Err(e))));
        }
    }
    Ok((tally, verdict))
}

/// Loads a model folder and applies `--threshold` overrides; a broken model
/// or a bad override is a usage error (exit 2).
pub fn load_model(dir: &std::path::Path, thresholds: &[String], fpr: Option<f64>) -> CliResult<Bundle> {
    let mut bundle = Bundle::load(dir)
        .map_err(|e| CliError::usage(anyhow::Error::from(e).context(format!("cannot use model {}", dir.display()))))?;
    apply_thresholds(&mut bundle, thresholds)?;
    if let Some(f) = fpr {
        if !(f > 0.0 && f < 0.5) {
            return Err(CliError::usage(anyhow::anyhow!("--fpr {f}: a share in (0, 0.5), e.g. 0.001")));
        }
        if !bundle.ensemble.set_fpr(f) {
            return Err(CliError::usage(anyhow::anyhow!(
                "--fpr: model {} was trained with --contamination, without a false-positive budget; retrain it with --fpr",
                dir.display()
            )));
        }
    }
    Ok(bundle)
}

/// `--threshold NAME=VALUE` overrides, every problem listed.
fn apply_thresholds(b: &mut Bundle, list: &[String]) -> CliResult {
    let mut bad = Vec::new();
    for t in list {
        let parsed = t.split_once('=').and_then(|(k, v)| Some((Kind::parse(k)?, v.trim().parse::<f32>().ok()?)));
        match parsed {
            Some((k, v)) if v.is_finite() => {
                if !b.ensemble.set_threshold(k, v) {
                    bad.push(format!("{t:?}: the model has no {} detector", k.name()));
                }
            }
            _ => bad.push(format!("{t:?}: expected NAME=NUMBER, e.g. iforest=0.6")),
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(CliError::usage(anyhow::anyhow!("--threshold: {}", bad.join("; "))))
    }
}

/// Scores the inputs into `out`; returns the tally and the scan's verdict
/// (failed inputs → exit 3 after everything readable was written).
fn score_into(
    bundle: &Bundle,
    inputs: &[flowhound_source::Input],
    opts: &flowhound_source::ScanOptions,
    a: &Args,
    out: &mut Output,
) -> CliResult<(Tally, CliResult)> {
    let names = bundle.ensemble.model_names();
    let classes = bundle.ensemble.supervised().map(|s| s.classes.as_slice());
    let mut tally = Tally::new(names.clone());
    let Findings { explainer, allow, mut incidents } = a.findings.build(bundle)?;
    let mut step = Step::new(explainer);
    let show = a.score.show(&a.findings);
    if a.findings.incidents && a.format == DetectFormat::Csv {
        return Err(CliError::usage(anyhow::anyhow!("--incidents writes JSON lines or a table, not CSV")));
    }
    match a.format {
        DetectFormat::Csv => {
            let mut head = String::from("flow,time,src,dst,src_port,dst_port,protocol,score,votes,severity,confidence");
            for n in &names {
                head += &format!(",{n}_score,{n}_flagged");
            }
            head += ",label,category";
            head += if classes.is_some() { ",predicted_category" } else { "" };
            head += ",threat_class,threat_variant,attack_technique,reason,suppressed\n";
            out.write_all(head.as_bytes())?;
        }
        DetectFormat::Table if a.findings.incidents => out.write_all(findings::incident_table_head().as_bytes())?,
        DetectFormat::Table => {
            let head = format!(
                "{:<20} {:<39} {:<39} {:>5} {:>5} {:>6} {:>5} {:<8} {:<18} {}\n",
                "time", "src", "dst", "dport", "proto", "score", "votes", "severity", "class", "reason"
            );
            out.write_all(head.as_bytes())?;
        }
        DetectFormat::Jsonl => {}
    }
    let mut buf = Vec::new();
    let (verdict, rejected, order_warning) = score_each(bundle, inputs, opts, &a.input, |batch| {
        buf.clear();
        let e = step.flagged(bundle, batch).map_err(anyhow::Error::from)?;
        for ((r, v), f) in e.batch(batch).iter().zip(&e.found) {
            let flow = tally.flows;
            let shown = show.decide(&allow, r, v, f.is_some());
            let entry = shown.entry;
            tally.add(r, v, f.as_ref(), entry.is_some());
            if let (Some(f), true) = (f, shown.grows_incident()) {
                incidents.push(flow, r, v, f, entry.is_some());
            }
            if !shown.written {
                continue;
            }
            tally.written += 1;
            let row = Row { flow, r, v, f: f.as_ref(), suppressed: entry };
            match a.format {
                DetectFormat::Jsonl => write_json(&mut buf, &row, &names, classes),
                DetectFormat::Csv => write_csv(&mut buf, &row, classes),
                DetectFormat::Table => write_table(&mut buf, &row),
            }
        }
        out.write_all(&buf).map_err(CliError::from)
    })?;
    tally.rejected = rejected;
    tally.order_warning = order_warning;
    tally.incidents = incidents.finish();
    tally.digest = finish_incidents(&mut tally.incidents);
    if a.findings.incidents {
        buf.clear();
        for i in &tally.incidents {
            match a.format {
                DetectFormat::Table => buf.extend_from_slice(findings::incident_table_row(i).as_bytes()),
                _ => {
                    let _ = serde_json::to_writer(&mut buf, &flowhound_explain::json::incident_json(i));
                    buf.push(b'\n');
                }
            }
        }
        tally.written = tally.incidents.len() as u64;
        out.write_all(&buf)?;
    }
    Ok((tally, verdict))
}

/// Scans `inputs` in order and scores them in batches; `each` gets every
/// batch of records with their verdicts, in input order. Returns the scan's
/// verdict (failed inputs → exit 3, after everything readable was scored)
/// and the number of rejected lines; the first error from scoring or from
/// `each` stops the work.
pub fn score_each(
    bundle: &Bundle,
    inputs: &[flowhound_source::Input],
    opts: &flowhound_source::ScanOptions,
    input: &InputArgs,
    mut each: impl FnMut(&Batch<'_>) -> CliResult,
) -> CliResult<(CliResult, u64, Option<String>)> {
    let mut batches = Batches::new(bundle, BATCH).usage()?;
    let mut events = input.events(inputs)?;
    let report = flowhound_engine::score_inputs(&mut batches, inputs, opts, &mut events, &mut each)?;
    Ok((events.finish(&report), report.rejected, batches.order_warning(report.records)))
}

/// One scored flow with everything known about it, as written.
struct Row<'a> {
    flow: u64,
    r: &'a FlowRecord,
    v: &'a Verdict,
    f: Option<&'a Finding>,
    suppressed: Option<&'a Entry>,
}

fn write_json(buf: &mut Vec<u8>, row: &Row<'_>, names: &[&str], classes: Option<&[String]>) {
    let Row { flow, r, v, f, suppressed } = *row;
    let m = flowhound_explain::json::flow_json(flow, r, v, f, suppressed, names, classes);
    let _ = serde_json::to_writer(&mut *buf, &serde_json::Value::Object(m));
    buf.push(b'\n');
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn write_csv(buf: &mut Vec<u8>, row: &Row<'_>, classes: Option<&[String]>) {
    let Row { flow, r, v, f, suppressed } = *row;
    let _ = write!(
        buf,
        "{flow},{},{},{},{},{},{},{},{},{},{}",
        opt(r.start.map(|t| t.to_rfc3339())),
        opt(r.src),
        opt(r.dst),
        opt(r.src_port),
        opt(r.dst_port),
        opt(r.protocol),
        v.score,
        v.votes,
        v.severity.name(),
        v.confidence
    );
    for (s, f) in &v.models {
        let _ = write!(buf, ",{s},{f}");
    }
    let (label, cat) = match &r.truth {
        Some(t) => (if t.malicious { "malicious" } else { "benign" }, t.category.as_deref().unwrap_or("")),
        None => ("", ""),
    };
    let _ = write!(buf, ",{label},");
    flowhound_flow::write::csv_field(buf, cat);
    if classes.is_some() {
        buf.push(b',');
        flowhound_flow::write::csv_field(buf, predicted(v, classes).unwrap_or(""));
    }
    for t in [
        f.map(|f| f.class.as_ref()),
        f.and_then(|f| f.variant.as_deref()),
        f.and_then(|f| f.technique.as_deref()),
        f.map(|f| f.reason.as_str()),
    ] {
        buf.push(b',');
        flowhound_flow::write::csv_field(buf, t.unwrap_or(""));
    }
    let _ = write!(buf, ",{}", suppressed.is_some());
    buf.push(b'\n');
}

fn write_table(buf: &mut Vec<u8>, row: &Row<'_>) {
    let Row { r, v, f, .. } = *row;
    let time = r.start.map(|t| t.to_rfc3339()).unwrap_or_default();
    let _ = writeln!(
        buf,
        "{:<20} {:<39} {:<39} {:>5} {:>5} {:>6.3} {:>5} {:<8} {:<18} {}",
        time.get(..19).unwrap_or(&time),
        opt(r.src),
        opt(r.dst),
        opt(r.dst_port),
        r.protocol
            .and_then(flowhound_flow::record::protocol_name)
            .map(str::to_string)
            .unwrap_or_else(|| opt(r.protocol)),
        v.score,
        v.votes,
        v.severity.name(),
        f.map_or("", |f| f.class.as_ref()),
        f.map_or("", |f| f.reason.as_str())
    );
}
