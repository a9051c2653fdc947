//! Golden tests for every reader: each fixture in `tests/fixtures` is parsed
//! line by line and compared with `NAME.golden.json` (records as JSON, rejects
//! with line numbers and reasons, NODATA/SKIPDATA counts).
//!
//! After an intended change: `UPDATE_GOLDEN=1 cargo test -p flowhound-flow --test golden`,
//! then read the diff of the golden files before committing them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flowhound_flow::tabular::Mapping;
use flowhound_flow::write::{self, CsvWriter, VpcWriter};
use flowhound_flow::{detect, FlowReader, FlowRecord, Format, LineKind};
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

struct Parsed {
    format: String,
    records: Vec<FlowRecord>,
    rejects: Vec<Value>,
    no_data: u64,
    skip_data: u64,
}

fn parse(bytes: &[u8], format: Format) -> Parsed {
    let mut reader = format.reader();
    let mut records = Vec::new();
    let mut rejects = Vec::new();
    let (mut no_data, mut skip_data) = (0, 0);
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match reader.read_line(line, &mut records) {
            Ok(LineKind::NoData) => no_data += 1,
            Ok(LineKind::SkipData) => skip_data += 1,
            Ok(_) => {}
            Err(r) => rejects.push(json!({"line": i + 1, "reason": r.reason.as_str(), "detail": r.detail})),
        }
    }
    Parsed { format: format.name().to_string(), records, rejects, no_data, skip_data }
}

fn check(name: &str, format: Option<Format>) -> Parsed {
    let bytes = std::fs::read(fixture(name)).expect("fixture exists");
    let format = format.unwrap_or_else(|| detect(&bytes).expect("format detected"));
    let p = parse(&bytes, format);
    let got = json!({
        "format": p.format,
        "records": p.records.iter().map(|r| Value::Object(write::to_json(r))).collect::<Vec<_>>(),
        "rejects": p.rejects,
        "no_data": p.no_data,
        "skip_data": p.skip_data,
    });
    let golden = fixture(&format!("{name}.golden.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
        std::fs::write(&golden, text).expect("write golden");
    }
    let want: Value = serde_json::from_slice(
        &std::fs::read(&golden)
            .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1 to create it", golden.display())),
    )
    .expect("golden is JSON");
    assert_eq!(got, want, "{name} differs from its golden file");
    p
}

fn mapping() -> Format {
    let text = std::fs::read_to_string(fixture("custom.toml")).expect("mapping");
    let m: Mapping = toml_lite(&text);
    m.check().expect("mapping valid");
    Format::Mapped(Arc::new(m))
}

/// The flow crate does not depend on `toml`; the fixture mapping is simple
/// enough to build by hand here (the CLI test reads the same file with toml).
fn toml_lite(text: &str) -> Mapping {
    let mut m = Mapping::default();
    let mut in_columns = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if line == "[columns]" {
            in_columns = true;
            continue;
        }
        let (k, v) = line.split_once('=').expect("key = value");
        let (k, v) = (k.trim(), v.trim());
        let unquote = |s: &str| s.trim_matches('"').to_string();
        if in_columns {
            m.columns.insert(k.to_string(), unquote(v));
        } else if k == "delimiter" {
            m.delimiter = Some(unquote(v));
        } else if k == "extra" {
            m.extra = v.trim_matches(['[', ']']).split(',').map(|s| unquote(s.trim())).collect();
        } else if k == "benign" {
            m.benign = v.trim_matches(['[', ']']).split(',').map(|s| unquote(s.trim())).collect();
        }
    }
    m
}

#[test]
fn vpc_default_v2() {
    let p = check("vpc-v2.log", None);
    assert_eq!((p.records.len(), p.no_data, p.skip_data), (4, 1, 1));
    assert!(p.records[2].src.is_some_and(|a| a.is_ipv6()));
}

