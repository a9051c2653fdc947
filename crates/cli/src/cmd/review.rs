//! `flowhound review` and `flowhound tune`: the analyst's verdicts make the
//! next model better. `review` picks the flows whose verdict would teach the
//! model most ([`flowhound_server::review`], the dashboard's queue too).
//! `tune` turns verdicts on those flows
//! into a new model with the dashboard's retraining code
//! (`flowhound_server::retrain`): false positives become normal training
//! rows, true positives train a Random Forest head.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use flowhound_detect::{Batch, Severity};
use flowhound_server::review::{diversity_key, pick, Candidate, TOP};
use flowhound_server::store::{TrainingExample, Verdict};

use super::detect::{load_model, score_each};
use super::InputArgs;
use crate::exit::{Classify, CliError, CliResult};
use crate::output::Output;

/// The flows whose verdict would teach the model most: half the most
/// anomalous, half those nearest the operating point, at most two per
/// source; each printed as `detect --all` prints it, with `review` saying
/// why it was picked. Judge them, then `flowhound tune`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flowhound review -m model day.log -n 20 -o queue.jsonl\n  flowhound review -m model day.log -n 10 --skip verdicts.csv --format table"
)]
pub struct ReviewArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Model folder written by `train`.
    #[arg(short, long = "model", value_name = "MODEL_DIR")]
    pub model: PathBuf,

    /// Flows to pick.
    #[arg(short = 'n', long, default_value_t = 20, value_name = "K")]
    pub count: usize,

    /// A verdicts file (as `tune` reads): its flows were judged already and
    /// are not picked again.
    #[arg(long, value_name = "FILE")]
    pub skip: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ReviewFormat::Jsonl)]
    pub format: ReviewFormat,

    /// Write here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReviewFormat {
    Jsonl,
    Table,
}

/// A new model version that learned from verdicts on flows of INPUT.
#[derive(Debug, clap::Args)]
#[command(after_help = "VERDICTS: CSV with a header naming `flow` and `verdict` columns, or JSON lines with those\n\
keys. `flow` is the flow number `detect` (or `review`) printed for the same INPUT; `verdict` is true_positive\n\
(or malicious) or false_positive (or benign). False positives join the normal training rows (their external\n\
addresses become known); true positives train a Random Forest head (with at least one of each kind).\n\n\
Example:\n  flowhound tune -m model day.log --verdicts verdicts.csv -o model-v2")]
pub struct TuneArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Model folder written by `train` (tune always starts from it: give
    /// every verdict so far, not only the new ones).
    #[arg(short, long = "model", value_name = "MODEL_DIR")]
    pub model: PathBuf,

    /// The analyst's verdicts (CSV or JSON lines).
    #[arg(long, value_name = "FILE")]
    pub verdicts: PathBuf,

    /// Model folder to write.
    #[arg(short, long = "output", value_name = "NEW_MODEL_DIR")]
    pub output: PathBuf,

    /// Training rows each verdict counts as.
    #[arg(long, default_value_t = flowhound_server::retrain::DEFAULT_WEIGHT, value_name = "N")]
    pub weight: usize,
}

/// Reads a verdicts file: flow number → verdict. Every bad line is listed.
pub fn read_verdicts(path: &Path) -> CliResult<BTreeMap<u64, Verdict>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(anyhow::Error::from(e).context(format!("cannot read {}", path.display()))))?;
    let parse = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
        "true_positive" | "malicious" | "tp" => Some(Verdict::TruePositive),
        "false_positive" | "benign" | "fp" => Some(Verdict::FalsePositive),
        _ => None,
    };
    let mut out = BTreeMap::new();
    let mut bad = Vec::new();
    let json = text.trim_start().starts_with('{');
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let mut cols = (0, 0);
    if !json {
        let Some((_, head)) = lines.next() else { return Ok(out) };
        let names: Vec<String> = head.split(',').map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect();
        match (names.iter().position(|c| c == "flow"), names.iter().position(|c| c == "verdict")) {
            (Some(f), Some(v)) => cols = (f, v),
            _ => {
                return Err(CliError::usage(anyhow::anyhow!(
                    "{}: the CSV header must name `flow` and `verdict` columns (it has: {head})",
                    path.display()
                )))
            }
        }
    }
    for (i, line) in lines {
        let item: Option<(Option<u64>, Option<Verdict>)> = if json {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .map(|v| (v["flow"].as_u64(), v["verdict"].as_str().and_then(parse)))
        } else {
            let cells: Vec<&str> = line.split(',').map(|c| c.trim().trim_matches('"')).collect();
            Some((cells.get(cols.0).and_then(|c| c.parse().ok()), cells.get(cols.1).and_then(|c| parse(c))))
        };
        match item {
            Some((Some(f), Some(v))) => {
                out.insert(f, v);
            }
            Some((None, _)) => bad.push(format!("line {}: no flow number", i + 1)),
            Some((_, None)) => bad.push(format!("line {}: the verdict is not true_positive/false_positive", i + 1)),
            None => bad.push(format!("line {}: not a JSON object", i + 1)),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        let n = bad.len();
        bad.truncate(20);
        Err(CliError::usage(anyhow::anyhow!("{}: {n} bad line(s): {}", path.display(), bad.join("; "))))
    }
}

