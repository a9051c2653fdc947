//! Packet captures (pcap and pcapng, as tcpdump, Wireshark and dumpcap write
//! them) assembled into bidirectional flows, so a capture can be analysed like
//! any flow log.
//!
//! A flow is the packets of one protocol between two endpoints (addresses and,
//! for TCP/UDP, ports) in either direction; its source is the side that spoke
//! first (or, when the capture starts mid-handshake with a SYN-ACK, the side
//! that was answered). A flow ends when
//! - it has been idle for [`FlowTimeouts::idle_secs`] (TCP:
//!   [`FlowTimeouts::tcp_idle_secs`]): the next packet starts a new flow;
//! - it has lasted [`FlowTimeouts::active_secs`]: it is cut there and goes on
//!   as a new flow (long transfers still show up within that time);
//! - TCP: both sides sent FIN, or either sent RST. Packets within
//!   [`FlowTimeouts::linger_secs`] after that (the last ACK, retransmitted
//!   FINs) still count to it; a new SYN from the source starts a new flow.
//!
//! Per flow: first and last packet time, packets and bytes per direction (IP
//! length: header and payload, as NetFlow and VPC Flow Logs count them), the
//! union of TCP flags, and a Zeek-style `conn_state` for TCP (`S0` SYN
//! unanswered, `REJ` answered by RST, `S1` established, `SF` closed by both
//! FINs, `RSTO`/`RSTR` reset by the source/destination, `OTH` no SYN seen).
//! Non-IP frames (ARP, …) are counted, not flows. Fragments after the first
//! carry no ports: they count to a portless flow of the same addresses.
//!
//! The capture is parsed from memory ([`flows`]); a file cut off mid-packet
//! gives every flow of its complete packets and says where it stopped.

use std::io::{self, Read};
use std::net::IpAddr;

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_parser::data::{get_packetdata, PacketData};
use pcap_parser::pcapng::Block;
use pcap_parser::{LegacyPcapSlice, Linktype, PcapBlockOwned, PcapNGSlice};
use rustc_hash::FxHashMap;

use crate::record::{tcp, Counts, FlowRecord, Timestamp};

/// The first four bytes of a pcap (µs or ns timestamps, either byte order)
/// or pcapng file.
pub fn is_capture(start: &[u8]) -> bool {
    const MAGICS: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    start.get(..4).is_some_and(|m| MAGICS.iter().any(|x| x == m))
}

/// When a flow ends without a TCP close (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// Longest a flow lasts before it is cut (default 30 min, as Cisco's
    /// active timeout).
    pub active_secs: u32,
    /// Silence that ends a non-TCP flow (default 60 s).
    pub idle_secs: u32,
    /// Silence that ends a TCP flow (default 300 s: keep-alive gaps).
    pub tcp_idle_secs: u32,
    /// Time after FIN/FIN or RST in which stragglers still count (default 5 s).
    pub linger_secs: u32,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        FlowTimeouts { active_secs: 1800, idle_secs: 60, tcp_idle_secs: 300, linger_secs: 5 }
    }
}

/// What a capture held besides flows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub packets: u64,
    /// ARP and other frames without IPv4/IPv6.
    pub non_ip: u64,
    /// Frames of a link type or shape that could not be decoded.
    pub undecodable: u64,
    /// Frames whose time lies outside what a flow record can hold (before
    /// 1970 or after 9999: a broken clock or a corrupt header): not counted
    /// into any flow.
    pub bad_time: u64,
    /// The link type of the (first) interface, for messages.
    pub link: Option<i32>,
    pub flows: u64,
    /// Where reading stopped early, when it did (truncated or corrupt file).
    pub error: Option<String>,
}

/// One packet's flow-relevant headers.
#[derive(Debug, Clone, Copy)]
struct Packet {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ports: Option<(u16, u16)>,
    len: u64,
    flags: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    /// The source (initiator) and destination.
    a: IpAddr,
    b: IpAddr,
    pa: u16,
    pb: u16,
    proto: u8,
    has_ports: bool,
}

#[derive(Debug, Clone)]
struct State {
    first: i64,
    last: i64,
    packets: [u64; 2],
    bytes: [u64; 2],
    /// TCP flags per direction (0 = from the source).
    flags: [u8; 2],
    fin: [bool; 2],
    rst: [bool; 2],
    closed_at: Option<i64>,
}

