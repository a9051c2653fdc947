//! What one source does to one service over hours: the evidence the rule
//! table names beacons, brute force and long connections by (issue 29).
//!
//! A *pair* is (source, destination, destination port, protocol). For each,
//! [`Pairs`] keeps its first and last time, a count, the last [`RING`]
//! connections (start time, bytes, whether it looked failed) and the
//! connection open now (a 5-tuple chained across records). From them every
//! flow gets [`PAIR_NAMES`]: values for the rules, **not** model input —
//! the models' columns stay what they were trained on.
//!
//! The beacon score follows RITA's idea (a pair's connections regular in
//! time and size, persisting) with one change that matters on real bots: the
//! timing is measured on the gaps between connection *i* and *i + k* for
//! k = 1…4, keeping the k that is most regular. A Mirai bot in IoT-23
//! (capture 8-1) retries its controller in a cycle of four attempts (gaps 7,
//! 8, 17 and 48 s); its consecutive gaps are irregular (median 12.5 s, MAD
//! 5 s), every fourth connection comes exactly 80 s after the last cycle's.
//! docs/explain.md has the definitions.
//!
//! Memory: a pair costs about 100 bytes plus 16 per remembered connection
//! (at most [`RING`]); pairs quiet for [`PairParams::horizon_secs`] go at the
//! next sweep, and past [`PairParams::max_pairs`] the longest-quiet half goes.

use std::collections::VecDeque;
use std::net::IpAddr;

use flowhound_flow::{Action, FlowRecord};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The evidence each flow gets, in this order.
pub const PAIR_NAMES: [&str; 13] = [
    "pair_flows",
    "pair_span_s",
    "pair_per_min",
    "pair_size_madm",
    "pair_fail_share",
    "pair_bytes_median",
    "conn_open_s",
    "beacon_score",
    "beacon_timing",
    "beacon_size",
    "beacon_period_s",
    "beacon_jitter_s",
    "beacon_per_cycle",
];

/// How many values [`Pairs::observe`] writes per flow.
pub const PAIR_WIDTH: usize = PAIR_NAMES.len();

/// Connections remembered per pair.
pub const RING: usize = 64;
/// Fewest connections a beacon is scored on.
pub const BEACON_MIN: u64 = 16;
/// Longest lag (connections per cycle) tried.
const MAX_LAG: usize = 4;
/// A gap counts as on time within this share of the period (or a second).
const ON_TIME: f64 = 0.15;
/// Full credit for persistence after this long, and for this many connections.
const PERSIST_SECS: f64 = 1800.0;
const COUNT_FULL: f64 = 32.0;
/// The attempt rate is measured over this much of the recent past.
const RATE_SECS: i64 = 600;
/// A record continues the connection open on its 5-tuple when it starts
/// within this long of that connection's last end (VPC records a long
/// connection as one record per aggregation interval, from its first to its
/// last packet in the interval). Short enough that a client asking again
/// from the same port (NTP polls every 64 s or more) is not one connection.
const CHAIN_SECS: i64 = 30;
/// Observations between sweeps of quiet pairs.
const SWEEP_EVERY: u64 = 65_536;

/// Settings of the pair tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairParams {
    /// A pair quiet this long is forgotten (its beacon starts over).
    pub horizon_secs: u32,
    /// Most pairs kept.
    pub max_pairs: usize,
}

impl Default for PairParams {
    fn default() -> Self {
        PairParams { horizon_secs: 6 * 3600, max_pairs: 1_000_000 }
    }
}

type PairKey = (IpAddr, IpAddr, u16, u8);

/// One remembered connection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Seen {
    /// Start, µs.
    t: i64,
    bytes: f32,
    failed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pair {
    first: i64,
    last: i64,
    count: u64,
    ring: VecDeque<Seen>,
    /// The connection open now: source port, start and end (µs).
    conn: (u16, i64, i64),
    /// The evidence as last computed: on every connection before
    /// [`BEACON_MIN`], then every 4th (the score firms up; computing it on
    /// every connection cost 1M generated flows 8.7–9.5 s in `detect`
    /// instead of 7.6–7.9 s).
    cached: [f32; PAIR_WIDTH],
}

/// The pairs seen, for the evidence of the next flow. Flows must come in
/// time order per pair (late ones count at the pair's newest time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pairs {
    params: PairParams,
    map: FxHashMap<PairKey, Pair>,
    observed: u64,
    newest: i64,
}

