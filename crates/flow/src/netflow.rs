//! NetFlow v5, v9 and IPFIX export packets into flow records.
//!
//! `netflow_parser` decodes the packets, with template caches kept apart per
//! exporter address and v9 source id / IPFIX observation domain (its
//! `AutoScopedParser`: two routers reusing a template id never mix), and
//! templates that expire after [`CollectorParams::template_timeout`]. This
//! module maps the decoded fields onto [`FlowRecord`] and keeps the
//! collector's books: packets, records, undecodable packets, data sets that
//! came before their template, and records lost in transit (sequence-number
//! gaps per exporter stream).
//!
//! Times: v5 and v9 give first/last packet as milliseconds of the exporter's
//! uptime, placed on the wall clock by the header's export time and uptime;
//! IPFIX gives absolute `flowStart/EndMilliseconds` or `…Seconds`, or uptime
//! offsets placed by `systemInitTimeMilliseconds` (from the record or an
//! options record of the same exporter), else the export time.
//! NetFlow flows are one-directional: counts go to `bytes`/`packets` totals;
//! RFC 5103 reverse counts (biflows), when present, make them per direction.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netflow_parser::static_versions::v5::V5;
use netflow_parser::variable_versions::ipfix::lookup::{IANAIPFixField, IPFixField, ReverseInformationElement};
use netflow_parser::variable_versions::ipfix::{FlowSetBody as IpfixBody, IPFix};
use netflow_parser::variable_versions::v9::{FlowSetBody as V9Body, V9};
use netflow_parser::{AutoScopedParser, FieldValue, NetflowPacket, NetflowParser, TtlConfig, V9Field};
use rustc_hash::FxHashMap;

use crate::record::{Counts, FlowRecord, Timestamp};

/// Collector settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorParams {
    /// A template not refreshed for this long is forgotten (exporters resend
    /// theirs every few minutes; default 30 min).
    pub template_timeout: Duration,
    /// Most exporter streams tracked at once; the least recently heard is
    /// dropped beyond it (spoofed sources must not take all memory).
    pub max_exporters: usize,
}

impl Default for CollectorParams {
    fn default() -> Self {
        CollectorParams { template_timeout: Duration::from_secs(1800), max_exporters: 10_000 }
    }
}

/// The collector's books.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectorStats {
    pub packets: u64,
    pub records: u64,
    /// Packets (or their tails) that could not be decoded.
    pub errors: u64,
    /// Data sets that arrived before their template and were skipped.
    pub no_template: u64,
    /// Records the exporters' sequence numbers say never arrived.
    pub lost: u64,
    pub by_version: [u64; 3],
}

/// Decodes export packets from any number of exporters.
#[derive(Debug)]
pub struct Collector {
    parser: AutoScopedParser,
    /// (exporter, version, source id / domain) → next expected sequence number.
    next_seq: FxHashMap<(SocketAddr, u16, u32), u32>,
    /// IPFIX exporter → its systemInitTimeMilliseconds from options records.
    init_ms: FxHashMap<(SocketAddr, u32), u64>,
    max_exporters: usize,
    pub stats: CollectorStats,
}

impl Collector {
    pub fn new(p: &CollectorParams) -> Result<Self, String> {
        let builder = NetflowParser::builder().with_ttl(TtlConfig::new(p.template_timeout));
        let parser = AutoScopedParser::try_with_builder(builder)
            .and_then(|a| a.with_max_sources(p.max_exporters.max(1)))
            .map_err(|e| format!("netflow collector settings: {e}"))?;
        Ok(Collector {
            parser,
            next_seq: FxHashMap::default(),
            init_ms: FxHashMap::default(),
            max_exporters: p.max_exporters.max(1),
            stats: CollectorStats::default(),
        })
    }