/// Assembles packets, in capture order, into flows.
#[derive(Debug)]
pub struct Assembler {
    t: FlowTimeouts,
    table: FxHashMap<Key, State>,
    done: Vec<FlowRecord>,
    next_sweep: i64,
}

const SEC: i64 = 1_000_000;

impl Assembler {
    pub fn new(t: FlowTimeouts) -> Self {
        Assembler { t, table: FxHashMap::default(), done: Vec::new(), next_sweep: i64::MIN }
    }

    fn idle_us(&self, proto: u8) -> i64 {
        i64::from(if proto == 6 { self.t.tcp_idle_secs } else { self.t.idle_secs }) * SEC
    }

    fn add(&mut self, ts: i64, p: Packet) {
        if ts >= self.next_sweep {
            self.sweep(ts);
            self.next_sweep = ts.saturating_add(SEC);
        }
        let (pa, pb) = p.ports.unwrap_or((0, 0));
        let fwd = Key { a: p.src, b: p.dst, pa, pb, proto: p.proto, has_ports: p.ports.is_some() };
        let rev = Key { a: p.dst, b: p.src, pa: pb, pb: pa, ..fwd };
        let (key, dir) = if self.table.contains_key(&fwd) {
            (fwd, 0)
        } else if self.table.contains_key(&rev) {
            (rev, 1)
        } else if p.proto == 6 && p.flags & (tcp::SYN | tcp::ACK) == tcp::SYN | tcp::ACK {
            // The capture started after the SYN: the answered side is the source.
            (rev, 1)
        } else {
            (fwd, 0)
        };
        if let Some(s) = self.table.get(&key) {
            // Saturating: a hostile capture's times may sit anywhere in i64
            // (packets out of order by centuries must not wrap into "idle").
            let restart = ts.saturating_sub(s.last) > self.idle_us(p.proto)
                || ts.saturating_sub(s.first) >= i64::from(self.t.active_secs) * SEC
                || (s.closed_at.is_some() && dir == 0 && p.flags & (tcp::SYN | tcp::ACK) == tcp::SYN);
            if restart {
                if let Some(s) = self.table.remove(&key) {
                    self.emit(key, s);
                }
            }
        }
        let s = self.table.entry(key).or_insert_with(|| State {
            first: ts,
            last: ts,
            packets: [0; 2],
            bytes: [0; 2],
            flags: [0; 2],
            fin: [false; 2],
            rst: [false; 2],
            closed_at: None,
        });
        s.last = s.last.max(ts);
        s.packets[dir] += 1;
        s.bytes[dir] += p.len;
        s.flags[dir] |= p.flags;
        s.fin[dir] |= p.flags & tcp::FIN != 0;
        s.rst[dir] |= p.flags & tcp::RST != 0;
        if s.closed_at.is_none() && ((s.fin[0] && s.fin[1]) || s.rst[0] || s.rst[1]) {
            s.closed_at = Some(ts);
        }
    }

    /// Ends flows that went idle or whose close has lingered long enough.
    fn sweep(&mut self, now: i64) {
        let linger = i64::from(self.t.linger_secs) * SEC;
        let (idle, tcp_idle) = (self.idle_us(0), self.idle_us(6));
        let mut ended: Vec<Key> = self
            .table
            .iter()
            .filter(|(k, s)| {
                let idle = if k.proto == 6 { tcp_idle } else { idle };
                now.saturating_sub(s.last) > idle || s.closed_at.is_some_and(|c| now.saturating_sub(c) > linger)
            })
            .map(|(k, _)| *k)
            .collect();
        // Hash order is not stable across runs; the output is sorted anyway,
        // but emit in a fixed order so equal start times stay reproducible.
        ended.sort_by_key(|k| (k.a, k.b, k.pa, k.pb, k.proto));
        for k in ended {
            if let Some(s) = self.table.remove(&k) {
                self.emit(k, s);
            }
        }
    }

    fn emit(&mut self, k: Key, s: State) {
        let start = Timestamp::from_micros(s.first);
        let end = Timestamp::from_micros(s.last);
        let mut r = FlowRecord {
            start,
            end,
            src: Some(k.a),
            dst: Some(k.b),
            src_port: k.has_ports.then_some(k.pa),
            dst_port: k.has_ports.then_some(k.pb),
            protocol: Some(k.proto),
            packets: Counts::from_parts(Some(s.packets[0]), Some(s.packets[1]), None),
            bytes: Counts::from_parts(Some(s.bytes[0]), Some(s.bytes[1]), None),
            ..Default::default()
        };
        r.derive_duration();
        if k.proto == 6 {
            r.tcp_flags = Some(s.flags[0] | s.flags[1]);
            r.state = Some(conn_state(&s).into());
        }
        self.done.push(r);
    }

