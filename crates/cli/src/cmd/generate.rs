//! `flowhound generate`: realistic labeled traffic with injected attacks.

use std::path::PathBuf;

pub use flowhound_engine::records::default_labels_path;
use flowhound_engine::records::generate as generate_into;
use flowhound_flow::Timestamp;
use flowhound_synth::{GenParams, GenSummary};

use super::convert::{OutFormat, VpcLayout};
use crate::exit::{Classify, CliError, CliResult};
use flowhound_engine::outfile::OutFile as Output;

/// Generate synthetic but realistic VPC traffic of a small cloud network, with
/// labeled port scans, DoS/DDoS, exfiltration, connection bursts, never-seen
/// external IPs and abnormal protocol use.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flowhound generate -o flows.log                 # VPC format + flows.log.labels.csv\n  flowhound generate -o flows.csv --format csv --flows 1000000 --seed 7\n  flowhound generate -o flows.jsonl.gz --format jsonl --anomaly-ratio 0.1"
)]
pub struct Args {
    /// Output file (`.gz` compresses).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// Number of flow records.
    #[arg(long, default_value_t = 100_000)]
    pub flows: u64,

    /// Share of records that belong to attacks, in [0, 1).
    #[arg(long, default_value_t = 0.05)]
    pub anomaly_ratio: f64,

    /// Random seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    #[arg(long, value_enum, default_value_t = OutFormat::Vpc)]
    pub format: OutFormat,

    /// Fields of VPC output: the default v2 format or an extended custom one.
    #[arg(long, value_enum, default_value_t = VpcLayout::Extended)]
    pub vpc_layout: VpcLayout,

    /// Where labels go (line,malicious,category). Default for VPC output:
    /// OUTPUT.labels.csv, so the log itself stays valid VPC format. CSV and
    /// JSONL carry labels in columns as well.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// Start of the generated period (RFC 3339).
    #[arg(long, default_value = "2026-11-02T00:00:00Z")]
    pub start: String,

    /// Length of the generated period in hours.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,

    #[arg(long, short)]
    pub quiet: bool,
}

/// Writes `pending` records (serialized in parallel) and their labels, then
/// empties it. `line` is the last line number written so far.
pub fn run(a: Args) -> CliResult {
    let summary = generate(&a)?;
    if !a.quiet {
        eprintln!(
            "generated {} records ({} malicious) into {}",
            summary.records,
            summary.malicious,
            a.output.display()
        );
        for (s, c) in &summary.by_scenario {
            if *c > 0 {
                eprintln!("  {:<22} {c}", s.name());
            }
        }
    }
    Ok(())
}

/// Generates into `a.output` (and the labels file); returns what was made.
pub fn generate(a: &Args) -> CliResult<GenSummary> {
    let start = flowhound_flow::time::parse_datetime(a.start.as_bytes());
    let mut problems = Vec::new();
    if start.is_none() {
        problems.push(format!("--start {:?} is not an RFC 3339 time", a.start));
    }
    let params = GenParams {
        flows: a.flows,
        anomaly_ratio: a.anomaly_ratio,
        seed: a.seed,
        start: start.unwrap_or(Timestamp(0)),
        hours: a.hours,
    };
    if let Err(e) = params.check() {
        problems.extend(e.0);
    }
    if !problems.is_empty() {
        return Err(CliError::usage(anyhow::anyhow!(problems.join("; "))));
    }
    let labels_path = match (&a.labels, a.format) {
        (Some(p), _) => Some(p.clone()),
        (None, OutFormat::Vpc) => Some(default_labels_path(&a.output)),
        (None, _) => None,
    };
    let out = Output::create(Some(&a.output)).usage()?;
    let labels = labels_path.as_deref().map(|p| Output::create(Some(p))).transpose().usage()?;
    Ok(generate_into(&params, a.format.into(), a.vpc_layout.into(), out, labels)?)
}