    /// Decodes one UDP payload from `from`, appending its flows to `out`.
    pub fn packet(&mut self, from: SocketAddr, data: &[u8], out: &mut Vec<FlowRecord>) {
        self.stats.packets += 1;
        let result = self.parser.parse_from_source(from, data);
        if result.error.is_some() {
            self.stats.errors += 1;
        }
        let before = out.len();
        for p in &result.packets {
            match p {
                NetflowPacket::V5(v) => self.v5(from, v, out),
                NetflowPacket::V9(v) => self.v9(from, v, out),
                NetflowPacket::IPFix(v) => self.ipfix(from, v, out),
                _ => self.stats.errors += 1,
            }
        }
        self.stats.records += (out.len() - before) as u64;
        if self.next_seq.len() > self.max_exporters {
            // Bounded like the template caches: forget streams and resync.
            self.next_seq.clear();
            self.init_ms.clear();
        }
    }

    /// Counts the records between the expected and the received sequence
    /// number as lost; `count` is how far this packet advances it.
    fn sequence(&mut self, key: (SocketAddr, u16, u32), seq: u32, count: u32) {
        if let Some(expected) = self.next_seq.get(&key) {
            let gap = seq.wrapping_sub(*expected);
            // Less than half the space ahead is a gap; otherwise the packet
            // is late or the exporter restarted: nothing is counted.
            if gap != 0 && gap < 1 << 31 {
                self.stats.lost += u64::from(gap);
            }
        }
        self.next_seq.insert(key, seq.wrapping_add(count));
    }

    fn v5(&mut self, from: SocketAddr, v: &V5, out: &mut Vec<FlowRecord>) {
        self.stats.by_version[0] += 1;
        let h = &v.header;
        self.sequence((from, 5, u32::from(h.engine_id)), h.flow_sequence, u32::from(h.count));
        let boot = i64::from(h.unix_secs) * 1000 + i64::from(h.unix_nsecs / 1_000_000) - i64::from(h.sys_up_time);
        for f in &v.flowsets {
            let mut r = FlowRecord {
                start: ms(boot + i64::from(f.first)),
                end: ms(boot + i64::from(f.last)),
                src: Some(IpAddr::V4(f.src_addr)),
                dst: Some(IpAddr::V4(f.dst_addr)),
                src_port: Some(f.src_port),
                dst_port: Some(f.dst_port),
                protocol: Some(f.protocol_number),
                packets: Counts::total(u64::from(f.d_pkts)),
                bytes: Counts::total(u64::from(f.d_octets)),
                tcp_flags: Some(f.tcp_flags),
                ..Default::default()
            };
            finish(&mut r);
            out.push(r);
        }
    }

    fn v9(&mut self, from: SocketAddr, v: &V9, out: &mut Vec<FlowRecord>) {
        self.stats.by_version[1] += 1;
        let h = &v.header;
        self.sequence((from, 9, h.source_id), h.sequence_number, 1);
        let boot = i64::from(h.unix_secs) * 1000 - i64::from(h.sys_up_time);
        for set in &v.flowsets {
            match &set.body {
                V9Body::Data(d) => out.extend(d.fields.iter().map(|rec| v9_record(rec, boot))),
                V9Body::NoTemplate(_) => self.stats.no_template += 1,
                _ => {}
            }
        }
    }

    fn ipfix(&mut self, from: SocketAddr, v: &IPFix, out: &mut Vec<FlowRecord>) {
        self.stats.by_version[2] += 1;
        let h = &v.header;
        let key = (from, h.observation_domain_id);
        // Options records first: they may carry the exporter's boot time.
        let mut data_records = 0u32;
        for set in &v.flowsets {
            if let IpfixBody::OptionsData(o) = &set.body {
                data_records += o.fields.len() as u32;
                for rec in &o.fields {
                    if let Some(ms) = find(rec, |f| iana(f, IANAIPFixField::SystemInitTimeMilliseconds)) {
                        self.init_ms.insert(key, ms);
                    }
                }
            }
        }
        let init = self.init_ms.get(&key).copied();
        let export_ms = i64::from(h.export_time) * 1000;
        for set in &v.flowsets {
            match &set.body {
                IpfixBody::Data(d) => {
                    data_records += d.fields.len() as u32;
                    out.extend(d.fields.iter().map(|rec| ipfix_record(rec, init, export_ms)));
                }
                IpfixBody::V9Data(d) => {
                    data_records += d.fields.len() as u32;
                    let boot = init.map_or(export_ms, |i| i as i64);
                    out.extend(d.fields.iter().map(|rec| v9_record(rec, boot)));
                }
                IpfixBody::V9OptionsData(o) => data_records += o.fields.len() as u32,
                IpfixBody::NoTemplate(_) => self.stats.no_template += 1,
                _ => {}
            }
        }
        self.sequence((from, 10, h.observation_domain_id), h.sequence_number, data_records);
    }

