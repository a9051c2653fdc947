//! `flowhound features`: one row of features per flow.

use std::path::PathBuf;

use flowhound_engine::features::{export, extractor_params, ExportError, RowFormat};
use flowhound_features::ExtractorParams;
use ipnet::IpNet;

use super::{InputArgs, SORT_HINT};
use crate::exit::{Classify, CliError, CliResult};
use flowhound_engine::outfile::OutFile as Output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

/// Write one row per flow: its key fields, every feature by name (see
/// docs/features.md), and the ground truth when the input has it.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flowhound features flows.log -o features.csv\n  flowhound features conn.log --windows 60s,10m,1h --format jsonl | jq .src_distinct_dst_ports_1h\n  flowhound features CIC.csv --extra 'Flow IAT Mean' --extra 'Fwd Packet Length Max'"
)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// Output file (`.gz` compresses); stdout when absent or `-`.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,

    #[command(flatten)]
    pub features: FeatureArgs,
}

/// Feature settings shared by `features` and `train`.
#[derive(Debug, Clone, clap::Args)]
pub struct FeatureArgs {
    /// Context windows, comma-separated (`60s,1h`; units s, m, h, d).
    #[arg(long, default_value = "60s,1h", value_name = "LIST")]
    pub windows: String,

    /// The longer window a source's current rate is compared with.
    #[arg(long, default_value = "15m", value_name = "WINDOW")]
    pub baseline: String,

    /// Dataset columns (CIC, UNSW) to add as features, by name; repeatable.
    /// `--extra all`: every numeric column the input carries that flowhound
    /// does not map itself, less row numbers and clocks (`id`, `ts`, …).
    #[arg(long = "extra", value_name = "NAME")]
    pub extras: Vec<String>,

    /// Address ranges to count as internal, besides RFC 1918, RFC 6598 and ULA.
    #[arg(long, value_name = "CIDR", num_args = 1..)]
    pub internal: Vec<IpNet>,
}

impl FeatureArgs {
    pub fn params(&self) -> CliResult<ExtractorParams> {
        params(&self.windows, &self.baseline, &self.extras, &self.internal)
    }
}

/// Builds extractor settings from the flags, listing every problem.
pub fn params(windows: &str, baseline: &str, extras: &[String], internal: &[IpNet]) -> CliResult<ExtractorParams> {
    Ok(extractor_params(windows, baseline, extras, internal)?)
}

pub fn run(a: Args) -> CliResult {
    let params = a.features.params()?;
    let (inputs, opts) = a.input.prepare()?;
    let out = Output::create(a.output.as_deref()).usage()?;
    let mut events = a.input.events(&inputs)?;
    let format = match a.format {
        Format::Csv => RowFormat::Csv,
        Format::Jsonl => RowFormat::Jsonl,
    };
    let x = export(params, format, &inputs, &opts, &mut events, out).map_err(|e| match e {
        ExportError::Settings(e) => CliError::usage(e),
        e => CliError::from(anyhow::Error::from(e)),
    })?;
    if !a.input.quiet {
        eprintln!(
            "{} rows of {} features ({} rejected lines); {} hosts held window state at the end",
            x.scan.records, x.features, x.scan.rejected, x.active_hosts
        );
        if let Some(w) = &x.order_warning {
            eprintln!("{w}: {SORT_HINT}");
        }
    }
    events.finish(&x.scan)
}
