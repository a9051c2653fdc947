//! The bodies of the `cargo fuzz` targets (`fuzz/fuzz_targets/`), here so
//! that every input a fuzzer ever crashed is replayed by an ordinary test
//! (`tests/fuzz_regressions.rs`, over `fuzz/regressions/TARGET/`) through the
//! very code the fuzzer ran. Each panics on a broken promise; returning is
//! passing.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::netflow::{Collector, CollectorParams};
use crate::pcap::{flows, FlowTimeouts};
use crate::tabular::Mapping;
use crate::{FlowReader, FlowRecord, Format, LineKind};

/// Every line to a reader of `format`; then the invariants every reader promises.
pub fn lines(data: &[u8], format: Format) {
    let mut reader = format.reader();
    let mut out: Vec<FlowRecord> = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        let before = out.len();
        match reader.read_line(line, &mut out) {
            Ok(LineKind::Record) => assert_eq!(out.len(), before + 1),
            Ok(_) | Err(_) => assert_eq!(out.len(), before, "no record from a non-record line"),
        }
    }
    for r in &out {
        if let (Some(s), Some(e)) = (r.start, r.end) {
            assert!(e >= s, "end before start");
        }
        if let (Some(f), Some(b), Some(t)) = (r.bytes.fwd, r.bytes.bwd, r.bytes.total) {
            assert_eq!(t, f.saturating_add(b));
        }
        let mut buf = Vec::new();
        crate::write::write_json(r, &mut buf);
    }
}

/// A user's mapping: by names (`custom.csv`'s columns, `;`-separated) or by
/// positions over a file without a header.
fn mapped(by_position: bool) -> Format {
    let cols: &[(&str, &str)] = if by_position {
        &[("src", "#1"), ("dst", "#2"), ("src_port", "#3"), ("protocol", "#4"), ("bytes", "#5")]
    } else {
        &[("start", "when"), ("src", "source"), ("dst", "target"), ("dst_port", "dport"), ("label", "verdict")]
    };
    Format::Mapped(Arc::new(Mapping {
        delimiter: (!by_position).then(|| ";".to_string()),
        columns: cols.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        extra: if by_position { vec!["#6".into()] } else { vec!["rtt_ms".into()] },
        ..Default::default()
    }))
}

/// `vpc`: the input is a VPC log.
pub fn vpc(data: &[u8]) {
    lines(data, Format::Vpc);
}

/// `tabular`: the first byte picks the dialect, the rest is the file.
pub fn tabular(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let format = match pick % 7 {
        0 => Format::ZeekTsv,
        1 => Format::ZeekCsv,
        2 => Format::Unsw,
        3 => Format::Cic,
        4 => Format::Csv,
        k => mapped(k == 6),
    };
    lines(rest, format);
}

/// `json`: the first byte picks Zeek JSON or flowhound's JSON lines.
pub fn json(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    lines(rest, if pick % 2 == 0 { Format::ZeekJson } else { Format::Jsonl });
}

/// `detect`: format detection, then the detected reader, as the CLI does.
pub fn detect(data: &[u8]) {
    if let Ok(format) = crate::detect(data) {
        lines(data, format);
    }
}

/// `labels`: a ground-truth table.
pub fn labels(data: &[u8]) {
    if let Ok(t) = crate::labels::LabelTable::parse(data) {
        let _ = t.get(2);
    }
}

/// `pcap`: framed as a pcap (first byte even; the link type from it) or a
/// pcapng (odd) so the fuzzer reaches the block and header decoders, then
/// assembled into flows: every flow well formed, its times in range.
pub fn pcap(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let mut file = if pick % 2 == 0 {
        // Legacy header: magic, v2.4, zone, sigfigs, snaplen, link type from the input.
        let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0];
        h.extend_from_slice(&[u32::from(pick >> 1) as u8 % 230, 0, 0, 0]);
        h
    } else {
        vec![0x0a, 0x0d, 0x0d, 0x0a]
    };
    file.extend_from_slice(rest);
    let (recs, stats) = flows(&file, FlowTimeouts::default());
    assert_eq!(recs.len() as u64, stats.flows);
    for r in &recs {
        assert!(r.src.is_some() && r.dst.is_some() && r.start.is_some() && r.start <= r.end);
        assert_eq!(r.packets.total, Some(r.packets.fwd.unwrap_or(0) + r.packets.bwd.unwrap_or(0)));
    }
    assert!(stats.bad_time + stats.undecodable + stats.non_ip <= stats.packets);
}

/// `netflow`: datagrams (a length byte in 4-byte units, then the bytes)
/// from two exporters, so templates learned from one packet apply to the
/// next. The books add up.
pub fn netflow(data: &[u8]) {
    let Ok(mut c) = Collector::new(&CollectorParams::default()) else { return };
    let mut out = Vec::new();
    let mut rest = data;
    let mut sent = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (usize::from(len) * 4).min(tail.len());
        let (dgram, next) = tail.split_at(n);
        let from: SocketAddr = ([127, 0, 0, 1], 2055 + u16::from(len % 2)).into();
        c.packet(from, dgram, &mut out);
        sent += 1;
        rest = next;
    }
    assert_eq!(c.stats.packets, sent);
    assert_eq!(c.stats.records, out.len() as u64);
}

/// `parquet`: framed as a Parquet file (magic at both ends) so the fuzzer
/// reaches the footer and page decoders; an error or text. 128 KiB of text
/// are read at most (two of the reader's 64 KiB refills, so the row decoder
/// runs on). A mutated row count makes an input a page of millions of rows:
/// reading 64 MiB of each (as this target first did) held it to ~200
/// inputs/s, 1 MiB to ~1,100, 128 KiB ~1,460 (three fuzzers on two cores).
pub fn parquet(data: &[u8]) {
    let mut file = crate::parquet::MAGIC.to_vec();
    file.extend_from_slice(data);
    file.extend_from_slice(crate::parquet::MAGIC);
    if let Ok(mut r) = crate::parquet::ParquetText::new(file) {
        let mut out = Vec::new();
        let _ = r.by_ref().take(1 << 17).read_to_end(&mut out);
    }
}

/// The target of that name, for the regression test.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    Some(match name {
        "vpc" => vpc,
        "tabular" => tabular,
        "json" => json,
        "detect" => detect,
        "labels" => labels,
        "pcap" => pcap,
        "netflow" => netflow,
        "parquet" => parquet,
        _ => return None,
    })
}
