//! The reader trait, the supported formats, and detection from content.

use std::sync::Arc;

use crate::error::{FlowError, Reject};
use crate::json::{JsonDialect, JsonReader};
use crate::record::FlowRecord;
use crate::tabular::{Dialect, Mapping, TabularReader};
use crate::vpc::{VpcField, VpcReader};

/// What a line turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Record,
    /// Declares or repeats the layout (VPC header, CSV header, Zeek `#fields`).
    Header,
    Comment,
    Blank,
    /// VPC `NODATA`: no traffic in the capture window.
    NoData,
    /// VPC `SKIPDATA`: records were skipped in the capture window.
    SkipData,
}

/// A pure, incremental parser: one line in (without its line ending), zero or
/// more records out. Readers own their header state; a clone taken after the
/// header continues correctly on any later line, which is what lets the block
/// driver parse chunks of one file in parallel.
pub trait FlowReader: Clone + Send {
    fn read_line(&mut self, line: &[u8], out: &mut Vec<FlowRecord>) -> Result<LineKind, Reject>;
}

/// Every input format flowhound reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Vpc,
    ZeekTsv,
    ZeekJson,
    ZeekCsv,
    Unsw,
    Cic,
    /// flowhound's CSV (`convert --to csv`).
    Csv,
    /// flowhound's JSON lines (`convert --to jsonl`).
    Jsonl,
    /// Any CSV through a column mapping.
    Mapped(Arc<Mapping>),
}

impl Format {
    /// The names accepted by `--input-format`.
    pub const NAMES: &'static [&'static str] = &["vpc", "zeek", "zeek-json", "zeek-csv", "unsw", "cic", "csv", "jsonl"];

    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "vpc" => Format::Vpc,
            "zeek" | "zeek-tsv" => Format::ZeekTsv,
            "zeek-json" => Format::ZeekJson,
            "zeek-csv" | "iot23" | "iot-23" => Format::ZeekCsv,
            "unsw" | "unsw-nb15" => Format::Unsw,
            "cic" | "cic-ids2017" => Format::Cic,
            "csv" => Format::Csv,
            "jsonl" | "json" => Format::Jsonl,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Format::Vpc => "vpc",
            Format::ZeekTsv => "zeek",
            Format::ZeekJson => "zeek-json",
            Format::ZeekCsv => "zeek-csv",
            Format::Unsw => "unsw",
            Format::Cic => "cic",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Mapped(_) => "mapped-csv",
        }
    }

    /// A fresh reader for this format.
    pub fn reader(&self) -> AnyReader {
        match self {
            Format::Vpc => AnyReader::Vpc(VpcReader::default()),
            Format::ZeekTsv => AnyReader::Tabular(TabularReader::new(Dialect::ZeekTsv)),
            Format::ZeekCsv => AnyReader::Tabular(TabularReader::new(Dialect::ZeekCsv)),
            Format::Unsw => AnyReader::Tabular(TabularReader::new(Dialect::Unsw)),
            Format::Cic => AnyReader::Tabular(TabularReader::new(Dialect::Cic)),
            Format::Csv => AnyReader::Tabular(TabularReader::new(Dialect::Flowhound)),
            Format::Mapped(m) => AnyReader::Tabular(TabularReader::new(Dialect::Mapped(m.clone()))),
            Format::ZeekJson => AnyReader::Json(JsonReader::new(JsonDialect::Zeek)),
            Format::Jsonl => AnyReader::Json(JsonReader::new(JsonDialect::Flowhound)),
        }
    }
}

/// Static dispatch over the readers: an enum, not `dyn`, because the driver
/// clones readers per chunk and calls them once per line.
#[derive(Debug, Clone)]
pub enum AnyReader {
    Vpc(VpcReader),
    Tabular(TabularReader),
    Json(JsonReader),
}

impl FlowReader for AnyReader {
    #[inline]
    fn read_line(&mut self, line: &[u8], out: &mut Vec<FlowRecord>) -> Result<LineKind, Reject> {
        match self {
            AnyReader::Vpc(r) => r.read_line(line, out),
            AnyReader::Tabular(r) => r.read_line(line, out),
            AnyReader::Json(r) => r.read_line(line, out),
        }
    }
}

/// Tells the format from the first bytes of a (decompressed) input.
pub fn detect(sample: &[u8]) -> Result<Format, FlowError> {
    let sample = sample.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(sample);
    let first = sample
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        .ok_or_else(|| FlowError::UnknownFormat("the input is empty".into()))?;
    // Text formats hold no NUL; binary ones flowhound reads (captures,
    // Parquet, gzip) were recognized before this. Say so instead of taking
    // an executable's bytes for CSV column names.
    if sample[..sample.len().min(4096)].contains(&0) {
        let head: Vec<String> = sample.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return Err(FlowError::UnknownFormat(format!(
            "binary data, not a flow log, capture or Parquet file (it starts with bytes {})",
            head.join(" ")
        )));
    }
    if first.starts_with(b"#") {
        return Ok(Format::ZeekTsv);
    }
    if first.starts_with(b"{") {
        return Ok(if memchr::memmem::find(first, b"\"id.orig_h\"").is_some() {
            Format::ZeekJson
        } else {
            Format::Jsonl
        });
    }
    if memchr::memchr(b',', first).is_some() {
        let lower = String::from_utf8_lossy(first).to_ascii_lowercase();
        let names: Vec<String> = lower.split(',').map(|n| n.trim().trim_matches('"').to_string()).collect();
        let has = |n: &str| names.iter().any(|x| x == n);
        if has("id.orig_h") {
            return Ok(Format::ZeekCsv);
        }
        if has("attack_cat") || (has("sbytes") && has("dbytes")) {
            return Ok(Format::Unsw);
        }
        if has("flow duration") || (has("dst port") && has("flow iat mean")) || has("destination port") {
            return Ok(Format::Cic);
        }
        if has("src") && has("dst") && (has("start") || has("bytes") || has("packets")) {
            return Ok(Format::Csv);
        }
        // Names are the file's bytes: escaped and cut before they reach a terminal.
        let shown: Vec<String> = names.iter().take(8).map(|n| crate::error::printable(n, 32)).collect();
        return Err(FlowError::UnknownFormat(format!(
            "a CSV whose columns ({}{}) match no known dataset; describe it with --map-file FILE or --map FIELD=COLUMN",
            shown.join(", "),
            if names.len() > 8 { ", …" } else { "" }
        )));
    }
    let mut tokens = first.split(|b| *b == b' ' || *b == b'\t').filter(|t| !t.is_empty());
    let t0 = tokens.next().unwrap_or_default();
    let is_version = !t0.is_empty() && t0.len() <= 2 && t0.iter().all(u8::is_ascii_digit);
    let is_cw_time = t0.len() >= 19 && t0[4] == b'-' && t0[10] == b'T';
    if VpcField::from_name(t0).is_some() || is_version || is_cw_time {
        return Ok(Format::Vpc);
    }
    Err(FlowError::UnknownFormat(format!(
        "first line starts with \"{}\"; name the format with --input-format ({})",
        crate::error::show(&first[..first.len().min(40)]),
        Format::NAMES.join("|")
    )))
}