#[test]
fn vpc_custom_v8_all_kinds_of_fields() {
    let p = check("vpc-v8-custom.log", None);
    assert_eq!(p.records.len(), 3);
    let c = p.records[1].cloud.as_deref().expect("cloud context");
    assert_eq!(c.region.as_deref(), Some("us-east-2"));
    assert_eq!(c.get_other(flowhound_flow::vpc::VpcField::EcsClusterName), Some("prod-cluster"));
    assert_eq!(
        p.records[2].cloud.as_deref().and_then(|c| c.get_other(flowhound_flow::vpc::VpcField::RejectReason)),
        Some("BPA")
    );
}

#[test]
fn vpc_cloudwatch_export() {
    let p = check("vpc-cloudwatch.log", None);
    assert_eq!(p.records.len(), 2);
    assert!(p.rejects.is_empty());
}

#[test]
fn vpc_broken_lines_are_counted_not_fatal() {
    let p = check("vpc-broken.log", None);
    // Two good lines survive among eleven broken ones.
    assert_eq!(p.records.len(), 2);
    assert_eq!(p.rejects.len(), 11);
    let reasons: Vec<&str> = p.rejects.iter().filter_map(|r| r["reason"].as_str()).collect();
    assert!(p.rejects.iter().any(|r| r["detail"] == "end is before start"), "found by fuzzing");
    for want in ["bad_address", "bad_port", "bad_number", "bad_time", "bad_protocol", "bad_value", "field_count"] {
        assert!(reasons.contains(&want), "{want} missing from {reasons:?}");
    }
}

#[test]
fn vpc_header_with_unknown_field_is_rejected() {
    let p = check("vpc-bad-header.log", Some(Format::Vpc));
    assert!(p.records.is_empty());
    assert!(p.rejects[0]["detail"].as_str().is_some_and(|d| d.contains("bogus-field")));
}

#[test]
fn zeek_tsv() {
    let p = check("zeek-conn.log", None);
    assert_eq!(p.records.len(), 4);
    assert_eq!(p.rejects.len(), 2);
    let https = &p.records[2];
    assert_eq!(https.bytes.fwd, Some(2240));
    assert_eq!(https.bytes.total, Some(60_580));
    assert_eq!(https.duration_us, Some(12_500_000));
    // S, h, A, D, a, d, F, f -> SYN|ACK|FIN
    assert_eq!(https.tcp_flags, Some(0x13));
    // History letters are not TCP flags on a UDP flow.
    assert_eq!(p.records[1].tcp_flags, None);
}

#[test]
fn zeek_without_header_rejects_everything() {
    let p = check("zeek-no-header.log", Some(Format::ZeekTsv));
    assert!(p.records.is_empty());
    assert_eq!(p.rejects.len(), 2);
}

#[test]
fn zeek_json() {
    let p = check("zeek-conn.json", None);
    assert_eq!(p.records.len(), 2);
    assert_eq!(p.rejects.len(), 3);
    assert_eq!(p.records[1].start.map(|t| t.micros()), Some(1_713_484_805_100_000));
}

#[test]
fn iot23_csv_with_crlf() {
    let p = check("iot23.csv", None);
    assert_eq!(p.records.len(), 4);
    assert!(p.rejects.is_empty());
    let cats: Vec<Option<&str>> =
        p.records.iter().map(|r| r.truth.as_ref().and_then(|t| t.category.as_deref())).collect();
    assert_eq!(cats, vec![Some("PartOfAHorizontalPortScan"), Some("C&C"), None, None]);
    assert_eq!(p.records[2].truth.as_ref().map(|t| t.malicious), Some(false));
    assert_eq!(p.records[3].truth, None, "an empty label cell is not a verdict");
}

#[test]
fn iot23_original_labeled_conn_log() {
    let p = check("iot23-original.log", None);
    assert_eq!(p.records.len(), 2);
    assert_eq!(p.records[0].truth.as_ref().map(|t| t.malicious), Some(true));
    assert_eq!(p.records[1].truth.as_ref().map(|t| t.malicious), Some(false));
}