/// Whether a flow looks like a failed attempt: refused (REJECT, a Zeek
/// `REJ`), reset, or never answered.
fn failed(r: &FlowRecord) -> bool {
    if r.action == Some(Action::Reject) {
        return true;
    }
    if r.tcp_flags.is_some_and(|f| f & 0x04 != 0) {
        return true;
    }
    if let Some(s) = r.state.as_deref() {
        if matches!(s, "REJ" | "S0" | "RSTO" | "RSTR" | "RSTOS0" | "RSTRH" | "SH" | "SHR" | "OTH") {
            return true;
        }
    }
    r.packets.bwd == Some(0) || r.bytes.bwd == Some(0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median and median absolute deviation.
fn median_mad(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    let m = median(&mut s);
    let mut d: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    (m, median(&mut d))
}

/// MAD over median: 0 for identical values, 1 (capped) when they spread
/// as far as they are large (or the median is 0 and they differ).
fn madm(v: &[f64]) -> (f64, f64) {
    let (m, mad) = median_mad(v);
    let r = if m > 0.0 {
        (mad / m).min(1.0)
    } else if mad == 0.0 {
        0.0
    } else {
        1.0
    };
    (m, r)
}

impl Pairs {
    pub fn new(params: PairParams) -> Self {
        Pairs { params, ..Default::default() }
    }

    /// Counts one flow and writes its evidence ([`PAIR_NAMES`]) to `out`
    /// (NaN for a flow without addresses or a time).
    pub fn observe(&mut self, r: &FlowRecord, out: &mut [f32; PAIR_WIDTH]) {
        let (Some(src), Some(dst), Some(start)) = (r.src, r.dst, r.start) else {
            *out = [f32::NAN; PAIR_WIDTH];
            return;
        };
        let key = (src, dst, r.dst_port.unwrap_or(0), r.protocol.unwrap_or(0));
        let start = start.micros();
        let end = r.end.map_or(start, |e| e.micros()).max(start);
        self.observed += 1;
        self.newest = self.newest.max(start);
        if self.observed.is_multiple_of(SWEEP_EVERY) {
            self.sweep();
        }
        let port = r.src_port.unwrap_or(0);
        let p = self.map.entry(key).or_insert_with(|| Pair {
            first: start,
            last: start,
            count: 0,
            ring: VecDeque::with_capacity(4),
            conn: (port, start, end),
            cached: [0.0; PAIR_WIDTH],
        });
        // Late records count at the pair's newest time: gaps never go back.
        let t = start.max(p.last);
        p.last = t;
        p.count += 1;
        if p.ring.len() == RING {
            p.ring.pop_front();
        }
        p.ring.push_back(Seen { t, bytes: r.bytes.total.unwrap_or(0) as f32, failed: failed(r) });
        let (cport, cstart, cend) = p.conn;
        p.conn = if port == cport && start <= cend + CHAIN_SECS * 1_000_000 {
            (port, cstart.min(start), cend.max(end))
        } else {
            (port, start, end)
        };
        if p.count < BEACON_MIN || p.count.is_multiple_of(4) {
            p.cached = evidence(p);
        }
        *out = p.cached;
        out[0] = p.count as f32;
        out[1] = ((t - p.first) as f64 / 1e6) as f32;
        out[6] = ((p.conn.2 - p.conn.1) as f64 / 1e6) as f32;
    }

    /// Forgets pairs quiet for the horizon; past the cap, the quietest half.
    fn sweep(&mut self) {
        let before = self.newest - i64::from(self.params.horizon_secs) * 1_000_000;
        self.map.retain(|_, p| p.last >= before);
        if self.map.len() > self.params.max_pairs {
            let mut lasts: Vec<i64> = self.map.values().map(|p| p.last).collect();
            let mid = lasts.len() / 2;
            let (_, cut, _) = lasts.select_nth_unstable(mid);
            let cut = *cut;
            self.map.retain(|_, p| p.last > cut);
        }
    }

    /// Pairs held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The evidence of a pair as it stands (the count, span and open time are
/// filled in by the caller).
fn evidence(p: &Pair) -> [f32; PAIR_WIDTH] {
    let mut out = [0.0f32; PAIR_WIDTH];
    let ring = &p.ring;
    let last = ring.back().map_or(p.last, |s| s.t);
    // Attempts per minute over the recent past: those of the last ten
    // minutes over ten minutes (or over the pair's life, at least a minute,
    // when younger). When the ring holds fewer than ten minutes, the rate
    // is measured over what it holds.
    let mut recent = ring.iter().filter(|s| last - s.t <= RATE_SECS * 1_000_000);
    let first = recent.next();
    let n = (usize::from(first.is_some()) + recent.count()) as f64;
    out[2] = match first {
        Some(a) if n as usize == RING && last > a.t => ((n - 1.0) * 60e6 / (last - a.t) as f64) as f32,
        Some(_) => {
            let life = ((last - p.first) as f64 / 1e6).clamp(60.0, RATE_SECS as f64);
            (n * 60.0 / life) as f32
        }
        None => 0.0,
    };
    let sizes: Vec<f64> = ring.iter().map(|s| f64::from(s.bytes)).collect();
    let (size_median, size_madm) = madm(&sizes);
    out[3] = size_madm as f32;
    out[4] = (ring.iter().filter(|s| s.failed).count() as f64 / ring.len().max(1) as f64) as f32;
    out[5] = size_median as f32;
    if p.count < BEACON_MIN || ring.len() < 4 {
        return out;
    }
    // Timing: the most regular lag.
    let times: Vec<i64> = ring.iter().map(|s| s.t).collect();
    let mut best: Option<(f64, usize, f64, f64)> = None;
    for k in 1..=MAX_LAG.min(times.len() - 3) {
        let gaps: Vec<f64> = times.windows(k + 1).map(|w| (w[k] - w[0]) as f64 / 1e6).collect();
        let (m, mad) = median_mad(&gaps);
        if m <= 0.0 {
            continue;
        }
        let tol = (ON_TIME * m).max(1.0);
        let share = gaps.iter().filter(|g| (*g - m).abs() <= tol).count() as f64 / gaps.len() as f64;
        if best.is_none_or(|b| share > b.0 + 1e-9) {
            best = Some((share, k, m, mad));
        }
    }
    let Some((timing, k, period, jitter)) = best else { return out };
    let size = 1.0 - size_madm;
    let span = (last - p.first) as f64 / 1e6;
    let persistence = (span / PERSIST_SECS).min(1.0);
    let count = (p.count as f64 / COUNT_FULL).min(1.0);
    out[7] = ((timing + size + persistence + count) / 4.0) as f32;
    out[8] = timing as f32;
    out[9] = size as f32;
    out[10] = period as f32;
    out[11] = jitter as f32;
    out[12] = k as f32;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowhound_flow::{Counts, Timestamp};

    fn flow(t_ms: i64, src: &str, dst: &str, dport: u16, sport: u16, bytes: u64) -> FlowRecord {
        FlowRecord {
            start: Timestamp::from_micros(t_ms * 1000),
            end: Timestamp::from_micros(t_ms * 1000 + 500_000),
            src: src.parse().ok(),
            dst: dst.parse().ok(),
            src_port: Some(sport),
            dst_port: Some(dport),
            protocol: Some(6),
            bytes: Counts::total(bytes),
            ..Default::default()
        }
    }

    fn at(name: &str, e: &[f32; PAIR_WIDTH]) -> f32 {
        e[PAIR_NAMES.iter().position(|n| *n == name).expect("a pair feature")]
    }

    /// A bot retrying its controller in cycles of four (gaps 7, 8, 17, 48 s,
    /// as IoT-23's Mirai capture does) is a beacon with an 80 s period and
    /// four connections a cycle; the same number of connections at random
    /// times is not.
    #[test]
    fn a_cycle_of_retries_is_a_beacon_and_random_times_are_not() {
        let mut pairs = Pairs::new(PairParams::default());
        let mut e = [0.0; PAIR_WIDTH];
        let mut t = 0;
        for i in 0..200 {
            pairs.observe(&flow(t, "192.168.100.113", "178.128.185.250", 50, 40_000 + i as u16, 0), &mut e);
            t += [7_000, 8_000, 17_000, 48_000][i % 4] + (i as i64 * 37 % 11);
        }
        assert!(at("beacon_score", &e) >= 0.95, "{e:?}");
        assert!((at("beacon_period_s", &e) - 80.0).abs() < 0.5, "{e:?}");
        assert_eq!(at("beacon_per_cycle", &e), 4.0);
        assert_eq!(at("pair_flows", &e), 200.0);
        assert!(at("beacon_jitter_s", &e) < 0.1);

        // A pseudo-random walk of gaps between 1 and 120 s.
        let mut x: u64 = 7;
        let mut t = 0;
        for i in 0..200 {
            pairs.observe(&flow(t, "10.0.0.5", "203.0.113.9", 443, 40_000 + i as u16, 600 + (x % 5000)), &mut e);
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            t += 1_000 + (x >> 33) as i64 % 119_000;
        }
        assert!(at("beacon_timing", &e) < 0.5, "{e:?}");
        assert!(at("beacon_score", &e) < 0.8, "{e:?}");
    }

    /// Before [`BEACON_MIN`] connections there is no beacon score; the count,
    /// span and rate grow from the first.
    #[test]
    fn a_young_pair_has_counts_but_no_beacon() {
        let mut pairs = Pairs::new(PairParams::default());
        let mut e = [0.0; PAIR_WIDTH];
        for i in 0..10 {
            pairs.observe(&flow(i * 6_000, "172.16.0.1", "192.168.10.50", 22, 50_000 + i as u16, 4_753), &mut e);
        }
        assert_eq!((at("pair_flows", &e), at("pair_span_s", &e)), (10.0, 54.0));
        assert!((at("pair_per_min", &e) - 10.0).abs() < 0.01, "{e:?}");
        assert_eq!((at("pair_size_madm", &e), at("pair_bytes_median", &e)), (0.0, 4753.0));
        assert_eq!(at("beacon_score", &e), 0.0);
    }

    /// Records of one 5-tuple one after another (VPC writes a long
    /// connection as one record a minute) make one open connection; another
    /// source port starts another.
    #[test]
    fn records_of_one_connection_chain_into_its_open_time() {
        let mut pairs = Pairs::new(PairParams::default());
        let mut e = [0.0; PAIR_WIDTH];
        for m in 0..90 {
            let mut r = flow(m * 60_000, "10.0.1.5", "198.51.100.7", 443, 51_000, 900);
            r.end = Timestamp::from_micros((m * 60_000 + 59_000) * 1000);
            pairs.observe(&r, &mut e);
        }
        assert_eq!(at("conn_open_s", &e), 89.0 * 60.0 + 59.0);
        pairs.observe(&flow(90 * 60_000, "10.0.1.5", "198.51.100.7", 443, 51_001, 900), &mut e);
        assert_eq!(at("conn_open_s", &e), 0.5);
    }

    /// Failed-looking attempts: refused, reset, unanswered.
    #[test]
    fn refused_reset_and_unanswered_attempts_count_as_failed() {
        let mut pairs = Pairs::new(PairParams::default());
        let mut e = [0.0; PAIR_WIDTH];
        let mut r = flow(0, "10.0.0.1", "10.0.0.2", 22, 1, 100);
        r.action = Some(Action::Reject);
        pairs.observe(&r, &mut e);
        let mut r = flow(1_000, "10.0.0.1", "10.0.0.2", 22, 2, 100);
        r.tcp_flags = Some(0x14);
        pairs.observe(&r, &mut e);
        let mut r = flow(2_000, "10.0.0.1", "10.0.0.2", 22, 3, 100);
        r.state = Some("S0".into());
        pairs.observe(&r, &mut e);
        pairs.observe(&flow(3_000, "10.0.0.1", "10.0.0.2", 22, 4, 100), &mut e);
        assert_eq!(at("pair_fail_share", &e), 0.75);
    }

    /// Quiet pairs go at the sweep; the evidence of a flow without a time is NaN.
    #[test]
    fn quiet_pairs_are_forgotten_and_flows_without_time_have_no_evidence() {
        let mut pairs = Pairs::new(PairParams { horizon_secs: 60, max_pairs: 10 });
        let mut e = [0.0; PAIR_WIDTH];
        pairs.observe(&flow(0, "10.0.0.1", "10.0.0.2", 80, 1, 1), &mut e);
        for i in 1..SWEEP_EVERY {
            pairs.observe(&flow(3_600_000 + i as i64, "10.0.0.3", "10.0.0.4", 80, (i % 60_000) as u16, 1), &mut e);
        }
        assert_eq!(pairs.len(), 1, "the quiet pair went");
        let mut r = flow(0, "10.0.0.1", "10.0.0.2", 80, 1, 1);
        r.start = None;
        pairs.observe(&r, &mut e);
        assert!(e.iter().all(|v| v.is_nan()));
    }
}