    /// Every flow, open ones included, ordered by start time (then endpoints).
    pub fn finish(mut self) -> Vec<FlowRecord> {
        let mut open: Vec<(Key, State)> = self.table.drain().collect();
        open.sort_by_key(|(k, _)| (k.a, k.b, k.pa, k.pb, k.proto));
        for (k, s) in open {
            self.emit(k, s);
        }
        let mut done = self.done;
        done.sort_by(|x, y| {
            (x.start, x.src, x.dst, x.src_port, x.dst_port, x.protocol)
                .cmp(&(y.start, y.src, y.dst, y.src_port, y.dst_port, y.protocol))
        });
        done
    }
}

/// Zeek's connection states, for the subset a capture shows.
fn conn_state(s: &State) -> &'static str {
    let syn = s.flags[0] & tcp::SYN != 0;
    let answered = s.flags[1] & (tcp::SYN | tcp::ACK) == tcp::SYN | tcp::ACK;
    match (syn, answered) {
        (false, _) => "OTH",
        (true, false) if s.rst[1] => "REJ",
        (true, false) => "S0",
        (true, true) if s.rst[0] => "RSTO",
        (true, true) if s.rst[1] => "RSTR",
        (true, true) if s.fin[0] && s.fin[1] => "SF",
        (true, true) => "S1",
    }
}

/// The IP and transport headers of one frame; `None` for non-IP frames,
/// `Err` for frames that could not be decoded.
fn decode(link: Linktype, frame: &[u8]) -> Result<Option<Packet>, ()> {
    let sliced = match get_packetdata(frame, link, frame.len()) {
        Some(PacketData::L2(b)) => LaxSlicedPacket::from_ethernet(b).map_err(|_| ())?,
        Some(PacketData::L3(_, b)) => LaxSlicedPacket::from_ip(b).map_err(|_| ())?,
        Some(PacketData::L4(..) | PacketData::Unsupported(_)) | None => return Err(()),
    };
    let (src, dst, proto, len, fragmented) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let frag = h.is_fragmenting_payload() && h.fragments_offset().value() > 0;
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                v4.payload().ip_number.0,
                u64::from(h.total_len()),
                frag,
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                v6.payload().ip_number.0,
                40 + u64::from(h.payload_length()),
                v6.payload().fragmented,
            )
        }
        Some(LaxNetSlice::Arp(_)) | None => return Ok(None),
    };
    let (ports, flags) = match (&sliced.transport, fragmented) {
        (Some(TransportSlice::Tcp(t)), false) => {
            let mut f = 0;
            for (on, bit) in [
                (t.fin(), tcp::FIN),
                (t.syn(), tcp::SYN),
                (t.rst(), tcp::RST),
                (t.psh(), tcp::PSH),
                (t.ack(), tcp::ACK),
                (t.urg(), tcp::URG),
                (t.ece(), tcp::ECE),
                (t.cwr(), tcp::CWR),
            ] {
                f |= if on { bit } else { 0 };
            }
            (Some((t.source_port(), t.destination_port())), f)
        }
        (Some(TransportSlice::Udp(u)), false) => (Some((u.source_port(), u.destination_port())), 0),
        _ => (None, 0),
    };
    Ok(Some(Packet { src, dst, proto, ports, len, flags }))
}

/// Adds one frame to the assembler and the stats.
fn frame(asm: &mut Assembler, stats: &mut CaptureStats, link: Linktype, ts: i64, data: &[u8]) {
    stats.packets += 1;
    if Timestamp::from_micros(ts).is_none() {
        stats.bad_time += 1;
        return;
    }
    match decode(link, data) {
        Ok(Some(p)) => asm.add(ts, p),
        Ok(None) => stats.non_ip += 1,
        Err(()) => stats.undecodable += 1,
    }
}

