//! One row of features per flow (`flowhound features`): key fields, every
//! feature by name (docs/features.md), and the ground truth when the input
//! has it — CSV or JSON lines.

use std::io::Write as _;

use flowhound_explain::json::{flow_keys, jnum};
use flowhound_features::schema::parse_window;
use flowhound_features::{Extractor, ExtractorParams, Kind};
use flowhound_flow::write::csv_field;
use flowhound_flow::FlowRecord;
use flowhound_source::{Input, ScanEvents, ScanOptions, ScanReport};
use ipnet::IpNet;

use crate::config::ConfigError;
use crate::outfile::OutFile;

/// How feature rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    Csv,
    Jsonl,
}

/// Builds extractor settings from their text (windows `60s,1h`, the
/// baseline window, extra columns, internal ranges), listing every problem.
pub fn extractor_params(
    windows: &str,
    baseline: &str,
    extras: &[String],
    internal: &[IpNet],
) -> Result<ExtractorParams, ConfigError> {
    let mut problems = Vec::new();
    let mut secs = Vec::new();
    for w in windows.split(',').filter(|w| !w.trim().is_empty()) {
        match parse_window(w) {
            Some(s) => secs.push(s),
            None => problems.push(format!("--windows: {w:?} is not a duration like 60s, 15m, 1h")),
        }
    }
    let baseline_secs = parse_window(baseline).unwrap_or_else(|| {
        problems.push(format!("--baseline: {baseline:?} is not a duration like 15m"));
        0
    });
    let p = ExtractorParams { windows: secs, baseline_secs, internal: internal.to_vec(), extras: extras.to_vec() };
    if let Err(flowhound_features::FeatureError::Params(more)) = p.check() {
        if problems.is_empty() {
            problems.extend(more);
        }
    }
    if problems.is_empty() {
        Ok(p)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

fn num(out: &mut Vec<u8>, v: f32) {
    if v.is_nan() {
        return;
    }
    if v.fract() == 0.0 && v.abs() < 1e9 {
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        out.extend_from_slice(ryu::Buffer::new().format(v).as_bytes());
    }
}

const KEYS: [&str; 6] = ["time", "src", "dst", "src_port", "dst_port", "protocol"];

/// What an export did.
#[derive(Debug)]
pub struct Exported {
    pub scan: ScanReport,
    /// Features per row.
    pub features: usize,
    /// Hosts holding window state at the end.
    pub active_hosts: usize,
    /// When the input was far from time order.
    pub order_warning: Option<String>,
}

/// Extracts every flow of `inputs` into rows of `format` in `out`
/// (finished when done).
pub fn export(
    mut params: ExtractorParams,
    format: RowFormat,
    inputs: &[Input],
    opts: &ScanOptions,
    events: &mut dyn ScanEvents,
    mut out: OutFile,
) -> Result<Exported, ExportError> {
    let mut x = params.build(None)?;
    let mut error = None;
    let mut row = Vec::new();
    let mut buf = Vec::new();
    // The header waits for the first record: `--extra all` names its columns.
    let mut head: Option<(Vec<String>, Vec<bool>)> = None;
    // Context features need flows in order, one at a time: parsed in
    // parallel, extracted here.
    let report = flowhound_source::scan_records(inputs, opts, events, |recs| {
        buf.clear();
        for r in &recs {
            let (names, text_cols) = head.get_or_insert_with(|| {
                if params.resolve_all(r) {
                    if let Ok(built) = params.build(None) {
                        x = built;
                    }
                }
                header(&x, format, &mut buf)
            });
            row.clear();
            x.extract(r, &mut row);
            let cells = Cells { row: &row, text: text_cols, names: x.category_names() };
            match format {
                RowFormat::Csv => write_csv(r, &cells, &mut buf),
                RowFormat::Jsonl => write_json(r, names, &cells, &mut buf),
            }
        }
        if error.is_none() {
            error = out.write_all(&buf).err();
        }
    });
    if let Some(e) = error {
        return Err(e.into());
    }
    if head.is_none() {
        // No record: the header of the settings as given.
        buf.clear();
        header(&x, format, &mut buf);
        out.write_all(&buf)?;
    }
    out.finish()?;
    Ok(Exported {
        features: x.schema().len(),
        active_hosts: x.active_hosts(),
        order_warning: x.order_warning(report.records),
        scan: report,
    })
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Settings the extractor refused.
    #[error(transparent)]
    Settings(#[from] flowhound_features::FeatureError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The feature names and which are printed as text; with CSV, the header
/// line goes to `buf`.
fn header(x: &Extractor, format: RowFormat, buf: &mut Vec<u8>) -> (Vec<String>, Vec<bool>) {
    let names: Vec<String> = x.schema().names().map(str::to_string).collect();
    // Categories print as their text (`REJ`, `dns`), not their codes.
    let text_cols: Vec<bool> =
        x.schema().features.iter().map(|f| f.kind == Kind::Categorical && f.name != "proto").collect();
    if format == RowFormat::Csv {
        let mut head: Vec<String> = KEYS.iter().map(|s| s.to_string()).collect();
        head.extend(names.iter().cloned());
        head.extend(["malicious".to_string(), "category".to_string()]);
        buf.extend_from_slice((head.join(",") + "\n").as_bytes());
    }
    (names, text_cols)
}

/// A row's values and how to print them.
struct Cells<'a> {
    row: &'a [f32],
    /// Categorical columns printed as text.
    text: &'a [bool],
    names: &'a std::collections::BTreeMap<u32, String>,
}

impl Cells<'_> {
    fn text(&self, i: usize) -> Option<&str> {
        let v = self.row[i];
        (self.text[i] && !v.is_nan()).then(|| self.names.get(&(v as u32)).map(String::as_str)).flatten()
    }
}

fn write_csv(r: &FlowRecord, c: &Cells<'_>, out: &mut Vec<u8>) {
    if let Some(t) = r.start {
        out.extend_from_slice(t.to_rfc3339().as_bytes());
    }
    for v in [r.src.map(|a| a.to_string()), r.dst.map(|a| a.to_string())] {
        out.push(b',');
        if let Some(v) = v {
            out.extend_from_slice(v.as_bytes());
        }
    }
    for v in [r.src_port.map(u64::from), r.dst_port.map(u64::from), r.protocol.map(u64::from)] {
        out.push(b',');
        if let Some(v) = v {
            let _ = write!(out, "{v}");
        }
    }
    for (i, v) in c.row.iter().enumerate() {
        out.push(b',');
        match c.text(i) {
            Some(t) => csv_field(out, t),
            None => num(out, *v),
        }
    }
    out.push(b',');
    if let Some(t) = &r.truth {
        out.extend_from_slice(if t.malicious { b"true" } else { b"false" });
    }
    out.push(b',');
    if let Some(cat) = r.truth.as_ref().and_then(|t| t.category.as_deref()) {
        csv_field(out, cat);
    }
    out.push(b'\n');
}

fn write_json(r: &FlowRecord, names: &[String], c: &Cells<'_>, out: &mut Vec<u8>) {
    let mut m = serde_json::Map::new();
    flow_keys(&mut m, r);
    for (i, (n, v)) in names.iter().zip(c.row).enumerate() {
        let v = match c.text(i) {
            Some(t) => serde_json::Value::from(t),
            None if v.is_nan() => serde_json::Value::Null,
            None => jnum(*v),
        };
        m.insert(n.clone(), v);
    }
    if let Some(t) = &r.truth {
        m.insert("malicious".into(), t.malicious.into());
        m.insert("category".into(), t.category.as_deref().into());
    }
    let _ = serde_json::to_writer(&mut *out, &m);
    out.push(b'\n');
}