/// Where the operating point sits on the ensemble `score`: the budget's
/// level, the stacked probability's 1/2 with a forest, else between the
/// highest normal and the lowest anomalous score seen.
fn decision_level(bundle: &flowhound_detect::bundle::Bundle, seen: &[Candidate]) -> f32 {
    if bundle.ensemble.supervised().is_some_and(|s| s.stack.is_some()) {
        return 0.5;
    }
    if let Some(op) = bundle.ensemble.operating_point() {
        return op.level;
    }
    let lo = seen.iter().filter(|s| s.anomalous).map(|s| s.score).fold(f32::INFINITY, f32::min);
    let hi = seen.iter().filter(|s| !s.anomalous).map(|s| s.score).fold(f32::NEG_INFINITY, f32::max);
    if lo.is_finite() && hi.is_finite() {
        (lo + hi) / 2.0
    } else {
        lo.min(hi)
    }
}

pub fn review(a: ReviewArgs) -> CliResult {
    let bundle = load_model(&a.model, &[], None)?;
    let skip = match &a.skip {
        Some(p) => read_verdicts(p)?,
        None => BTreeMap::new(),
    };
    let (inputs, opts) = a.input.prepare()?;
    // One explainer for both passes: the first only raises rule alerts,
    // which keeps no state.
    let mut explainer = super::findings::FindingArgs::default().build(&bundle)?.explainer;
    // First pass: every flow's score; the queue is picked from all of them.
    let mut seen: Vec<Candidate> = Vec::new();
    let (verdict, _, _) = score_each(&bundle, &inputs, &opts, &a.input, |b: &Batch<'_>| {
        let raised = explainer.raise(b.raw, b.verdicts);
        for (r, v) in b.recs.iter().zip(raised.iter()) {
            let src = r.src.map(|a| a.to_string());
            let key = diversity_key(src.as_deref(), (r.protocol, r.service.as_deref(), r.state.as_deref()));
            seen.push(Candidate {
                flow: seen.len() as u64,
                score: v.score,
                anomalous: v.severity != Severity::None,
                key,
            });
        }
        Ok(())
    })?;
    verdict?;
    let level = decision_level(&bundle, &seen);
    let chosen = pick(&seen, level, a.count, &|f| skip.contains_key(&f));
    drop(seen);
    // Second pass: the chosen flows, explained, as detect prints them.
    let names = bundle.ensemble.model_names();
    let classes = bundle.ensemble.supervised().map(|s| s.classes.as_slice());
    let mut out = Output::create(a.output.as_deref()).usage()?;
    if a.format == ReviewFormat::Table {
        out.write_all(
            format!(
                "{:>8} {:<22} {:<20} {:>6} {:>7} {:<8} {:<18} {:<22} {}\n",
                "flow", "why", "src", "dport", "score", "severity", "class", "dst", "reason"
            )
            .as_bytes(),
        )?;
    }
    let mut flow = 0u64;
    let (verdict, _, _) = score_each(&bundle, &inputs, &opts, &a.input, |b: &Batch<'_>| {
        let raised = explainer.raise(b.raw, b.verdicts);
        let start = flow;
        let found = explainer
            .explain(&bundle, b.recs, &raised, b.raw, b.input, |i| chosen.contains_key(&(start + i as u64)))
            .map_err(anyhow::Error::from)?;
        let mut buf = Vec::new();
        for (i, (r, v)) in b.recs.iter().zip(raised.iter()).enumerate() {
            let n = start + i as u64;
            let Some(why) = chosen.get(&n) else { continue };
            let f = found[i].as_ref();
            match a.format {
                ReviewFormat::Jsonl => {
                    let mut m = flowhound_explain::json::flow_json(n, r, v, f, None, &names, classes);
                    m.insert("review".into(), (*why).into());
                    let _ = serde_json::to_writer(&mut buf, &serde_json::Value::Object(m));
                    buf.push(b'\n');
                }
                ReviewFormat::Table => {
                    let opt = |x: Option<String>| x.unwrap_or_else(|| "-".into());
                    let _ = writeln!(
                        buf,
                        "{n:>8} {why:<22} {:<20} {:>6} {:>7.4} {:<8} {:<18} {:<22} {}",
                        opt(r.src.map(|s| s.to_string())),
                        opt(r.dst_port.map(|p| p.to_string())),
                        v.score,
                        v.severity.name(),
                        f.map_or("-", |f| f.class.as_ref()),
                        opt(r.dst.map(|s| s.to_string())),
                        f.map_or("", |f| f.reason.as_str())
                    );
                }
            }
        }
        flow += b.recs.len() as u64;
        out.write_all(&buf).map_err(CliError::from)
    })?;
    out.finish()?;
    if !a.input.quiet {
        eprintln!(
            "review: {} flows picked of {flow} ({} most anomalous, {} at the operating point, score {level:.4}); judge them, then `flowhound tune --verdicts`",
            chosen.len(),
            chosen.values().filter(|w| **w == TOP).count(),
            chosen.values().filter(|w| **w != TOP).count()
        );
    }
    verdict
}