    /// Exporter streams being tracked.
    pub fn exporters(&self) -> usize {
        self.parser.source_count()
    }
}

/// Most records in one NetFlow v5 packet.
pub const V5_MAX_RECORDS: usize = 30;

/// Encodes up to [`V5_MAX_RECORDS`] IPv4 records as one NetFlow v5 export
/// packet (Cisco's layout), as an exporter booted at `boot_ms` (Unix ms)
/// would send it at `now_ms`; `seq` counts the flows sent before. Records
/// that v5 cannot carry (IPv6, no address) are skipped; the count of records
/// written is returned with the packet. For tests and the load generator.
pub fn encode_v5(recs: &[FlowRecord], seq: u32, boot_ms: i64, now_ms: i64) -> (Vec<u8>, usize) {
    let v4 = |a: Option<IpAddr>| match a {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    };
    let uptime = |t: Option<Timestamp>| {
        let ms = t.map_or(now_ms, |t| t.micros() / 1000);
        u32::try_from((ms - boot_ms).max(0)).unwrap_or(u32::MAX)
    };
    let mut body = Vec::with_capacity(48 * V5_MAX_RECORDS);
    let mut n = 0u16;
    for r in recs.iter().take(V5_MAX_RECORDS) {
        let (Some(src), Some(dst)) = (v4(r.src), v4(r.dst)) else { continue };
        body.extend_from_slice(&src.octets());
        body.extend_from_slice(&dst.octets());
        body.extend_from_slice(&[0; 4]); // next hop
        body.extend_from_slice(&[0; 4]); // input, output interface
        let clamp = |x: Option<u64>| u32::try_from(x.unwrap_or(0)).unwrap_or(u32::MAX);
        body.extend_from_slice(&clamp(r.packets.total).to_be_bytes());
        body.extend_from_slice(&clamp(r.bytes.total).to_be_bytes());
        body.extend_from_slice(&uptime(r.start).to_be_bytes());
        body.extend_from_slice(&uptime(r.end.or(r.start)).to_be_bytes());
        body.extend_from_slice(&r.src_port.unwrap_or(0).to_be_bytes());
        body.extend_from_slice(&r.dst_port.unwrap_or(0).to_be_bytes());
        body.push(0);
        body.push(r.tcp_flags.unwrap_or(0));
        body.push(r.protocol.unwrap_or(0));
        body.extend_from_slice(&[0; 9]); // tos, AS numbers, masks, padding
        n += 1;
    }
    let mut p = Vec::with_capacity(24 + body.len());
    p.extend_from_slice(&5u16.to_be_bytes());
    p.extend_from_slice(&n.to_be_bytes());
    p.extend_from_slice(&uptime(Timestamp::from_micros(now_ms * 1000)).to_be_bytes());
    p.extend_from_slice(&((now_ms / 1000) as u32).to_be_bytes());
    p.extend_from_slice(&(((now_ms % 1000) * 1_000_000) as u32).to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0; 4]); // engine type/id, sampling
    p.extend_from_slice(&body);
    (p, usize::from(n))
}

fn ms(t: i64) -> Option<Timestamp> {
    Timestamp::from_micros(t.checked_mul(1000)?)
}

/// What every decoded record needs: flags only for TCP (exporters fill
/// the field with whatever the template carries), an ordered time span.
fn finish(r: &mut FlowRecord) {
    if r.protocol != Some(6) {
        r.tcp_flags = None;
    }
    if r.start > r.end {
        // An uptime wrap or a clock step: keep the end, lose the duration.
        r.start = r.end;
    }
    r.derive_duration();
}

