//! Writers: records out as VPC flow log lines, CSV, or JSON lines. Pure: they
//! append bytes to a buffer, so the driver can serialize chunks in parallel and
//! write them in order.

use std::io::Write as _;

use compact_str::CompactString;
use serde_json::{Map, Value};

use crate::record::{FlowRecord, Timestamp};
use crate::vpc::{self, VpcField};

fn opt<T: std::fmt::Display>(out: &mut Vec<u8>, v: Option<T>) {
    if let Some(v) = v {
        let _ = write!(out, "{v}");
    }
}

fn int(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Seconds with exactly six decimals, from integer microseconds: exact, so a
/// round trip through text loses nothing.
fn secs_exact(out: &mut Vec<u8>, us: u64) {
    let _ = write!(out, "{}.{:06}", us / 1_000_000, us % 1_000_000);
}

fn ts(out: &mut Vec<u8>, t: Timestamp) {
    let mut s = String::with_capacity(27);
    t.write_rfc3339(&mut s);
    out.extend_from_slice(s.as_bytes());
}

/// Writes VPC flow log lines in a fixed layout, with a header line first.
#[derive(Debug, Clone)]
pub struct VpcWriter {
    layout: Vec<VpcField>,
    version: u8,
}

impl Default for VpcWriter {
    fn default() -> Self {
        Self::new(vpc::extended())
    }
}

impl VpcWriter {
    pub fn new(layout: Vec<VpcField>) -> Self {
        let version = layout.iter().map(|f| f.version()).max().unwrap_or(2);
        VpcWriter { layout, version }
    }

    pub fn header(&self, out: &mut Vec<u8>) {
        for (i, f) in self.layout.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(f.name().as_bytes());
        }
        out.push(b'\n');
    }

    pub fn write(&self, r: &FlowRecord, out: &mut Vec<u8>) {
        for (i, f) in self.layout.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            let start = out.len();
            match f {
                VpcField::Version => int(out, u64::from(self.version)),
                VpcField::SrcAddr => opt(out, r.src),
                VpcField::DstAddr => opt(out, r.dst),
                VpcField::SrcPort => opt(out, r.src_port),
                VpcField::DstPort => opt(out, r.dst_port),
                VpcField::Protocol => opt(out, r.protocol),
                VpcField::Packets => opt(out, r.packets.total),
                VpcField::Bytes => opt(out, r.bytes.total),
                VpcField::Start => opt(out, r.start.map(Timestamp::secs)),
                // VPC times are whole seconds; round the end up so a flow never
                // appears to end before it started.
                VpcField::End => opt(out, r.end.map(|e| (e.0 + 999_999).div_euclid(1_000_000))),
                VpcField::Action => opt(out, r.action.map(|a| a.as_str())),
                VpcField::LogStatus => out.extend_from_slice(b"OK"),
                VpcField::TcpFlags => opt(out, r.tcp_flags),
                VpcField::FlowDirection => opt(out, r.direction.map(|d| d.as_str())),
                other => {
                    // Identifiers are written as they came; a space inside one would
                    // break the format, so it is replaced.
                    if let Some(t) = vpc::cloud_text(r, *other) {
                        out.extend(t.bytes().map(|b| if b == b' ' || b == b'\n' { b'_' } else { b }));
                    }
                }
            }
            if out.len() == start {
                out.push(b'-');
            }
        }
        out.push(b'\n');
    }
}

/// The columns every flowhound CSV starts with; `Role::by_key` reads them back.
pub const CSV_CORE: &[&str] = &[
    "start",
    "end",
    "duration",
    "src",
    "dst",
    "src_port",
    "dst_port",
    "protocol",
    "packets",
    "packets_fwd",
    "packets_bwd",
    "bytes",
    "bytes_fwd",
    "bytes_bwd",
    "action",
    "tcp_flags",
    "state",
    "direction",
    "service",
];

/// Writes flowhound's CSV. The optional columns (cloud context, ground truth,
/// the dataset's extras) are chosen from the first records seen, so a VPC file
/// gets its cloud columns and a CIC file its ~80 features.
#[derive(Debug, Clone)]
pub struct CsvWriter {
    cloud: Vec<VpcField>,
    truth: bool,
    extra: Vec<CompactString>,
}

impl CsvWriter {
    pub fn from_sample(sample: &[FlowRecord]) -> Self {
        let cloud = vpc::extended()
            .into_iter()
            .chain(VpcField::ALL.iter().copied())
            .filter(|f| vpc::is_cloud_field(*f))
            .fold(Vec::new(), |mut acc, f| {
                if !acc.contains(&f) && sample.iter().any(|r| vpc::cloud_text(r, f).is_some()) {
                    acc.push(f);
                }
                acc
            });
        let truth = sample.iter().any(|r| r.truth.is_some());
        let extra = sample.iter().find_map(|r| r.extra.names.as_ref()).map(|n| n.to_vec()).unwrap_or_default();
        CsvWriter { cloud, truth, extra }
    }