#[test]
fn unsw_bom_crlf_and_pseudo_protocols() {
    let p = check("unsw.csv", None);
    assert_eq!(p.records.len(), 3);
    assert_eq!(p.rejects.len(), 2);
    assert_eq!(p.records[2].protocol, None, "`unas` has no IANA number");
    assert_eq!(p.records[1].truth.as_ref().and_then(|t| t.category.as_deref()), Some("Exploits"));
    assert_eq!(p.records[0].extra.get("rate"), Some(125_000.000_3));
}

#[test]
fn cic_improved() {
    let p = check("cic-improved.csv", None);
    assert_eq!(p.records.len(), 2);
    assert_eq!(p.records[0].tcp_flags, Some(0x02 | 0x04 | 0x10));
    assert_eq!(p.records[1].duration_us, Some(1_000_000));
}

#[test]
fn cic_2017_original_layout() {
    let p = check("cic-2017.csv", None);
    assert_eq!(p.records.len(), 3);
    assert!(p.rejects.is_empty());
    let names = p.records[0].extra.names.as_deref().expect("extras");
    assert!(names.iter().any(|n| n == "Fwd Header Length") && names.iter().any(|n| n == "Fwd Header Length.1"));
    assert_eq!(p.records[1].truth.as_ref().and_then(|t| t.category.as_deref()), Some("Web Attack - Brute Force"));
    assert!(p.records[1].extra.get("Flow Bytes/s").is_some_and(f64::is_infinite));
    assert!(p.records[2].extra.get("Flow Bytes/s").is_some_and(f64::is_nan));
    assert_eq!(p.records[2].start.map(|t| t.secs()), Some(1_499_072_158));
}

#[test]
fn csv_through_a_mapping() {
    let p = check("custom.csv", Some(mapping()));
    assert_eq!(p.records.len(), 3);
    assert_eq!(p.rejects.len(), 1);
    let verdicts: Vec<Option<bool>> = p.records.iter().map(|r| r.truth.as_ref().map(|t| t.malicious)).collect();
    assert_eq!(verdicts, vec![Some(false), Some(true), Some(false)], "`fine` (mapping) and `ok` (built in) are benign");
    assert_eq!(p.records[1].truth.as_ref().and_then(|t| t.category.as_deref()), Some("bruteforce"));
    assert_eq!(p.records[0].extra.get("rtt_ms"), Some(12.5));
}

#[test]
fn mapping_errors_list_every_problem() {
    let mut m = Mapping::default();
    m.columns.insert("sauce".into(), "x".into());
    m.columns.insert("flavour".into(), "y".into());
    m.delimiter = Some(";;".into());
    let err = m.check().expect_err("invalid").to_string();
    assert!(err.contains("sauce") && err.contains("flavour") && err.contains("delimiter"), "{err}");
}

/// Everything read must survive flowhound's own CSV and JSONL unchanged.
#[test]
fn csv_and_jsonl_round_trip_every_fixture() {
    let cases: Vec<(&str, Option<Format>)> = vec![
        ("vpc-v2.log", None),
        ("vpc-v8-custom.log", None),
        ("zeek-conn.log", None),
        ("zeek-conn.json", None),
        ("iot23.csv", None),
        ("unsw.csv", None),
        ("cic-improved.csv", None),
        ("cic-2017.csv", None),
        ("custom.csv", Some(mapping())),
    ];
    for (name, fmt) in cases {
        let bytes = std::fs::read(fixture(name)).expect("fixture");
        let fmt = fmt.unwrap_or_else(|| detect(&bytes).expect("detect"));
        let recs = parse(&bytes, fmt).records;

        let w = CsvWriter::from_sample(&recs);
        let mut csv = Vec::new();
        w.header(&mut csv);
        for r in &recs {
            w.write(r, &mut csv);
        }
        assert_eq!(detect(&csv).ok(), Some(Format::Csv), "{name}: our CSV is detected as ours");
        let back = parse(&csv, Format::Csv);
        assert!(back.rejects.is_empty(), "{name}: {:?}", back.rejects);
        assert_eq!(back.records, recs, "{name} via CSV");

        let mut jl = Vec::new();
        for r in &recs {
            write::write_json(r, &mut jl);
        }
        let back = parse(&jl, Format::Jsonl);
        assert!(back.rejects.is_empty(), "{name}: {:?}", back.rejects);
        assert_eq!(back.records, recs, "{name} via JSONL");
    }
}

