//! Context features over event-time windows: what a flow's source and
//! destination have been doing in the last minute, hour, …
//!
//! Each host keeps one queue of its recent events (as long as the longest
//! window) and, per window, a cursor into that queue plus running counters
//! and distinct-value maps. A new flow first expires what fell out of each
//! window (moving its cursor), then joins every window, then the counters are
//! read. Cost per flow is O(1) amortized; memory is bounded by the events of
//! active hosts: a host quiet for longer than every window is dropped.
//!
//! Windows include the current flow: the tenth SYN to a tenth port gives
//! `src_distinct_dst_ports = 10`. A destination is "new" for a source when the
//! source has not contacted it within the longest window. Times are event times from the records; a
//! record older than its host's newest (out-of-order input, e.g. Zeek logs
//! written at connection end) is counted at that newest time.

use std::collections::VecDeque;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use crate::schema::{window_suffix, Feature, Kind};

/// What the context needs of a flow.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Event time, µs.
    pub t: i64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub dst_port: Option<u16>,
    pub bytes: u64,
    pub packets: u64,
    pub rejected: bool,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    t: i64,
    peer: IpAddr,
    port: Option<u16>,
    bytes: u64,
    packets: u64,
    rejected: bool,
    new_peer: bool,
}

/// Most windows an extractor can have: map values hold one count per window.
pub const MAX_WINDOWS: usize = 4;

/// Occurrences of one peer (or port) in each window.
type PerWindow = [u32; MAX_WINDOWS];

/// Running totals of one window.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    /// Absolute index of the first event inside this window.
    cursor: u64,
    flows: u64,
    rejected: u64,
    bytes: u64,
    packets: u64,
    new_peers: u64,
    distinct_peers: u64,
    distinct_ports: u64,
}

/// One host's state. Windows are nested (sorted by length), so one map of
/// peers and one of ports serve all of them: each entry counts the peer's
/// events per window, and a window's distinct count moves when its count goes
/// 0 → 1 or 1 → 0. One map operation per event instead of one per window
/// (measured: the context is memory-bound, and map probes are its misses).
#[derive(Debug, Default)]
struct Host {
    events: VecDeque<Event>,
    /// Absolute index of `events[0]`.
    base: u64,
    windows: [Window; MAX_WINDOWS],
    peers: FxHashMap<IpAddr, PerWindow>,
    ports: FxHashMap<u16, PerWindow>,
    /// Events counted over the burst baseline (only flows, via a cursor).
    baseline_cursor: u64,
    baseline_flows: u64,
    last_t: i64,
}

impl Host {
    /// Expires what left each window, adds `e`, and trims the queue.
    fn push(&mut self, e: Event, lens_us: &[i64], baseline_us: i64) {
        let end = self.base + self.events.len() as u64;
        let n = lens_us.len();
        for (k, len) in lens_us.iter().enumerate() {
            while self.windows[k].cursor < end {
                let old = self.events[(self.windows[k].cursor - self.base) as usize];
                if old.t > e.t - len {
                    break;
                }
                let w = &mut self.windows[k];
                w.cursor += 1;
                w.flows -= 1;
                w.rejected -= u64::from(old.rejected);
                w.bytes -= old.bytes;
                w.packets -= old.packets;
                w.new_peers -= u64::from(old.new_peer);
                // The longest window is the last to let an event go: then the
                // entry has no counts left and is removed.
                w.distinct_peers -= u64::from(forget(&mut self.peers, old.peer, k, k + 1 == n));
                if let Some(p) = old.port {
                    w.distinct_ports -= u64::from(forget(&mut self.ports, p, k, k + 1 == n));
                }
            }
        }
        while self.baseline_cursor < end
            && self.events[(self.baseline_cursor - self.base) as usize].t <= e.t - baseline_us
        {
            self.baseline_flows -= 1;
            self.baseline_cursor += 1;
        }
        let keep_from = self.windows[..n].iter().map(|w| w.cursor).chain([self.baseline_cursor]).min().unwrap_or(end);
        while self.base < keep_from {
            self.events.pop_front();
            self.base += 1;
        }
        let peer = self.peers.entry(e.peer).or_default();
        let port = e.port.map(|p| self.ports.entry(p).or_default());
        for (k, w) in self.windows[..n].iter_mut().enumerate() {
            w.flows += 1;
            w.rejected += u64::from(e.rejected);
            w.bytes += e.bytes;
            w.packets += e.packets;
            w.new_peers += u64::from(e.new_peer);
            w.distinct_peers += u64::from(peer[k] == 0);
            peer[k] += 1;
        }
        if let Some(port) = port {
            for (k, w) in self.windows[..n].iter_mut().enumerate() {
                w.distinct_ports += u64::from(port[k] == 0);
                port[k] += 1;
            }
        }
        self.baseline_flows += 1;
        self.events.push_back(e);
        self.last_t = e.t;
    }
}

/// Counts one occurrence of `key` out of window `k`; true when that was its
/// last one there (the window's distinct count drops).
fn forget<K: std::hash::Hash + Eq>(m: &mut FxHashMap<K, PerWindow>, key: K, k: usize, longest: bool) -> bool {
    let Some(c) = m.get_mut(&key) else { return false };
    c[k] -= 1;
    let gone = c[k] == 0;
    if gone && longest {
        m.remove(&key);
    }
    gone
}