    pub fn header(&self, out: &mut Vec<u8>) {
        let mut cols: Vec<String> = CSV_CORE.iter().map(|s| s.to_string()).collect();
        cols.extend(self.cloud.iter().map(|f| f.name().replace('-', "_")));
        if self.truth {
            cols.push("malicious".into());
            cols.push("category".into());
        }
        cols.extend(self.extra.iter().map(|s| s.to_string()));
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            csv_field(out, c);
        }
        out.push(b'\n');
    }

    pub fn write(&self, r: &FlowRecord, out: &mut Vec<u8>) {
        let sep = |out: &mut Vec<u8>| out.push(b',');
        if let Some(t) = r.start {
            ts(out, t);
        }
        sep(out);
        if let Some(t) = r.end {
            ts(out, t);
        }
        sep(out);
        if let Some(d) = r.duration_us {
            secs_exact(out, d);
        }
        sep(out);
        opt(out, r.src);
        sep(out);
        opt(out, r.dst);
        sep(out);
        opt(out, r.src_port);
        sep(out);
        opt(out, r.dst_port);
        sep(out);
        opt(out, r.protocol);
        for c in [r.packets, r.bytes] {
            for v in [c.total, c.fwd, c.bwd] {
                sep(out);
                opt(out, v);
            }
        }
        sep(out);
        opt(out, r.action.map(|a| a.as_str()));
        sep(out);
        opt(out, r.tcp_flags);
        for s in [r.state.as_deref(), r.direction.map(|d| d.as_str()), r.service.as_deref()] {
            sep(out);
            if let Some(s) = s {
                csv_field(out, s);
            }
        }
        for f in &self.cloud {
            sep(out);
            if let Some(t) = vpc::cloud_text(r, *f) {
                csv_field(out, &t);
            }
        }
        if self.truth {
            sep(out);
            if let Some(t) = &r.truth {
                out.extend_from_slice(if t.malicious { b"true" } else { b"false" });
            }
            sep(out);
            if let Some(c) = r.truth.as_ref().and_then(|t| t.category.as_deref()) {
                csv_field(out, c);
            }
        }
        for name in &self.extra {
            sep(out);
            if let Some(v) = r.extra.get(name) {
                float(out, v);
            }
        }
        out.push(b'\n');
    }
}

/// A float as CSV text: shortest round-trip digits, `inf`/`-inf`, NaN as empty.
fn float(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        out.extend_from_slice(ryu::Buffer::new().format(v).as_bytes());
    }
}

/// RFC 4180 quoting when needed. Values are attacker-controlled: a comma,
/// quote or newline in a service name must not shift columns.
pub fn csv_field(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// The record as a JSON object with the CSV's field names; absent fields are
/// left out, cloud context is flat (`account_id`), extras nest under `extra`.
pub fn to_json(r: &FlowRecord) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    if let Some(t) = r.start {
        put("start", Value::from(t.to_rfc3339()));
    }
    if let Some(t) = r.end {
        put("end", Value::from(t.to_rfc3339()));
    }
    if let Some(d) = r.duration_us {
        let mut b = Vec::new();
        secs_exact(&mut b, d);
        // Exact decimal text as a JSON number.
        if let Ok(n) = serde_json::from_slice::<serde_json::Number>(&b) {
            put("duration", Value::Number(n));
        }
    }
    if let Some(a) = r.src {
        put("src", Value::from(a.to_string()));
    }
    if let Some(a) = r.dst {
        put("dst", Value::from(a.to_string()));
    }
    if let Some(p) = r.src_port {
        put("src_port", Value::from(p));
    }
    if let Some(p) = r.dst_port {
        put("dst_port", Value::from(p));
    }
    if let Some(p) = r.protocol {
        put("protocol", Value::from(p));
    }
    for (name, c) in [("packets", r.packets), ("bytes", r.bytes)] {
        if let Some(v) = c.total {
            put(name, Value::from(v));
        }
        if let Some(v) = c.fwd {
            put(&format!("{name}_fwd"), Value::from(v));
        }
        if let Some(v) = c.bwd {
            put(&format!("{name}_bwd"), Value::from(v));
        }
    }
    if let Some(a) = r.action {
        put("action", Value::from(a.as_str()));
    }
    if let Some(f) = r.tcp_flags {
        put("tcp_flags", Value::from(f));
    }
    if let Some(s) = &r.state {
        put("state", Value::from(s.as_str()));
    }
    if let Some(d) = r.direction {
        put("direction", Value::from(d.as_str()));
    }
    if let Some(s) = &r.service {
        put("service", Value::from(s.as_str()));
    }
    for f in VpcField::ALL {
        if vpc::is_cloud_field(*f) {
            if let Some(t) = vpc::cloud_text(r, *f) {
                let v = match *f {
                    VpcField::Version | VpcField::TrafficPath => {
                        t.parse::<u64>().map(Value::from).unwrap_or(Value::from(t))
                    }
                    _ => Value::from(t),
                };
                put(&f.name().replace('-', "_"), v);
            }
        }
    }
    if let Some(t) = &r.truth {
        put("malicious", Value::from(t.malicious));
        if let Some(c) = &t.category {
            put("category", Value::from(c.as_str()));
        }
    }
    if !r.extra.is_empty() {
        let e: Map<String, Value> = r
            .extra
            .iter()
            .map(|(k, v)| {
                let v = if v.is_nan() {
                    Value::Null
                } else if v.is_infinite() {
                    Value::from(if v > 0.0 { "Infinity" } else { "-Infinity" })
                } else {
                    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
                };
                (k.to_string(), v)
            })
            .collect();
        m.insert("extra".into(), Value::Object(e));
    }
    m
}

/// One JSON line.
pub fn write_json(r: &FlowRecord, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, &to_json(r));
    out.push(b'\n');
}
