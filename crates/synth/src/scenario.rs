//! Injected attacks: one scenario per threat class flowhound detects.

use std::net::Ipv4Addr;

use compact_str::CompactString;
use flowhound_flow::record::tcp;
use flowhound_flow::{Action, FlowRecord, GroundTruth};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::world::{public_ip, Conn, Host, Role, World};

/// An attack scenario; its name is the ground-truth category of its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// One source probes many ports of one host (T1046).
    PortScanVertical,
    /// One source probes one port across many hosts (T1046).
    PortScanHorizontal,
    /// One source floods one service with SYNs (T1498/T1499).
    Dos,
    /// Hundreds of sources flood one target with UDP or SYNs (T1498).
    Ddos,
    /// An internal host sends unusual volume to a rare external host (T1048).
    Exfiltration,
    /// An internal host's connection rate jumps far above its own baseline.
    ConnectionBurst,
    /// Accepted traffic with external addresses never seen before.
    UnknownIp,
    /// UDP to TCP-only services, ICMP floods, rare IP protocols.
    AbnormalProtocol,
    /// An implant calling its controller at a steady rhythm (T1071).
    Beacon,
    /// Password guessing against SSH, from the Internet or from inside (T1110).
    BruteForce,
    /// A tunnel to an outside host held open for hours.
    LongConnection,
}

impl Scenario {
    pub const ALL: [Scenario; 11] = [
        Scenario::PortScanVertical,
        Scenario::PortScanHorizontal,
        Scenario::Dos,
        Scenario::Ddos,
        Scenario::Exfiltration,
        Scenario::ConnectionBurst,
        Scenario::UnknownIp,
        Scenario::AbnormalProtocol,
        Scenario::Beacon,
        Scenario::BruteForce,
        Scenario::LongConnection,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::PortScanVertical => "port_scan_vertical",
            Scenario::PortScanHorizontal => "port_scan_horizontal",
            Scenario::Dos => "dos",
            Scenario::Ddos => "ddos",
            Scenario::Exfiltration => "exfiltration",
            Scenario::ConnectionBurst => "connection_burst",
            Scenario::UnknownIp => "unknown_ip",
            Scenario::AbnormalProtocol => "abnormal_protocol",
            Scenario::Beacon => "beacon",
            Scenario::BruteForce => "brute_force",
            Scenario::LongConnection => "long_connection",
        }
    }

    pub fn index_of(name: &str) -> Option<usize> {
        Self::ALL.iter().position(|s| s.name() == name)
    }

    /// Beacons, brute force and long connections take many connections of
    /// one pair (or hours) to show.
    pub fn is_slow(self) -> bool {
        matches!(self, Scenario::Beacon | Scenario::BruteForce | Scenario::LongConnection)
    }

    fn truth(self) -> Option<GroundTruth> {
        Some(GroundTruth { malicious: true, category: Some(CompactString::from(self.name())) })
    }
}

/// A source address from ranges normal traffic never uses, so "never seen" holds.
fn unseen_ip(rng: &mut ChaCha8Rng) -> Ipv4Addr {
    let prefixes: [(u8, u8); 3] = [(185, 220), (45, 155), (193, 32)];
    let (a, b) = prefixes[rng.gen_range(0..prefixes.len())];
    Ipv4Addr::new(a, b, rng.gen(), rng.gen_range(1..=254))
}

/// Plans and generates attack records: the budget is shared equally by the
/// scenario types (so a small budget still holds every class), and each type
/// runs instances at seeded times until its share is used.
/// The slow scenarios run only when each gets at least this many records:
/// fewer cannot show what they are (a beacon needs 20 calls and answers).
pub const SLOW_MIN: u64 = 100;

pub(crate) fn plan(world: &World, rng: &mut ChaCha8Rng, budget: u64, t0: i64, minutes: u64) -> Vec<FlowRecord> {
    let mut out = Vec::with_capacity(budget as usize);
    let all = budget >= SLOW_MIN * Scenario::ALL.len() as u64;
    let mut order: Vec<Scenario> = Scenario::ALL.into_iter().filter(|s| all || !s.is_slow()).collect();
    order.shuffle(rng);
    let span = minutes as i64 * 60;
    let types = order.len() as u64;
    for (k, s) in order.iter().enumerate() {
        let share = budget / types + u64::from((k as u64) < budget % types);
        let limit = out.len() + share as usize;
        while out.len() < limit {
            // Leave the first tenth as a quiet baseline; finish before the end.
            let t = t0 + rng.gen_range(span / 10..(span * 9 / 10).max(span / 10 + 1));
            let before = out.len();
            instance(world, rng, *s, t, &mut out, limit);
            if out.len() == before {
                break;
            }
        }
    }
    out
}