fn number(v: &FieldValue) -> Option<u64> {
    match v {
        FieldValue::TcpControlBits(bits, _) => Some(u64::from(u16::from(*bits))),
        _ => v.as_u64(),
    }
}

fn addr(v: &FieldValue) -> Option<IpAddr> {
    IpAddr::try_from(v).ok()
}

fn find<F: PartialEq>(rec: &[(F, FieldValue)], pick: impl Fn(&F) -> bool) -> Option<u64> {
    rec.iter().find(|(f, _)| pick(f)).and_then(|(_, v)| number(v))
}

fn v9_record(rec: &[(V9Field, FieldValue)], boot: i64) -> FlowRecord {
    let mut r = FlowRecord::default();
    let (mut first, mut last) = (None, None);
    let (mut bytes, mut packets) = (None, None);
    for (f, v) in rec {
        match f {
            V9Field::Ipv4SrcAddr | V9Field::Ipv6SrcAddr => r.src = r.src.or(addr(v)),
            V9Field::Ipv4DstAddr | V9Field::Ipv6DstAddr => r.dst = r.dst.or(addr(v)),
            V9Field::L4SrcPort => r.src_port = v.as_u16(),
            V9Field::L4DstPort => r.dst_port = v.as_u16(),
            V9Field::Protocol => r.protocol = v.as_u8(),
            V9Field::TcpFlags => r.tcp_flags = number(v).map(|x| x as u8),
            V9Field::InBytes | V9Field::OutBytes => bytes = bytes.or(number(v)),
            V9Field::InPkts | V9Field::OutPkts => packets = packets.or(number(v)),
            V9Field::FirstSwitched => first = number(v),
            V9Field::LastSwitched => last = number(v),
            _ => {}
        }
    }
    r.bytes = Counts { total: bytes, ..Default::default() };
    r.packets = Counts { total: packets, ..Default::default() };
    r.start = first.and_then(|t| ms(boot + t as i64));
    r.end = last.and_then(|t| ms(boot + t as i64));
    finish(&mut r);
    r
}

fn iana(f: &IPFixField, want: IANAIPFixField) -> bool {
    matches!(f, IPFixField::IANA(x) if *x == want)
}