/// Validated window settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    /// Window lengths in seconds, ascending.
    pub secs: Vec<u32>,
    /// The longer window a source's current rate is compared with (burstiness).
    pub baseline_secs: u32,
}

/// Sliding-window state for every active source and destination.
#[derive(Debug)]
pub struct Context {
    w: Windows,
    lens_us: Vec<i64>,
    baseline_us: i64,
    src: FxHashMap<IpAddr, Host>,
    dst: FxHashMap<IpAddr, Host>,
    now: i64,
    since_sweep: u32,
}

/// Flows between sweeps for quiet hosts.
const SWEEP_EVERY: u32 = 1 << 16;

impl Context {
    pub fn new(w: Windows) -> Self {
        let lens_us = w.secs.iter().map(|s| i64::from(*s) * 1_000_000).collect();
        let baseline_us = i64::from(w.baseline_secs) * 1_000_000;
        Context {
            w,
            lens_us,
            baseline_us,
            src: FxHashMap::default(),
            dst: FxHashMap::default(),
            now: i64::MIN,
            since_sweep: 0,
        }
    }

    /// Names of the features [`Context::update`] writes, in order.
    pub fn features(w: &Windows) -> Vec<Feature> {
        use Kind::*;
        let mut v = Vec::new();
        for s in &w.secs {
            let x = window_suffix(*s);
            v.push(Feature::new(format!("src_flows_{x}"), Count));
            v.push(Feature::new(format!("src_distinct_dst_{x}"), Count));
            v.push(Feature::new(format!("src_distinct_dst_ports_{x}"), Count));
            v.push(Feature::new(format!("src_reject_share_{x}"), Numeric));
            v.push(Feature::new(format!("src_bytes_out_{x}"), Count));
            v.push(Feature::new(format!("src_new_dst_{x}"), Count));
            v.push(Feature::new(format!("dst_flows_{x}"), Count));
            v.push(Feature::new(format!("dst_distinct_src_{x}"), Count));
            v.push(Feature::new(format!("dst_packets_{x}"), Count));
            v.push(Feature::new(format!("dst_bytes_in_{x}"), Count));
            v.push(Feature::new(format!("dst_reject_share_{x}"), Numeric));
        }
        v.push(Feature::new(
            format!("src_burst_{}_{}", window_suffix(w.secs[0]), window_suffix(w.baseline_secs)),
            Count,
        ));
        v
    }

    /// Hosts currently holding state (sources + destinations).
    pub fn active_hosts(&self) -> usize {
        self.src.len() + self.dst.len()
    }

    /// Adds a flow and appends its context features to `out`.
    pub fn update(&mut self, k: &Key, out: &mut Vec<f32>) {
        self.now = self.now.max(k.t);
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.sweep();
        }
        let n = self.lens_us.len();
        let src = self.src.entry(k.src).or_default();
        let t = k.t.max(src.last_t);
        // "New" means not contacted within the longest window: the peer map
        // already holds exactly those, so memory stays bounded by activity.
        let new_peer = !src.peers.contains_key(&k.dst);
        let e = Event {
            t,
            peer: k.dst,
            port: k.dst_port,
            bytes: k.bytes,
            packets: k.packets,
            rejected: k.rejected,
            new_peer,
        };
        src.push(e, &self.lens_us, self.baseline_us);
        let src_w = src.windows;
        // Current rate over the shortest window vs the rate over the baseline:
        // 1 for a steady host, up to baseline/window for a host that just woke.
        let short = src.windows[0].flows as f64 / f64::from(self.w.secs[0]);
        let base = src.baseline_flows as f64 / f64::from(self.w.baseline_secs);
        let burst = (short / base) as f32;

        let dst = self.dst.entry(k.dst).or_default();
        let t = k.t.max(dst.last_t);
        let e = Event {
            t,
            peer: k.src,
            port: None,
            bytes: k.bytes,
            packets: k.packets,
            rejected: k.rejected,
            new_peer: false,
        };
        dst.push(e, &self.lens_us, self.baseline_us);

        for (sw, dw) in src_w[..n].iter().zip(&dst.windows[..n]) {
            out.push(sw.flows as f32);
            out.push(sw.distinct_peers as f32);
            out.push(sw.distinct_ports as f32);
            out.push(sw.rejected as f32 / sw.flows as f32);
            out.push(sw.bytes as f32);
            out.push(sw.new_peers as f32);
            out.push(dw.flows as f32);
            out.push(dw.distinct_peers as f32);
            out.push(dw.packets as f32);
            out.push(dw.bytes as f32);
            out.push(dw.rejected as f32 / dw.flows as f32);
        }
        out.push(burst);
    }

    /// Drops hosts whose newest event is older than every window.
    fn sweep(&mut self) {
        self.since_sweep = 0;
        let horizon = self.lens_us.iter().copied().chain([self.baseline_us]).max().unwrap_or(0);
        let cutoff = self.now.saturating_sub(horizon);
        self.src.retain(|_, h| h.last_t > cutoff);
        self.dst.retain(|_, h| h.last_t > cutoff);
    }
}
