//! `flowhound review` and `flowhound tune`: the analyst's verdicts make the
//! next model better. `review` picks the flows whose verdict would teach the
//! model most ([`flowhound_engine::review`], the dashboard's queue too).
//! `tune` turns verdicts on those flows
//! into a new model with the dashboard's retraining code
//! (`flowhound_engine::retrain`): false positives become normal training
//! rows, true positives train a Random Forest head.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flowhound_engine::feedback::{parse_verdicts, Judgement};
use flowhound_engine::review::passes::{self, QueueFormat};
use flowhound_engine::review::TOP;
use flowhound_engine::Step;

use super::detect::load_model;
use super::InputArgs;
use crate::exit::{Classify, CliError, CliResult};
use flowhound_engine::outfile::OutFile as Output;

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
    #[arg(long, default_value_t = flowhound_engine::retrain::DEFAULT_WEIGHT, value_name = "N")]
    pub weight: usize,
}

/// Reads a verdicts file: flow number → verdict. Every bad line is listed.
pub fn read_verdicts(path: &Path) -> CliResult<BTreeMap<u64, Judgement>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(anyhow::Error::from(e).context(format!("cannot read {}", path.display()))))?;
    parse_verdicts(&text).map_err(|e| CliError::usage(anyhow::anyhow!("{}: {e}", path.display())))
}

pub fn review(a: ReviewArgs) -> CliResult {
    let bundle = load_model(&a.model, &[], None)?;
    let skip = match &a.skip {
        Some(p) => read_verdicts(p)?,
        None => BTreeMap::new(),
    };
    let (inputs, opts) = a.input.prepare()?;
    // A step per pass: each reads the input from its start, and the rules'
    // pair histories (beacons, brute force) must see every flow once, in
    // order.
    let mut step = Step::new(super::findings::FindingArgs::default().build(&bundle)?.explainer);
    let mut events = a.input.events(&inputs)?;
    let (q, report) =
        passes::choose(&bundle, &mut step, &inputs, &opts, &mut events, a.count, &skip).map_err(anyhow::Error::from)?;
    events.finish(&report)?;
    let mut out = Output::create(a.output.as_deref()).usage()?;
    let format = match a.format {
        ReviewFormat::Jsonl => QueueFormat::Jsonl,
        ReviewFormat::Table => QueueFormat::Table,
    };
    let mut events = a.input.events(&inputs)?;
    let mut step = Step::new(super::findings::FindingArgs::default().build(&bundle)?.explainer);
    let (flow, report) = passes::write(&bundle, &mut step, &inputs, &opts, &mut events, &q, format, &mut out)
        .map_err(anyhow::Error::from)?;
    let verdict = events.finish(&report);
    out.finish()?;
    if !a.input.quiet {
        eprintln!(
            "review: {} flows picked of {flow} ({} most anomalous, {} at the operating point, score {:.4}); judge them, then `flowhound tune --verdicts`",
            q.chosen.len(),
            q.chosen.values().filter(|w| **w == TOP).count(),
            q.chosen.values().filter(|w| **w != TOP).count(),
            q.level
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
    let mut step = Step::new(super::findings::FindingArgs::default().build(&bundle)?.explainer);
    let mut events = a.input.events(&inputs)?;
    let (examples, flow, report) =
        passes::examples(&bundle, &mut step, &inputs, &opts, &mut events, &verdicts).map_err(anyhow::Error::from)?;
    events.finish(&report)?;
    let missing: Vec<String> = verdicts.keys().filter(|f| **f >= flow).take(10).map(u64::to_string).collect();
    if !missing.is_empty() {
        return Err(CliError::usage(anyhow::anyhow!(
            "{}: flow(s) {} are past the {flow} flows of the input: verdicts from another input?",
            a.verdicts.display(),
            missing.join(", ")
        )));
    }
    let (new, used) = flowhound_engine::retrain::retrain(&bundle, &examples, a.weight)
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
