//! Flow records out as records: `convert` (any input to VPC, CSV or JSON
//! lines) and `generate` (labeled synthetic traffic in the same formats,
//! with its ground truth beside it).

use std::io;
use std::path::{Path, PathBuf};

use flowhound_flow::labels::LabelTable;
use flowhound_flow::write::{self, CsvWriter, VpcWriter};
use flowhound_flow::FlowRecord;
use flowhound_source::{Input, ScanEvents, ScanOptions, ScanReport};
use flowhound_synth::{GenParams, GenSummary};
use rayon::prelude::*;

use crate::outfile::OutFile;

/// The record formats flowhound writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    Vpc,
    Csv,
    Jsonl,
}

/// Which VPC Flow Logs fields are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VpcLayout {
    /// The default v2 fields.
    V2,
    /// Every field flowhound reads.
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

#[derive(Debug)]
pub enum Writer {
    Vpc(VpcWriter),
    Csv(CsvWriter),
    Jsonl,
}

impl Writer {
    pub fn new(to: RecordFormat, layout: VpcLayout, sample: &[FlowRecord]) -> Self {
        match to {
            RecordFormat::Vpc => Writer::Vpc(VpcWriter::new(layout.fields())),
            RecordFormat::Csv => Writer::Csv(CsvWriter::from_sample(sample)),
            RecordFormat::Jsonl => Writer::Jsonl,
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

/// Every record of `inputs` into `out` (finished when done); CSV columns
/// are chosen from a sample of the input.
pub fn convert(
    inputs: &[Input],
    opts: &ScanOptions,
    events: &mut dyn ScanEvents,
    to: RecordFormat,
    layout: VpcLayout,
    mut out: OutFile,
) -> io::Result<ScanReport> {
    let sample = flowhound_source::sample(inputs, opts, 256 << 10);
    let writer = Writer::new(to, layout, &sample);
    let mut head = Vec::new();
    writer.header(&mut head);
    out.write_all(&head)?;
    let mut error = None;
    let report = flowhound_source::scan(
        inputs,
        opts,
        events,
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
        return Err(e);
    }
    out.finish()?;
    Ok(report)
}

fn flush(
    writer: &Writer,
    out: &mut OutFile,
    labels: Option<&mut OutFile>,
    pending: &mut Vec<FlowRecord>,
    line: &mut u64,
) -> io::Result<()> {
    let bufs: Vec<Vec<u8>> = pending
        .par_chunks(4096)
        .map(|c| {
            let mut b = Vec::with_capacity(c.len() * 180);
            writer.write(c, &mut b);
            b
        })
        .collect();
    for b in &bufs {
        out.write_all(b)?;
    }
    if let Some(l) = labels {
        let mut text = String::with_capacity(pending.len() * 12);
        for r in pending.iter() {
            *line += 1;
            LabelTable::write_line(&mut text, *line, r.truth.as_ref());
        }
        l.write_all(text.as_bytes())?;
    }
    pending.clear();
    Ok(())
}

pub fn default_labels_path(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(".labels.csv");
    PathBuf::from(s)
}

/// Generates `params`' traffic into `out` as `format`, and its ground
/// truth by line into `labels` (both finished when done).
pub fn generate(
    params: &GenParams,
    format: RecordFormat,
    layout: VpcLayout,
    mut out: OutFile,
    mut labels: Option<OutFile>,
) -> io::Result<GenSummary> {
    // Output columns must not depend on what the first minute happens to hold:
    // a sample record with every field the generator sets fixes them.
    let writer = {
        let mut sample = Vec::new();
        let _ =
            flowhound_synth::generate(&GenParams { flows: 50, anomaly_ratio: 0.0, hours: 1, ..params.clone() }, |b| {
                sample.extend_from_slice(b);
                Ok::<(), ()>(())
            });
        Writer::new(format, layout, &sample)
    };
    let mut head = Vec::new();
    writer.header(&mut head);
    out.write_all(&head)?;
    if let Some(l) = &mut labels {
        l.write_all(format!("{}\n", LabelTable::HEADER).as_bytes())?;
    }
    // Data lines start after the header line.
    let mut line: u64 = if format == RecordFormat::Jsonl { 0 } else { 1 };
    // Serialize a few minutes at a time on all cores.
    let mut pending: Vec<FlowRecord> = Vec::new();
    let summary = flowhound_synth::generate(params, |batch| {
        pending.extend_from_slice(batch);
        if pending.len() >= 64 << 10 {
            flush(&writer, &mut out, labels.as_mut(), &mut pending, &mut line)?;
        }
        Ok::<(), io::Error>(())
    })?;
    flush(&writer, &mut out, labels.as_mut(), &mut pending, &mut line)?;
    out.finish()?;
    if let Some(l) = labels {
        l.finish()?;
    }
    Ok(summary)
}