impl CaptureStats {
    /// Why a capture gave no flows or lost some, in words for the user: a
    /// read error, no packet that could be decoded (an unsupported link
    /// type), times out of range. `None` when there is nothing to say (a
    /// few undecodable frames among many are only counted).
    pub fn problem(&self) -> Option<String> {
        let mut out = Vec::new();
        if let Some(e) = &self.error {
            out.push(e.clone());
        }
        if self.undecodable > 0 && self.undecodable + self.bad_time + self.non_ip == self.packets {
            let link = self.link.map_or("unknown".to_string(), |l| format!("{} = {l}", Linktype(l)));
            out.push(format!(
                "none of its {} packets could be decoded (link type {link}; read are Ethernet, raw IP, Linux cooked capture, loopback and their like)",
                self.packets
            ));
        }
        if self.bad_time > 0 {
            out.push(format!(
                "{} of {} packets have a time outside 1970-9999 and were left out",
                self.bad_time, self.packets
            ));
        }
        if out.is_empty() && self.flows == 0 {
            // Otherwise the empty text this becomes reads as "the input is empty".
            out.push(if self.packets == 0 {
                "the capture holds no packets".to_string()
            } else {
                format!("its {} packets hold no IP traffic (ARP and other non-IP frames only)", self.packets)
            });
        }
        (!out.is_empty()).then(|| out.join("; "))
    }
}

/// The flows of a whole capture in memory, ordered by start time, with what
/// else it held. A capture cut off or corrupt part-way gives the flows of
/// every packet before that point and says so in [`CaptureStats::error`].
pub fn flows(data: &[u8], t: FlowTimeouts) -> (Vec<FlowRecord>, CaptureStats) {
    let mut stats = CaptureStats::default();
    let mut asm = Assembler::new(t);
    if data.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        read_pcapng(data, &mut asm, &mut stats);
    } else {
        read_pcap(data, &mut asm, &mut stats);
    }
    let out = asm.finish();
    stats.flows = out.len() as u64;
    (out, stats)
}

fn stop_reason<E: std::fmt::Debug>(packets: u64, e: &E) -> String {
    format!("capture truncated or corrupt after {packets} packets ({e:?})")
}

fn read_pcap(data: &[u8], asm: &mut Assembler, stats: &mut CaptureStats) {
    let slice = match LegacyPcapSlice::from_slice(data) {
        Ok(s) => s,
        Err(e) => {
            stats.error = Some(format!("not a readable pcap header: {e:?}"));
            return;
        }
    };
    let link = slice.header.network;
    stats.link = Some(link.0);
    let nanos = slice.header.is_nanosecond_precision();
    for block in slice {
        match block {
            Ok(PcapBlockOwned::Legacy(b)) => {
                let frac = i64::from(b.ts_usec);
                let ts = i64::from(b.ts_sec) * SEC + if nanos { frac / 1000 } else { frac };
                frame(asm, stats, link, ts, b.data);
            }
            Ok(_) => {}
            Err(e) => {
                stats.error = Some(stop_reason(stats.packets, &e));
                return;
            }
        }
    }
}

/// Per interface of the current section: link type, ticks per second, offset.
type Interface = (Linktype, u64, i64);

/// How much of a pcapng file pcap-parser may be given: everything before
/// the first block whose length is below 12 bytes, and why it stops there.
/// pcap-parser 0.17 (the newest) computes `block_len1 - 12` before checking
/// it for block types whose minimum header is shorter (process information:
/// 4), which overflows — a panic in debug builds, a huge read length in
/// release ones. Found by the `pcap` fuzz target.
fn pcapng_sane_prefix(data: &[u8]) -> (usize, Option<String>) {
    let mut off = 0usize;
    let mut big_endian = false;
    while let Some(head) = data.get(off..off.saturating_add(8)) {
        // The section header's type reads the same in both byte orders; its
        // byte-order magic says how the lengths of its section read.
        if head[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            match data.get(off + 8..off + 12) {
                Some(bom) => big_endian = bom == [0x1a, 0x2b, 0x3c, 0x4d],
                None => break,
            }
        }
        let raw = [head[4], head[5], head[6], head[7]];
        let len = if big_endian { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) } as usize;
        if len < 12 {
            return (
                off,
                Some(format!("corrupt pcapng block at byte {off}: length {len} (a block is at least 12 bytes)")),
            );
        }
        off = off.saturating_add(len);
    }
    (data.len(), None)
}

fn read_pcapng(data: &[u8], asm: &mut Assembler, stats: &mut CaptureStats) {
    let (sane, corrupt) = pcapng_sane_prefix(data);
    read_pcapng_blocks(&data[..sane], asm, stats);
    if corrupt.is_some() {
        stats.error = corrupt;
    }
}