fn instance(w: &World, rng: &mut ChaCha8Rng, s: Scenario, t: i64, out: &mut Vec<FlowRecord>, limit: usize) {
    let truth = s.truth();
    let attacker_ext = if rng.gen_bool(0.5) { unseen_ip(rng) } else { public_ip(rng) };
    match s {
        Scenario::PortScanVertical => {
            let target = pick_any(w, rng);
            let n = rng.gen_range(300..=1000);
            let mut ports: Vec<u16> = (1..=10_000).collect();
            ports.shuffle(rng);
            let secs = rng.gen_range(20..=90);
            let cport = rng.gen_range(40_000..=60_000);
            for (i, &p) in ports.iter().take(n).enumerate() {
                let mut c = Conn::new(t + (i as i64 * secs / n as i64), cport);
                c.client = attacker_ext;
                c.server(target, p);
                c.flags = Some(tcp::SYN);
                c.vol((1, 44), (1, 40));
                c.emit_probe(out, limit, truth.clone());
            }
        }
        Scenario::PortScanHorizontal => {
            // A compromised internal host sweeping the VPC, or an outsider
            // sweeping the public tier; either way one port, many hosts.
            let inside = rng.gen_bool(0.5);
            let src_host = w.pick(rng, Role::Worker);
            let port = *[22u16, 445, 3389, 23, 5900, 6379].choose(rng).unwrap_or(&22);
            let rounds = rng.gen_range(4..=12);
            let mut i = 0i64;
            for _ in 0..rounds {
                for h in w.hosts.iter() {
                    if !inside && !matches!(h.role, Role::Web | Role::Bastion) && rng.gen_bool(0.5) {
                        continue;
                    }
                    let mut c = Conn::new(t + i / 8, rng.gen_range(32768..=60999));
                    i += 1;
                    if inside {
                        c.from(src_host);
                    } else {
                        c.client = attacker_ext;
                    }
                    c.server(h, port);
                    c.flags = Some(tcp::SYN);
                    c.vol((1, 44), (1, 40));
                    c.emit_probe(out, limit, truth.clone());
                }
            }
        }
        Scenario::Dos => {
            let target = w.pick(rng, Role::Web);
            let n = rng.gen_range(1500..=4000);
            let secs = rng.gen_range(60..=180);
            for i in 0..n {
                let mut c = Conn::new(t + (i * secs / n), rng.gen_range(1024..=65535));
                c.client = attacker_ext;
                c.server(target, 443);
                c.flags = Some(tcp::SYN);
                c.vol((rng.gen_range(1..4), 60), (0, 0));
                c.emit(out, limit, truth.clone());
            }
        }
        Scenario::Ddos => {
            let target = w.pick(rng, Role::Web);
            let udp = rng.gen_bool(0.5);
            let sources: Vec<Ipv4Addr> = (0..rng.gen_range(200..=800)).map(|_| public_ip(rng)).collect();
            let secs = rng.gen_range(120..=300);
            let per = rng.gen_range(3..=10);
            let n = (sources.len() * per) as i64;
            for i in 0..n {
                let src = sources[i as usize % sources.len()];
                let mut c = Conn::new(t + (i * secs / n), rng.gen_range(1024..=65535));
                c.client = src;
                if udp {
                    c.proto = 17;
                    c.server(target, *[53u16, 123, 1900, 11211].choose(rng).unwrap_or(&53));
                    c.vol((rng.gen_range(50..2000), 0), (0, 0));
                    c.req.1 = c.req.0 * rng.gen_range(400..1400);
                    c.action = Some(Action::Reject);
                } else {
                    c.server(target, 443);
                    c.flags = Some(tcp::SYN);
                    c.vol((rng.gen_range(1..3), 60), (0, 0));
                }
                c.emit(out, limit, truth.clone());
            }
        }
        Scenario::Exfiltration => {
            let src = w.pick_mix(rng, 0.5, Role::Db, Role::App);
            let dst = unseen_ip(rng);
            let port = *[443u16, 8443, 22, 53].choose(rng).unwrap_or(&443);
            let n = rng.gen_range(10..=40);
            let mut tt = t;
            for _ in 0..n {
                let mut c = Conn::new(tt, rng.gen_range(32768..=60999));
                c.from(src);
                c.server = dst;
                c.sport = port;
                c.proto = if port == 53 { 17 } else { 6 };
                let bytes = rng.gen_range(20_000_000..=400_000_000u64);
                c.vol((bytes / 1400, bytes), (bytes / 1400 / 20, bytes / 1400 / 20 * 52));
                c.dur = 59;
                c.emit(out, limit, truth.clone());
                tt += rng.gen_range(30..120);
            }
        }
        Scenario::ConnectionBurst => {
            let src = w.pick_mix(rng, 0.5, Role::Worker, Role::App);
            let n = rng.gen_range(500..=2000);
            let secs = rng.gen_range(60..=180);
            let dsts: Vec<Ipv4Addr> = (0..rng.gen_range(50..300)).map(|_| public_ip(rng)).collect();
            for i in 0..n {
                let mut c = Conn::new(t + (i * secs / n), rng.gen_range(32768..=60999));
                c.from(src);
                c.server = dsts[rng.gen_range(0..dsts.len())];
                c.sport = if rng.gen_bool(0.8) { 443 } else { 80 };
                c.vol(
                    (rng.gen_range(3..12), rng.gen_range(300..2000)),
                    (rng.gen_range(3..12), rng.gen_range(500..8000)),
                );
                c.dur = rng.gen_range(0..3);
                c.emit(out, limit, truth.clone());
            }
        }
        Scenario::UnknownIp => {
            // An internal server that never meets strangers calling a
            // never-seen address (a command-and-control channel). A new
            // client of the public web servers or the bastion is not one:
            // they meet new addresses all day (Internet background radiation).
            let stranger = unseen_ip(rng);
            let host = w.pick(rng, Role::App);
            let port = *[443u16, 8443, 4444].choose(rng).unwrap_or(&443);
            let n = rng.gen_range(5..=30);
            for i in 0..n {
                let mut c = Conn::new(t + i * rng.gen_range(20..200), rng.gen_range(32768..=60999));
                c.from(host);
                c.server = stranger;
                c.sport = port;
                c.vol(
                    (rng.gen_range(10..200), rng.gen_range(2_000..60_000)),
                    (rng.gen_range(10..200), rng.gen_range(5_000..200_000)),
                );
                c.dur = rng.gen_range(1..59);
                c.emit(out, limit, truth.clone());
            }
        }
        Scenario::AbnormalProtocol => {
            let src = pick_any(w, rng);
            match rng.gen_range(0..3) {
                0 => {
                    // UDP aimed at TCP-only services.
                    for i in 0..rng.gen_range(40..=150) {
                        let target = pick_any(w, rng);
                        let mut c = Conn::new(t + i, rng.gen_range(32768..=60999));
                        c.from(src);
                        c.proto = 17;
                        c.server(target, *[22u16, 5432, 6379, 3306, 443].choose(rng).unwrap_or(&22));
                        c.vol((rng.gen_range(1..20), rng.gen_range(100..5000)), (0, 0));
                        c.emit(out, limit, truth.clone());
                    }
                }
                1 => {
                    // ICMP flood against one host.
                    let target = pick_any(w, rng);
                    for i in 0..rng.gen_range(200..=600) {
                        let mut c = Conn::new(t + i / 4, 0);
                        c.client = attacker_ext;
                        c.proto = 1;
                        c.server(target, 0);
                        c.cport = 0;
                        c.vol((rng.gen_range(500..5000), 0), (0, 0));
                        c.req.1 = c.req.0 * 84;
                        c.emit(out, limit, truth.clone());
                    }
                }
                _ => {
                    // Tunnelling protocols nobody here uses (GRE, IPv6-in-IPv4, SCTP).
                    let dst = unseen_ip(rng);
                    for i in 0..rng.gen_range(20..=80) {
                        let mut c = Conn::new(t + i * 3, 0);
                        c.from(src);
                        c.server = dst;
                        c.proto = *[47u8, 41, 132].choose(rng).unwrap_or(&47);
                        c.sport = 0;
                        c.cport = 0;
                        c.vol((rng.gen_range(10..500), rng.gen_range(1_000..400_000)), (0, 0));
                        c.emit(out, limit, truth.clone());
                    }
                }
            }
        }
        Scenario::Beacon | Scenario::BruteForce | Scenario::LongConnection => slow(w, rng, s, t, out, limit),
    }
}

