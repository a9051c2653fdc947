//! `flowhound convert`: any supported input out as VPC, CSV or JSON lines.

use std::path::PathBuf;

use flowhound_engine::records::{convert, RecordFormat};

use super::InputArgs;
use crate::exit::{Classify, CliResult};
use flowhound_engine::outfile::OutFile as Output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    /// VPC Flow Logs with a header line naming the fields (v5 custom layout).
    Vpc,
    /// flowhound CSV: one column per record field, labels and dataset extras.
    Csv,
    /// One JSON object per line, with the record's field names.
    Jsonl,
}

/// Which fields VPC output carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VpcLayout {
    /// The 14 fields of the default format (version 2).
    V2,
    /// v2 plus vpc-id, subnet-id, instance-id, tcp-flags, type, region, az-id,
    /// flow-direction (a version 5 custom format).
    #[default]
    Extended,
}

impl From<VpcLayout> for flowhound_engine::records::VpcLayout {
    fn from(l: VpcLayout) -> Self {
        match l {
            VpcLayout::V2 => Self::V2,
            VpcLayout::Extended => Self::Extended,
        }
    }
}

impl From<OutFormat> for RecordFormat {
    fn from(f: OutFormat) -> Self {
        match f {
            OutFormat::Vpc => RecordFormat::Vpc,
            OutFormat::Csv => RecordFormat::Csv,
            OutFormat::Jsonl => RecordFormat::Jsonl,
        }
    }
}

/// Write records of any supported input as VPC flow logs, CSV or JSON lines.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flowhound convert conn.log --to jsonl | jq .dst_port\n  flowhound convert UNSW_NB15.csv --to csv -o unsw.csv.gz\n  flowhound convert data.csv --map src=SrcAddr --map dst=DstAddr --to vpc -o flows.log"
)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    #[arg(long, value_enum)]
    pub to: OutFormat,

    /// Output file (`.gz` compresses); stdout when absent or `-`.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Fields of VPC output.
    #[arg(long, value_enum, default_value_t = VpcLayout::Extended)]
    pub vpc_layout: VpcLayout,
}

/// Serializes records in one of the output formats.
pub fn run(a: Args) -> CliResult {
    let (inputs, opts) = a.input.prepare()?;
    let out = Output::create(a.output.as_deref()).usage()?;
    let mut events = a.input.events(&inputs)?;
    let report = convert(&inputs, &opts, &mut events, a.to.into(), a.vpc_layout.into(), out).runtime("convert")?;
    if !a.input.quiet {
        eprintln!(
            "converted {} records ({} rejected lines) to {}",
            report.records,
            report.rejected,
            a.output.as_ref().map_or("<stdout>".into(), |p| p.display().to_string())
        );
    }
    events.finish(&report)
}
