//! `flowhound features`: one row of features per flow.

use std::path::PathBuf;

use flowhound_explain::json::{flow_keys, jnum};
use flowhound_features::schema::parse_window;
use flowhound_features::{ExtractorParams, Kind};
use flowhound_flow::write::csv_field;
use flowhound_flow::FlowRecord;
use ipnet::IpNet;

use super::{InputArgs, SORT_HINT};
use crate::exit::{Classify, CliError, CliResult};
use flowhound_engine::outfile::OutFile as Output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RowFormat {
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

    #[arg(long, value_enum, default_value_t = RowFormat::Csv)]
    pub format: RowFormat,

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
        Err(CliError::usage(anyhow::anyhow!(problems.join("; "))))
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

pub fn run(a: Args) -> CliResult {
    let mut params = a.features.params()?;
    let (inputs, opts) = a.input.prepare()?;
    let mut x = params.build(None).usage()?;
    let mut out = Output::create(a.output.as_deref()).usage()?;
    let mut events = a.input.events(&inputs)?;
    let mut error = None;
    let mut row = Vec::new();
    let mut buf = Vec::new();
    // The header waits for the first record: `--extra all` names its columns.
    let mut head: Option<(Vec<String>, Vec<bool>)> = None;
    let report = flowhound_source::scan(
        &inputs,
        &opts,
        &mut events,
        // Context features need flows in order, one at a time: parse in
        // parallel, extract in the ordered reduce.
        |recs: &[FlowRecord]| recs.to_vec(),
        |recs| {
            buf.clear();
            for r in &recs {
                let (names, text_cols) = head.get_or_insert_with(|| {
                    if params.resolve_all(r) {
                        if let Ok(built) = params.build(None) {
                            x = built;
                        }
                    }
                    header(&x, a.format, &mut buf)
                });
                row.clear();
                x.extract(r, &mut row);
                let cells = Cells { row: &row, text: text_cols, names: x.category_names() };
                match a.format {
                    RowFormat::Csv => write_csv(r, &cells, &mut buf),
                    RowFormat::Jsonl => write_json(r, names, &cells, &mut buf),
                }
            }
            if error.is_none() {
                error = out.write_all(&buf).err();
            }
        },
    );
    if let Some(e) = error {
        return Err(e.into());
    }
    if head.is_none() {
        // No record: the header of the settings as given.
        buf.clear();
        header(&x, a.format, &mut buf);
        out.write_all(&buf)?;
    }
    out.finish()?;
    if !a.input.quiet {
        eprintln!(
            "{} rows of {} features ({} rejected lines); {} hosts held window state at the end",
            report.records,
            x.schema().len(),
            report.rejected,
            x.active_hosts()
        );
        if let Some(w) = x.order_warning(report.records) {
            eprintln!("{w}: {SORT_HINT}");
        }
    }
    events.finish(&report)
}

/// The feature names and which are printed as text; with CSV, the header
/// line goes to `buf`.
fn header(x: &flowhound_features::Extractor, format: RowFormat, buf: &mut Vec<u8>) -> (Vec<String>, Vec<bool>) {
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
    use std::io::Write;
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
