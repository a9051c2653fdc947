//! `flowhound detect`: score every flow with a trained model folder.

use std::path::PathBuf;

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{Batch, Severity};
use flowhound_engine::config::ModelParams;
use flowhound_engine::outfile::OutFile;
use flowhound_engine::write::Format;
use flowhound_engine::{Show, Tally};

use super::findings::FindingArgs;
use super::sinks::SinkArgs;
use super::InputArgs;
use crate::exit::{Classify, CliError, CliResult};

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

impl DetectFormat {
    fn format(self) -> Format {
        match self {
            DetectFormat::Jsonl => Format::Jsonl,
            DetectFormat::Csv => Format::Csv,
            DetectFormat::Table => Format::Table,
        }
    }
}

/// Loads the model, scores the inputs into the output and the sinks, and
/// returns the tally with the scan's verdict (failed inputs → exit 3, after
/// everything readable was written; undelivered alerts → exit 1).
pub fn detect(a: &Args) -> CliResult<(Tally, CliResult)> {
    let bundle = load_model(&a.model, &a.score.threshold, a.score.fpr)?;
    let (inputs, opts) = a.input.prepare()?;
    if a.findings.incidents && a.format == DetectFormat::Csv {
        return Err(CliError::usage(anyhow::anyhow!("--incidents writes JSON lines or a table, not CSV")));
    }
    let dispatcher = a.sinks.params().open("detect", a.output.as_deref(), &a.model, || {
        inputs.iter().map(|i| i.name()).collect::<Vec<_>>().join(" ")
    })?;
    let job = flowhound_engine::Detect {
        bundle: &bundle,
        findings: a.findings.build(&bundle)?,
        show: a.score.show(&a.findings),
        format: a.format.format(),
        alerts: dispatcher,
    };
    let out = OutFile::create(a.output.as_deref()).usage()?;
    let mut events = a.input.events(&inputs)?;
    let (tally, report) = job.run(out, &inputs, &opts, &mut events).map_err(anyhow::Error::from)?;
    let verdict = events.finish(&report);
    let dropped = tally.delivery.as_ref().map_or(0, |d| d.dropped());
    if dropped > 0 {
        // Still a result: the tally is printed, then the run fails.
        let e =
            CliError::from(anyhow::anyhow!("{dropped} alert(s) could not be delivered nor spooled (see the summary)"));
        return Ok((tally, verdict.and(Err(e))));
    }
    Ok((tally, verdict))
}

/// Loads a model folder and applies `--threshold` overrides; a broken model
/// or a bad override is a usage error (exit 2).
pub fn load_model(dir: &std::path::Path, thresholds: &[String], fpr: Option<f64>) -> CliResult<Bundle> {
    Ok(ModelParams { dir: dir.to_path_buf(), thresholds: thresholds.to_vec(), fpr }.load()?)
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
    let mut events = input.events(inputs)?;
    let (report, warning) = flowhound_engine::scan::score_files(bundle, inputs, opts, &mut events, &mut each)?;
    Ok((events.finish(&report), report.rejected, warning))
}