pub fn tune(a: TuneArgs) -> CliResult {
    let bundle = load_model(&a.model, &[], None)?;
    let verdicts = read_verdicts(&a.verdicts)?;
    if verdicts.is_empty() {
        return Err(CliError::usage(anyhow::anyhow!("{}: no verdicts", a.verdicts.display())));
    }
    let (inputs, opts) = a.input.prepare()?;
    let mut explainer = super::findings::FindingArgs::default().build(&bundle)?.explainer;
    let nets = flowhound_flow::net::Networks::new(&bundle.features.internal);
    let mut examples = Vec::new();
    let mut flow = 0u64;
    let (verdict, _, _) = score_each(&bundle, &inputs, &opts, &a.input, |b: &Batch<'_>| {
        let start = flow;
        flow += b.recs.len() as u64;
        let judged = |i: usize| verdicts.contains_key(&(start + i as u64));
        if !(0..b.recs.len()).any(judged) {
            return Ok(());
        }
        let raised = explainer.raise(b.raw, b.verdicts);
        // The class a true positive teaches the forest: what the rules call it.
        let found = explainer.explain(&bundle, b.recs, &raised, b.raw, b.input, judged).map_err(anyhow::Error::from)?;
        let w = b.raw_width();
        for (i, r) in b.recs.iter().enumerate() {
            let Some(v) = verdicts.get(&(start + i as u64)) else { continue };
            examples.push(TrainingExample {
                verdict: *v,
                class: found[i].as_ref().map_or_else(|| flowhound_explain::OTHER.to_string(), |f| f.class.to_string()),
                raw: b.raw[i * w..(i + 1) * w].to_vec(),
                external: [r.src, r.dst].into_iter().flatten().filter(|x| !nets.is_internal(*x)).collect(),
            });
        }
        Ok(())
    })?;
    verdict?;
    let missing: Vec<String> = verdicts.keys().filter(|f| **f >= flow).take(10).map(u64::to_string).collect();
    if !missing.is_empty() {
        return Err(CliError::usage(anyhow::anyhow!(
            "{}: flow(s) {} are past the {flow} flows of the input: verdicts from another input?",
            a.verdicts.display(),
            missing.join(", ")
        )));
    }
    let (new, used) = flowhound_server::retrain::retrain(&bundle, &examples, a.weight)
        .map_err(|e| CliError::from(anyhow::Error::from(e).context("tuning the model")))?;
    new.save(&a.output).runtime(format!("writing the model to {}", a.output.display()))?;
    if !a.input.quiet {
        eprintln!(
            "tune: {} false positives as normal rows, {} true positives as Random Forest examples{} (×{} each); model written to {}",
            used.benign,
            used.attacks,
            if used.unused > 0 { format!(", {} unused", used.unused) } else { String::new() },
            a.weight,
            a.output.display()
        );
    }
    Ok(())
}