fn ipfix_record(rec: &[(IPFixField, FieldValue)], init: Option<u64>, export_ms: i64) -> FlowRecord {
    use IANAIPFixField as F;
    let mut r = FlowRecord::default();
    let (mut start_abs, mut end_abs, mut start_up, mut end_up, mut init_here) = (None, None, None, None, None);
    let (mut bytes, mut packets, mut rbytes, mut rpackets) = (None, None, None, None);
    for (f, v) in rec {
        match f {
            IPFixField::IANA(x) => match x {
                F::SourceIpv4address | F::SourceIpv6address => r.src = r.src.or(addr(v)),
                F::DestinationIpv4address | F::DestinationIpv6address => r.dst = r.dst.or(addr(v)),
                F::SourceTransportPort => r.src_port = v.as_u16(),
                F::DestinationTransportPort => r.dst_port = v.as_u16(),
                F::ProtocolIdentifier => r.protocol = v.as_u8(),
                F::TcpControlBits => r.tcp_flags = number(v).map(|x| x as u8),
                F::OctetDeltaCount | F::OctetTotalCount => bytes = bytes.or(number(v)),
                F::PacketDeltaCount | F::PacketTotalCount => packets = packets.or(number(v)),
                F::FlowStartMilliseconds => start_abs = number(v),
                F::FlowEndMilliseconds => end_abs = number(v),
                F::FlowStartSeconds => start_abs = start_abs.or(number(v)),
                F::FlowEndSeconds => end_abs = end_abs.or(number(v)),
                F::FlowStartSysUpTime => start_up = number(v),
                F::FlowEndSysUpTime => end_up = number(v),
                F::SystemInitTimeMilliseconds => init_here = number(v),
                _ => {}
            },
            IPFixField::ReverseInformationElement(x) => match x {
                ReverseInformationElement::ReverseOctetDeltaCount => rbytes = number(v),
                ReverseInformationElement::ReversePacketDeltaCount => rpackets = number(v),
                _ => {}
            },
            _ => {}
        }
    }
    // `as_u64` gives durations in milliseconds, whatever their wire unit.
    let init = init_here.or(init).map(|i| i as i64);
    let when = |abs: Option<u64>, up: Option<u64>| match (abs, up, init) {
        (Some(a), _, _) => ms(a as i64),
        (None, Some(u), Some(i)) => ms(i + u as i64),
        _ => ms(export_ms),
    };
    r.start = when(start_abs, start_up);
    r.end = when(end_abs, end_up);
    (r.bytes, r.packets) = match (rbytes, rpackets) {
        (None, None) => {
            (Counts { total: bytes, ..Default::default() }, Counts { total: packets, ..Default::default() })
        }
        _ => (Counts::from_parts(bytes, rbytes, None), Counts::from_parts(packets, rpackets, None)),
    };
    finish(&mut r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NetFlow v5 packet of `n` flows (RFC-less but Cisco-documented layout).
    fn v5_packet(seq: u32, n: u16, unix_secs: u32, uptime_ms: u32) -> Vec<u8> {
        let mut p = Vec::new();
        for x in [5u16, n] {
            p.extend_from_slice(&x.to_be_bytes());
        }
        for x in [uptime_ms, unix_secs, 0, seq] {
            p.extend_from_slice(&x.to_be_bytes());
        }
        p.extend_from_slice(&[0, 0, 0, 0]);
        for k in 0..n {
            p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0]);
            p.extend_from_slice(&[0, 1, 0, 2]);
            for x in [3u32, 180, uptime_ms - 2000, uptime_ms - 1000] {
                p.extend_from_slice(&x.to_be_bytes());
            }
            p.extend_from_slice(&(40000 + k).to_be_bytes());
            p.extend_from_slice(&22u16.to_be_bytes());
            p.extend_from_slice(&[0, 0x02, 6, 0, 0, 0, 0, 0, 24, 24, 0, 0]);
        }
        p
    }

    #[test]
    fn v5_records_land_on_the_wall_clock_and_gaps_are_counted() {
        let mut c = Collector::new(&CollectorParams::default()).expect("defaults are valid");
        let from: SocketAddr = "127.0.0.1:9995".parse().expect("addr");
        let mut out = Vec::new();
        c.packet(from, &v5_packet(0, 2, 1_700_000_000, 3_600_000), &mut out);
        // Flows 2..5 never arrive.
        c.packet(from, &v5_packet(5, 1, 1_700_000_001, 3_601_000), &mut out);
        assert_eq!((c.stats.packets, c.stats.records, c.stats.lost, c.stats.errors), (2, 3, 3, 0));
        let r = &out[0];
        assert_eq!(r.start.map(|t| t.micros()), Some(1_699_999_998_000_000));
        assert_eq!(r.duration_us, Some(1_000_000));
        assert_eq!((r.src_port, r.dst_port, r.protocol, r.tcp_flags), (Some(40000), Some(22), Some(6), Some(2)));
        assert_eq!((r.packets.total, r.bytes.total), (Some(3), Some(180)));
        // What the encoder writes, the collector reads back.
        let (pkt, n) = encode_v5(&out[..2], 3, 1_699_996_400_000, 1_700_000_002_000);
        let mut back = Vec::new();
        c.packet(from, &pkt, &mut back);
        assert_eq!(n, 2);
        assert_eq!(
            back.iter().map(|r| (r.start, r.end, r.src_port, r.bytes.total)).collect::<Vec<_>>(),
            out[..2].iter().map(|r| (r.start, r.end, r.src_port, r.bytes.total)).collect::<Vec<_>>()
        );
        // Sequence 3 after 6 flows: a step back, not a gap.
        assert_eq!(c.stats.lost, 3);
        // Garbage is counted, never a panic.
        c.packet(from, &[0, 5, 0xff, 0xff, 1, 2], &mut out);
        c.packet(from, &[], &mut out);
        assert_eq!((c.stats.errors, out.len()), (2, 3));
    }
}