/// VPC output keeps what VPC can hold and reads back as VPC.
#[test]
fn vpc_round_trip() {
    let bytes = std::fs::read(fixture("vpc-v8-custom.log")).expect("fixture");
    let recs = parse(&bytes, Format::Vpc).records;
    let w = VpcWriter::default();
    let mut out = Vec::new();
    w.header(&mut out);
    for r in &recs {
        w.write(r, &mut out);
    }
    let back = parse(&out, Format::Vpc);
    assert!(back.rejects.is_empty(), "{:?}", back.rejects);
    assert_eq!(back.records.len(), recs.len());
    for (a, b) in back.records.iter().zip(&recs) {
        assert_eq!(
            (a.src, a.dst, a.src_port, a.dst_port, a.protocol),
            (b.src, b.dst, b.src_port, b.dst_port, b.protocol)
        );
        assert_eq!(
            (a.bytes, a.packets, a.start, a.end, a.action, a.tcp_flags, a.direction),
            (b.bytes, b.packets, b.start, b.end, b.action, b.tcp_flags, b.direction)
        );
    }
}

/// Hostile bytes never panic a reader: every fixture, cut and mangled.
#[test]
fn no_reader_panics_on_mangled_input() {
    let names =
        ["vpc-v2.log", "vpc-v8-custom.log", "zeek-conn.log", "zeek-conn.json", "iot23.csv", "unsw.csv", "cic-2017.csv"];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for name in names {
        let bytes = std::fs::read(fixture(name)).expect("fixture");
        for fmt in Format::NAMES.iter().filter_map(|n| Format::from_name(n)) {
            for _ in 0..200 {
                let mut b = bytes.clone();
                for _ in 0..(next() % 8) {
                    let i = (next() as usize) % b.len();
                    b[i] = next() as u8;
                }
                let cut = (next() as usize) % (b.len() + 1);
                b.truncate(cut);
                let _ = parse(&b, fmt.clone());
                let _ = detect(&b);
            }
        }
    }
}

#[test]
fn unsw_full_records_with_header() {
    let p = check("unsw-full.csv", None);
    assert_eq!(p.format, "unsw");
    assert_eq!(p.records.len(), 2);
    let r = &p.records[1];
    assert_eq!((r.src_port, r.dst_port, r.protocol), (Some(21223), Some(32780), Some(17)));
    assert_eq!(r.start.map(|t| t.secs()), Some(1_421_927_416));
    assert_eq!(r.truth.as_ref().and_then(|t| t.category.as_deref()), Some("Exploits"));
    assert_eq!(p.records[0].truth.as_ref().map(|t| (t.malicious, t.category.is_none())), Some((false, true)));
}

/// Repeated extra-column names stay apart as `name.1`, `name.2` (and a name
/// already taken by such a suffix is skipped), in time linear in the header:
/// 20,000 unnamed columns read at once.
#[test]
fn repeated_column_names_are_numbered() {
    use flowhound_flow::{FlowReader, Format};
    let mut r = Format::Unsw.reader();
    let mut out = Vec::new();
    r.read_line(b"srcip,dstip,x,x,x.1,x,,", &mut out).expect("header");
    r.read_line(b"10.0.0.1,10.0.0.2,1,2,3,4,5,6", &mut out).expect("row");
    let names = out[0].extra.names.as_deref().expect("extras");
    let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
    assert_eq!(names, ["x", "x.1", "x.1.1", "x.2", "", ".1"]);
    let wide = vec![b','; 20_000];
    let mut r = Format::Unsw.reader();
    let _ = r.read_line(&wide, &mut Vec::new());
}