fn read_pcapng_blocks(data: &[u8], asm: &mut Assembler, stats: &mut CaptureStats) {
    let slice = match PcapNGSlice::from_slice(data) {
        Ok(s) => s,
        Err(e) => {
            stats.error = Some(format!("not a readable pcapng section header: {e:?}"));
            return;
        }
    };
    let mut ifaces: Vec<Interface> = Vec::new();
    let mut last_ts = 0i64;
    for block in slice {
        let b = match block {
            Ok(PcapBlockOwned::NG(b)) => b,
            Ok(_) => continue,
            Err(e) => {
                stats.error = Some(stop_reason(stats.packets, &e));
                return;
            }
        };
        match b {
            Block::SectionHeader(_) => ifaces.clear(),
            Block::InterfaceDescription(idb) => {
                // No resolution option means microseconds; an unusable one is
                // treated the same rather than dividing by zero.
                let res = idb.ts_resolution().filter(|r| *r > 0).unwrap_or(1_000_000);
                ifaces.push((idb.linktype, res, idb.ts_offset()));
                stats.link.get_or_insert(idb.linktype.0);
            }
            Block::EnhancedPacket(epb) => {
                let Some(&(link, res, off)) = ifaces.get(epb.if_id as usize) else {
                    stats.packets += 1;
                    stats.undecodable += 1;
                    continue;
                };
                let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let secs = i64::try_from(ticks / res).unwrap_or(i64::MAX);
                let frac = ((ticks % res) as u128 * 1_000_000 / u128::from(res)) as i64;
                let ts = secs.saturating_add(off).saturating_mul(SEC).saturating_add(frac);
                last_ts = ts;
                let len = (epb.caplen as usize).min(epb.data.len());
                frame(asm, stats, link, ts, &epb.data[..len]);
            }
            Block::SimplePacket(spb) => {
                // No timestamp of its own: it happened after the last one.
                let link = ifaces.first().map_or(Linktype::ETHERNET, |i| i.0);
                frame(asm, stats, link, last_ts, spb.data);
            }
            _ => {}
        }
    }
}

/// A capture read as flowhound JSON lines (one flow per line), so the line
/// driver, `inspect`, `detect` and `watch` take captures like any flow log;
/// when the capture stopped early, reading fails after the last flow with
/// the reason (every complete packet's flow was given).
#[derive(Debug)]
pub struct CaptureText {
    text: io::Cursor<Vec<u8>>,
    error: Option<String>,
}

impl CaptureText {
    pub fn new(data: &[u8], t: FlowTimeouts) -> CaptureText {
        let (recs, stats) = flows(data, t);
        let mut text = Vec::with_capacity(recs.len() * 200);
        for r in &recs {
            crate::write::write_json(r, &mut text);
        }
        CaptureText { text: io::Cursor::new(text), error: stats.problem() }
    }
}