/// The three scenarios that take hours or many alike connections to show.
fn slow(w: &World, rng: &mut ChaCha8Rng, s: Scenario, t: i64, out: &mut Vec<FlowRecord>, limit: usize) {
    let truth = s.truth();
    match s {
        Scenario::Beacon => {
            // Every 30 s to 5 min (±5 %) to one controller, small requests
            // alike in size, for up to three hours.
            let host = pick_any(w, rng);
            let c2 = unseen_ip(rng);
            let port = *[443u16, 8080, 8443, 4444].choose(rng).unwrap_or(&443);
            let period = rng.gen_range(30..=300i64);
            for i in 0..(3 * 3600 / period) {
                let jitter = rng.gen_range(-(period / 20)..=period / 20);
                let mut c = Conn::new(t + i * period + jitter, rng.gen_range(32768..=60999));
                c.from(host);
                c.server = c2;
                c.sport = port;
                c.vol((rng.gen_range(4..6), rng.gen_range(310..330)), (rng.gen_range(3..5), rng.gen_range(220..240)));
                c.dur = rng.gen_range(0..2);
                c.emit(out, limit, truth.clone());
            }
        }
        Scenario::BruteForce => {
            // One guess every 1–3 s at the bastion's SSH: each a connection
            // of its own, the same few kilobytes, most refused or reset.
            let target = w.pick(rng, Role::Bastion);
            let inside = rng.gen_bool(0.5);
            let src = pick_any(w, rng);
            let attacker = unseen_ip(rng);
            let mut at = t;
            for _ in 0..rng.gen_range(150..=400) {
                let mut c = Conn::new(at, rng.gen_range(32768..=60999));
                if inside {
                    c.from(src);
                } else {
                    c.client = attacker;
                }
                c.server(target, 22);
                c.vol(
                    (rng.gen_range(10..13), rng.gen_range(2_000..2_100)),
                    (rng.gen_range(9..12), rng.gen_range(2_700..2_800)),
                );
                c.dur = rng.gen_range(2..5);
                c.flags = Some(tcp::SYN | tcp::ACK | tcp::PSH | tcp::RST);
                c.emit(out, limit, truth.clone());
                at += rng.gen_range(1..=3);
            }
        }
        _ => {
            // One 5-tuple, a record every ten minutes (VPC's longest
            // aggregation interval), for two to four hours.
            let host = pick_any(w, rng);
            let far = unseen_ip(rng);
            let port = *[22u16, 443, 1194].choose(rng).unwrap_or(&443);
            let cport = rng.gen_range(32768..=60999);
            for k in 0..rng.gen_range(12..=24i64) {
                let mut c = Conn::new(t + k * 600, cport);
                c.from(host);
                c.server = far;
                c.sport = port;
                c.dur = 599;
                c.flags = Some(tcp::ACK | tcp::PSH);
                c.vol(
                    (rng.gen_range(50..400), rng.gen_range(5_000..60_000)),
                    (rng.gen_range(50..400), rng.gen_range(5_000..80_000)),
                );
                c.emit(out, limit, truth.clone());
            }
        }
    }
}

fn pick_any<'w>(w: &'w World, rng: &mut ChaCha8Rng) -> &'w Host {
    &w.hosts[rng.gen_range(0..w.hosts.len())]
}

impl Conn<'_> {
    /// A probe: the request, and for an open port the target's reply (SYN-ACK;
    /// the scanner never completes the handshake).
    pub(crate) fn emit_probe(&mut self, out: &mut Vec<FlowRecord>, limit: usize, truth: Option<GroundTruth>) {
        self.dur = 0;
        if self.action == Some(Action::Reject) {
            self.resp = (0, 0);
        }
        self.emit(out, limit, truth);
    }
}
