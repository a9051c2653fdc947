//! `flowhound convert`: any supported input out as VPC, CSV or JSON lines.

use std::path::PathBuf;

use flowhound_flow::write::{self, CsvWriter, VpcWriter};
use flowhound_flow::FlowRecord;

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

impl VpcLayout {
    pub fn fields(self) -> Vec<flowhound_flow::vpc::VpcField> {
        match self {
            VpcLayout::V2 => flowhound_flow::vpc::DEFAULT_V2.to_vec(),
            VpcLayout::Extended => flowhound_flow::vpc::extended(),
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
#[derive(Debug)]
pub enum Writer {
    Vpc(VpcWriter),
    Csv(CsvWriter),
    Jsonl,
}

impl Writer {
    pub fn new(to: OutFormat, layout: VpcLayout, sample: &[FlowRecord]) -> Self {
        match to {
            OutFormat::Vpc => Writer::Vpc(VpcWriter::new(layout.fields())),
            OutFormat::Csv => Writer::Csv(CsvWriter::from_sample(sample)),
            OutFormat::Jsonl => Writer::Jsonl,
        }
    }

    pub fn header(&self, out: &mut Vec<u8>) {
        match self {
            Writer::Vpc(w) => w.header(out),
            Writer::Csv(w) => w.header(out),
            Writer::Jsonl => {}
        }
    }

    pub fn write(&self, recs: &[FlowRecord], out: &mut Vec<u8>) {
        for r in recs {
            match self {
                Writer::Vpc(w) => w.write(r, out),
                Writer::Csv(w) => w.write(r, out),
                Writer::Jsonl => write::write_json(r, out),
            }
        }
    }
}

pub fn run(a: Args) -> CliResult {
    let (inputs, opts) = a.input.prepare()?;
    let sample = flowhound_source::sample(&inputs, &opts, 256 << 10);
    let writer = Writer::new(a.to, a.vpc_layout, &sample);
    let mut out = Output::create(a.output.as_deref()).usage()?;
    let mut head = Vec::new();
    writer.header(&mut head);
    out.write_all(&head)?;
    let mut events = a.input.events(&inputs)?;
    let mut error = None;
    let report = flowhound_source::scan(
        &inputs,
        &opts,
        &mut events,
        |recs| {
            let mut buf = Vec::with_capacity(recs.len() * 160);
            writer.write(recs, &mut buf);
            buf
        },
        |buf| {
            if error.is_none() {
                error = out.write_all(&buf).err();
            }
        },
    );
    if let Some(e) = error {
        return Err(e.into());
    }
    out.finish().runtime("convert")?;
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
