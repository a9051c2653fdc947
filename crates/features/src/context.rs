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
//! `src_distinct_dst_ports = 10`. Times are event times from the records; a
//! record older than its host's newest (out-of-order input, e.g. Zeek logs
//! written at connection end) is counted at that newest time.

use std::collections::VecDeque;
use std::net::IpAddr;

use rustc_hash::{FxHashMap, FxHashSet};

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

#[derive(Debug, Default, Clone)]
struct Window {
    /// Absolute index of the first event inside this window.
    cursor: u64,
    flows: u64,
    rejected: u64,
    bytes: u64,
    packets: u64,
    new_peers: u64,
    peers: FxHashMap<IpAddr, u32>,
    ports: FxHashMap<u16, u32>,
}

impl Window {
    fn add(&mut self, e: &Event) {
        self.flows += 1;
        self.rejected += u64::from(e.rejected);
        self.bytes += e.bytes;
        self.packets += e.packets;
        self.new_peers += u64::from(e.new_peer);
        *self.peers.entry(e.peer).or_default() += 1;
        if let Some(p) = e.port {
            *self.ports.entry(p).or_default() += 1;
        }
    }

    fn remove(&mut self, e: &Event) {
        self.flows -= 1;
        self.rejected -= u64::from(e.rejected);
        self.bytes -= e.bytes;
        self.packets -= e.packets;
        self.new_peers -= u64::from(e.new_peer);
        dec(&mut self.peers, e.peer);
        if let Some(p) = e.port {
            dec(&mut self.ports, p);
        }
    }
}

fn dec<K: std::hash::Hash + Eq>(m: &mut FxHashMap<K, u32>, k: K) {
    if let Some(c) = m.get_mut(&k) {
        *c -= 1;
        if *c == 0 {
            m.remove(&k);
        }
    }
}

/// Most peers remembered per source for "new destination": beyond this the
/// memory is cleared and starts again (a scanner would otherwise grow it forever).
const HISTORY_MAX: usize = 4096;

#[derive(Debug, Default)]
struct Host {
    events: VecDeque<Event>,
    /// Absolute index of `events[0]`.
    base: u64,
    windows: Vec<Window>,
    /// Events counted over the burst baseline (only flows, via a cursor).
    baseline_cursor: u64,
    baseline_flows: u64,
    last_t: i64,
    history: FxHashSet<IpAddr>,
}

impl Host {
    fn new(n: usize) -> Self {
        Host { windows: vec![Window::default(); n], ..Default::default() }
    }

    fn event(&self, abs: u64) -> &Event {
        &self.events[(abs - self.base) as usize]
    }

    /// Expires, adds `e`, and trims the queue.
    fn push(&mut self, e: Event, lens_us: &[i64], baseline_us: i64) {
        let end = self.base + self.events.len() as u64;
        for (k, len) in lens_us.iter().enumerate() {
            while self.windows[k].cursor < end && self.event(self.windows[k].cursor).t <= e.t - len {
                let old = *self.event(self.windows[k].cursor);
                self.windows[k].remove(&old);
                self.windows[k].cursor += 1;
            }
        }
        while self.baseline_cursor < end && self.event(self.baseline_cursor).t <= e.t - baseline_us {
            self.baseline_flows -= 1;
            self.baseline_cursor += 1;
        }
        let keep_from = self.windows.iter().map(|w| w.cursor).chain([self.baseline_cursor]).min().unwrap_or(end);
        while self.base < keep_from {
            self.events.pop_front();
            self.base += 1;
        }
        for w in &mut self.windows {
            w.add(&e);
        }
        self.baseline_flows += 1;
        self.events.push_back(e);
        self.last_t = e.t;
    }
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
        let src = self.src.entry(k.src).or_insert_with(|| Host::new(n));
        let t = k.t.max(src.last_t);
        let new_peer = !src.history.contains(&k.dst);
        if new_peer {
            if src.history.len() >= HISTORY_MAX {
                src.history.clear();
            }
            src.history.insert(k.dst);
        }
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
        let dst = self.dst.entry(k.dst).or_insert_with(|| Host::new(n));
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

        let (src, dst) = (&self.src[&k.src], &self.dst[&k.dst]);
        for (sw, dw) in src.windows.iter().zip(&dst.windows) {
            out.push(sw.flows as f32);
            out.push(sw.peers.len() as f32);
            out.push(sw.ports.len() as f32);
            out.push(sw.rejected as f32 / sw.flows as f32);
            out.push(sw.bytes as f32);
            out.push(sw.new_peers as f32);
            out.push(dw.flows as f32);
            out.push(dw.peers.len() as f32);
            out.push(dw.packets as f32);
            out.push(dw.bytes as f32);
            out.push(dw.rejected as f32 / dw.flows as f32);
        }
        // Current rate over the shortest window vs the rate over the baseline:
        // 1 for a steady host, up to baseline/window for a host that just woke.
        let short = src.windows[0].flows as f64 / f64::from(self.w.secs[0]);
        let base = src.baseline_flows as f64 / f64::from(self.w.baseline_secs);
        out.push((short / base) as f32);
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