impl Read for CaptureText {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.text.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(e) = self.error.take() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy pcap (µs, Ethernet) of the given frames.
    fn pcap(frames: &[(i64, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (ts, f) in frames {
            out.extend_from_slice(&((ts / SEC) as u32).to_le_bytes());
            out.extend_from_slice(&((ts % SEC) as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    fn tcp_frame(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, flags: u8, payload: usize) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(src, dst, 64).tcp(sp, dp, 1, 1024);
        let b = if flags & tcp::SYN != 0 { b.syn() } else { b };
        let b = if flags & tcp::ACK != 0 { b.ack(1) } else { b };
        let b = if flags & tcp::FIN != 0 { b.fin() } else { b };
        let b = if flags & tcp::RST != 0 { b.rst() } else { b };
        let data = vec![0u8; payload];
        let mut out = Vec::new();
        b.write(&mut out, &data).expect("write to a Vec");
        out
    }

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    #[test]
    fn a_handshake_a_transfer_and_a_close_make_one_flow() {
        let (s, sa, a, f) = (tcp::SYN, tcp::SYN | tcp::ACK, tcp::ACK, tcp::FIN | tcp::ACK);
        let frames = vec![
            (1_000_000, tcp_frame(A, B, 40000, 80, s, 0)),
            (1_000_100, tcp_frame(B, A, 80, 40000, sa, 0)),
            (1_000_200, tcp_frame(A, B, 40000, 80, a, 100)),
            (1_000_300, tcp_frame(B, A, 80, 40000, a, 1000)),
            (1_000_400, tcp_frame(A, B, 40000, 80, f, 0)),
            (1_000_500, tcp_frame(B, A, 80, 40000, f, 0)),
            // The last ACK lingers into the same flow.
            (1_000_600, tcp_frame(A, B, 40000, 80, a, 0)),
            // A SYN to a closed port, answered by RST, then an unanswered one.
            (2_000_000, tcp_frame(A, B, 40001, 22, s, 0)),
            (2_000_100, tcp_frame(B, A, 22, 40001, tcp::RST | tcp::ACK, 0)),
            (3_000_000, tcp_frame(A, B, 40002, 23, s, 0)),
        ];
        let (recs, stats) = flows(&pcap(&frames), FlowTimeouts::default());
        assert_eq!((stats.packets, stats.flows, stats.error), (10, 3, None));
        let web = &recs[0];
        assert_eq!((web.src_port, web.dst_port, web.protocol), (Some(40000), Some(80), Some(6)));
        assert_eq!((web.packets.fwd, web.packets.bwd), (Some(4), Some(3)));
        // IP lengths: 40-byte headers, plus payloads.
        assert_eq!((web.bytes.fwd, web.bytes.bwd), (Some(4 * 40 + 100), Some(3 * 40 + 1000)));
        assert_eq!(web.duration_us, Some(600));
        assert_eq!(web.state.as_deref(), Some("SF"));
        assert_eq!(web.tcp_flags, Some(tcp::SYN | tcp::ACK | tcp::FIN));
        assert_eq!(recs[1].state.as_deref(), Some("REJ"));
        assert_eq!((recs[2].state.as_deref(), recs[2].packets.bwd), (Some("S0"), Some(0)));
    }

    #[test]
    fn idle_and_active_timeouts_split_flows_and_a_late_syn_ack_names_the_source() {
        let t = FlowTimeouts { active_secs: 10, idle_secs: 2, tcp_idle_secs: 2, linger_secs: 1 };
        let udp = |ts: i64| {
            let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(A, B, 64).udp(5353, 53);
            let mut out = Vec::new();
            b.write(&mut out, &[0; 12]).expect("write to a Vec");
            (ts, out)
        };
        // One packet a second for 25 s: cut at 10 s twice; then a 3 s gap.
        let mut frames: Vec<_> = (0..25).map(|k| udp(k * SEC)).collect();
        frames.push(udp(28 * SEC));
        // A capture that starts at the SYN-ACK from B.
        frames.push((29 * SEC, tcp_frame(B, A, 443, 50000, tcp::SYN | tcp::ACK, 0)));
        let (recs, _) = flows(&pcap(&frames), t);
        let udp_flows: Vec<_> = recs.iter().filter(|r| r.protocol == Some(17)).map(|r| r.packets.total).collect();
        assert_eq!(udp_flows, [Some(10), Some(10), Some(5), Some(1)]);
        let tcp = recs.iter().find(|r| r.protocol == Some(6)).expect("the tcp flow");
        assert_eq!((tcp.src, tcp.dst_port, tcp.packets.bwd), (Some(IpAddr::from(A)), Some(443), Some(1)));
    }

    #[test]
    fn a_truncated_capture_keeps_its_complete_packets_and_says_where_it_stopped() {
        let frames: Vec<_> = (0..5).map(|k| (k * SEC, tcp_frame(A, B, 1000 + k as u16, 80, tcp::SYN, 0))).collect();
        let mut data = pcap(&frames);
        data.truncate(data.len() - 10);
        let (recs, stats) = flows(&data, FlowTimeouts::default());
        assert_eq!(recs.len(), 4);
        assert!(stats.error.as_deref().is_some_and(|e| e.contains("after 4 packets")), "{stats:?}");
        let mut text = String::new();
        let err = CaptureText::new(&data, FlowTimeouts::default()).read_to_string(&mut text).expect_err("truncated");
        assert!(err.to_string().contains("truncated"));
        // Hostile bytes after a valid header are an error, not a panic.
        let mut junk = pcap(&[]);
        junk.extend_from_slice(&[0xff; 64]);
        let (recs, stats) = flows(&junk, FlowTimeouts::default());
        assert!(recs.is_empty() && stats.error.is_some());
        assert!(is_capture(&data) && !is_capture(b"version account-id"));
    }

    /// A pcapng block: type, total length, body (padded to 4), length again.
    fn block(ty: u32, body: &[u8]) -> Vec<u8> {
        let mut b = body.to_vec();
        b.resize(body.len().div_ceil(4) * 4, 0);
        let len = (b.len() + 12) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&b);
        out.extend_from_slice(&len.to_le_bytes());
        out
    }

    /// A little-endian pcapng: section header, one Ethernet interface with
    /// `if_tsresol` = `tsresol`, and an enhanced packet per (ticks, frame).
    fn pcapng(tsresol: u8, packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut out = block(0x0a0d_0d0a, &shb);
        let mut idb = 1u16.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&65535u32.to_le_bytes());
        // if_tsresol (9), length 1, then the end of options.
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[tsresol, 0, 0, 0]);
        idb.extend_from_slice(&[0, 0, 0, 0]);
        out.extend(block(1, &idb));
        for (ticks, f) in packets {
            let mut epb = 0u32.to_le_bytes().to_vec();
            epb.extend_from_slice(&((ticks >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(*ticks as u32).to_le_bytes());
            epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
            epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
            epb.extend_from_slice(f);
            out.extend(block(6, &epb));
        }
        out
    }

    #[test]
    fn extreme_and_coarse_timestamps_are_set_aside_not_wrapped() {
        // if_tsresol 0: one tick is a second; the first packet's time lies
        // past what a record holds, the second's in 1970, the third's in 2023.
        let syn = tcp_frame(A, B, 40000, 80, tcp::SYN, 0);
        let file =
            pcapng(0, &[(u64::MAX - 3, syn.clone()), (1 << 62, syn.clone()), (1, syn.clone()), (1_700_000_000, syn)]);
        let (recs, stats) = flows(&file, FlowTimeouts::default());
        assert_eq!((stats.packets, stats.bad_time, stats.error.as_deref()), (4, 2, None));
        let starts: Vec<i64> = recs.iter().map(|r| r.start.map_or(0, Timestamp::micros)).collect();
        assert_eq!(starts, [SEC, 1_700_000_000 * SEC]);
        let p = stats.problem().expect("said");
        assert!(p.contains("2 of 4 packets have a time outside 1970-9999"), "{p}");
    }

    #[test]
    fn a_block_shorter_than_its_own_header_stops_reading_with_the_reason() {
        let syn = tcp_frame(A, B, 40000, 80, tcp::SYN, 0);
        let mut file = pcapng(6, &[(1_700_000_000_000_000, syn)]);
        // A process-information block (type 0x80000001) claiming 8 bytes:
        // pcap-parser 0.17 computes 8 - 12 on it.
        file.extend_from_slice(&0x8000_0001u32.to_le_bytes());
        file.extend_from_slice(&8u32.to_le_bytes());
        file.extend_from_slice(&[0; 16]);
        let (recs, stats) = flows(&file, FlowTimeouts::default());
        assert_eq!((recs.len(), stats.packets), (1, 1), "the packet before it still counts");
        let e = stats.error.expect("reason");
        assert!(e.contains("corrupt pcapng block") && e.contains("length 8"), "{e}");
    }

    #[test]
    fn a_capture_without_ip_traffic_says_so() {
        let (_, stats) = flows(&pcap(&[]), FlowTimeouts::default());
        assert_eq!(stats.problem().as_deref(), Some("the capture holds no packets"));
        let mut arp = vec![2u8; 6];
        arp.extend_from_slice(&[1; 6]);
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[0; 20]);
        let (recs, stats) = flows(&pcap(&[(SEC, arp)]), FlowTimeouts::default());
        assert!(recs.is_empty());
        assert!(stats.problem().is_some_and(|p| p.contains("no IP traffic")), "{:?}", stats.problem());
    }

    #[test]
    fn a_capture_of_an_unknown_link_type_says_so() {
        let syn = tcp_frame(A, B, 40000, 80, tcp::SYN, 0);
        let mut file = pcap(&[(SEC, syn.clone()), (2 * SEC, syn)]);
        // Link type 147 (a user-defined DLT): nothing to decode.
        file[20..24].copy_from_slice(&147u32.to_le_bytes());
        let (recs, stats) = flows(&file, FlowTimeouts::default());
        assert!(recs.is_empty());
        let p = stats.problem().expect("said");
        assert!(p.contains("none of its 2 packets could be decoded") && p.contains("147"), "{p}");
    }
}
