//! Context features over event-time windows: what a flow's source and
//! destination have been doing in the last minute, hour, …
//!
//! Each window of a host is a ring of [`BUCKETS`] time buckets with running
//! totals: a new flow advances the ring (clearing buckets that fell out) and
//! adds itself to the current bucket, so expiry costs nothing per event.
//! Distinct counts use "last seen" tables — (source, destination) → when
//! last seen, (source, destination port) → when last seen — and per bucket
//! the number of values last seen there: the live buckets' sum is the
//! window's distinct count. Each side has its own pair table (the source's
//! distinct destinations on its clock, the destination's distinct sources on
//! its): a flow costs two probes of them and one of the port table, and
//! every piece of state belongs to one side — what lets a worker keyed by
//! source and one keyed by destination each hold their own
//! (docs/scale-out.md; BENCHMARKS.md has the cost).
//!
//! The work is memory-bound (every flow touches two hosts' state, cold when
//! hosts are many), so the layout is about cache lines: hosts live in flat
//! arrays behind an address index, a host's window totals share one line,
//! buckets are 32 bytes and never straddle one, and the lines a flow will
//! update are loaded first so their misses overlap. BENCHMARKS.md has the
//! designs measured.
//!
//! Memory is bounded by active hosts and by what the windows hold: a host
//! quiet for longer than every window is dropped at the next sweep, and
//! table entries older than every window are pruned once a table has
//! doubled. A window of length W covers the current bucket and the 11
//! before it, between 11/12 W and W of history; all counts within that are
//! exact.
//!
//! Windows include the current flow: the tenth SYN to a tenth port gives
//! `src_distinct_dst_ports = 10`. A destination is "new" for a source when the
//! source has not contacted it within the longest window. Times are event
//! times from the records; a record older than its host's newest (out-of-order
//! input, e.g. Zeek logs written at connection end) is counted at that newest
//! time, each side on its own clock.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};

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
    /// ICMP or ICMPv6: counted apart, so an ICMP flood's count is of ICMP.
    pub icmp: bool,
}

/// Buckets per window.
pub const BUCKETS: usize = 12;

/// Most windows an extractor can have.
pub const MAX_WINDOWS: usize = 4;

/// Totals of one bucket (and, summed over live buckets, of one window), one
/// type per side so each is 32 bytes: a bucket never straddles a cache line.
/// Counters are 32-bit (a window holds at most 4 billion flows of one host).
/// Sums wrap rather than overflow: a hostile byte count cannot panic the
/// extractor, and since every sum is exact modulo 2^64 (2^32), subtracting an
/// expired bucket still restores the total exactly.
trait Sums: Default + Copy {
    fn add(&mut self, o: &Self);
    fn sub(&mut self, o: &Self);
}

/// Implements [`Sums`] field by field with wrapping arithmetic.
macro_rules! sums {
    ($t:ident { $($f:ident),* }) => {
        impl Sums for $t {
            fn add(&mut self, o: &Self) {
                $(self.$f = self.$f.wrapping_add(o.$f);)*
            }

            fn sub(&mut self, o: &Self) {
                $(self.$f = self.$f.wrapping_sub(o.$f);)*
            }
        }
    };
}

#[derive(Debug, Default, Clone, Copy)]
struct SrcSums {
    bytes: u64,
    flows: u32,
    rejected: u32,
    new_dst: u32,
    dsts_last: u32,
    ports_last: u32,
}

sums!(SrcSums { bytes, flows, rejected, new_dst, dsts_last, ports_last });

#[derive(Debug, Default, Clone, Copy)]
struct DstSums {
    bytes: u64,
    /// 64-bit: a flood target can take more than 4 billion packets an hour.
    packets: u64,
    flows: u32,
    rejected: u32,
    srcs_last: u32,
    /// Of `flows`, ICMP ones (fills the struct's last 4 bytes).
    icmp: u32,
}

sums!(DstSums { bytes, packets, flows, rejected, srcs_last, icmp });

/// The burst baseline counts flows only.
impl Sums for u32 {
    fn add(&mut self, o: &Self) {
        *self = self.wrapping_add(*o);
    }

    fn sub(&mut self, o: &Self) {
        *self = self.wrapping_sub(*o);
    }
}

const _: () = assert!(size_of::<SrcSums>() == 32 && size_of::<DstSums>() == 32);

/// The running totals of one host's windows, together in one cache line
/// for up to two windows (a flow reads all of them).
#[derive(Debug, Default, Clone, Copy)]
#[repr(C, align(64))]
struct Totals<T>([T; MAX_WINDOWS]);

/// One window of one host: a ring of buckets. The newest bucket's number is
/// the host's last time / bucket width, so it is not stored.
#[derive(Debug, Default, Clone, Copy)]
#[repr(C, align(64))]
struct Ring<T>([T; BUCKETS]);

impl<T: Sums> Ring<T> {
    /// Moves the ring (whose sum is `total`) from bucket `from` to bucket
    /// `to`, clearing the buckets that leave the window.
    fn advance(&mut self, total: &mut T, from: i64, to: i64) {
        expire(&mut self.0, total, from, to);
    }

    /// Adds `d` to bucket `b` and the total.
    fn add(&mut self, total: &mut T, b: i64, d: &T) {
        self.0[slot(b)].add(d);
        total.add(d);
    }

    /// Moves a peer's or port's "last seen" out of bucket `prev` when the
    /// window (newest bucket `cur`) still holds it.
    fn forget(&mut self, total: &mut T, prev: i64, cur: i64, field: fn(&mut T) -> &mut u32) {
        if live(prev, cur) {
            // A value is only forgotten where it was counted: zero here is a
            // bookkeeping bug (tests run with this check), never input.
            let f = field(&mut self.0[slot(prev)]);
            debug_assert!(*f > 0, "forgetting a value not counted in its bucket");
            *f = f.wrapping_sub(1);
            let f = field(total);
            *f = f.wrapping_sub(1);
        }
    }
}

/// Moves a ring of buckets (whose sum is `total`) from bucket `from` to
/// bucket `to`, clearing the buckets that leave the window.
fn expire<T: Sums>(buckets: &mut [T; BUCKETS], total: &mut T, from: i64, to: i64) {
    if to.saturating_sub(from) >= BUCKETS as i64 {
        // Everything left the window: start afresh (one memset, no sums).
        *buckets = [T::default(); BUCKETS];
        *total = T::default();
        return;
    }
    for b in from + 1..=to {
        let slot = &mut buckets[slot(b)];
        total.sub(slot);
        *slot = T::default();
    }
}

fn slot(b: i64) -> usize {
    b.rem_euclid(BUCKETS as i64) as usize
}

/// Whether bucket `b` is in a window whose newest bucket is `cur`.
fn live(b: i64, cur: i64) -> bool {
    b > cur.saturating_sub(BUCKETS as i64) && b <= cur
}

/// Flows per bucket over the burst baseline: a ring of counts only, in one
/// cache line.
#[derive(Debug, Default, Clone, Copy)]
#[repr(C, align(64))]
struct Counter {
    buckets: [u32; BUCKETS],
    total: u32,
}

impl Counter {
    fn add(&mut self, from: i64, to: i64) {
        expire(&mut self.buckets, &mut self.total, from, to);
        self.buckets[slot(to)].add(&1);
        self.total.add(&1);
    }
}

/// Where a host's state is, and its times.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Index of the host's totals, rings (× windows) and baseline in its
    /// [`RoleState`].
    at: u32,
    /// Newest event time, µs; `i64::MIN` for a host not seen yet.
    last_t: i64,
    /// The sweep epoch the host (re)appeared in: "last seen" entries written
    /// in an earlier epoch belong to an earlier life, dropped by a sweep, and
    /// were never counted in these rings. (Epochs, not times: a late record
    /// can bring a host back at a time before its earlier life ended.)
    born: u32,
}

/// Window state of one role, flat and reused through a free list, so a flow
/// costs one index probe and then loads that can run in parallel.
#[derive(Debug)]
struct RoleState<T> {
    totals: Vec<Totals<T>>,
    /// `n` rings per host, host `at` at `at * n`.
    rings: Vec<Ring<T>>,
    /// Burst baselines (sources only; empty for destinations).
    base: Vec<Counter>,
    with_base: bool,
    free: Vec<u32>,
    n: usize,
}

impl<T: Sums> RoleState<T> {
    /// Loads the lines a flow at `t` will update, so that their cache misses
    /// overlap each other and the table probes instead of coming one by one
    /// (measured +5–15 % on the uniform benchmark, interleaved runs). Plain
    /// loads: a prefetch instruction needs `unsafe` and measured no better.
    fn touch(&self, at: u32, t: i64, widths: &[i64]) {
        let at = at as usize;
        std::hint::black_box(self.totals[at].0[0]);
        for (i, w) in widths.iter().enumerate() {
            std::hint::black_box(self.rings[at * self.n + i].0[slot(t.div_euclid(*w))]);
        }
        if self.with_base {
            std::hint::black_box(self.base[at].total);
        }
    }

    fn alloc(&mut self, epoch: u32) -> Slot {
        let n = self.n;
        let at = match self.free.pop() {
            Some(at) => {
                let i = at as usize;
                self.totals[i] = Totals::default();
                self.rings[i * n..(i + 1) * n].fill(Ring::default());
                if self.with_base {
                    self.base[i] = Counter::default();
                }
                at
            }
            None => {
                let at = self.totals.len() as u32;
                self.totals.push(Totals::default());
                self.rings.extend(std::iter::repeat_n(Ring::default(), n));
                if self.with_base {
                    self.base.push(Counter::default());
                }
                at
            }
        };
        Slot { at, last_t: i64::MIN, born: epoch }
    }
}

/// A map keyed by address, IPv4 under its 32 bits: a smaller entry and a
/// one-multiply hash for the common case.
#[derive(Debug)]
struct AddrMap<V> {
    v4: FxHashMap<u32, V>,
    v6: FxHashMap<Ipv6Addr, V>,
}

impl<V> Default for AddrMap<V> {
    fn default() -> Self {
        AddrMap { v4: FxHashMap::default(), v6: FxHashMap::default() }
    }
}

impl<V> AddrMap<V> {
    fn get_or_insert_with(&mut self, a: IpAddr, f: impl FnOnce() -> V) -> &mut V {
        match a {
            IpAddr::V4(a) => self.v4.entry(a.to_bits()).or_insert_with(f),
            IpAddr::V6(a) => self.v6.entry(a).or_insert_with(f),
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.v4.retain(|_, v| keep(v));
        self.v6.retain(|_, v| keep(v));
    }

    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// Every active host of one role (sources or destinations).
#[derive(Debug)]
struct Side<T> {
    index: AddrMap<Slot>,
    store: RoleState<T>,
}

impl<T: Sums> Side<T> {
    fn new(n: usize, with_base: bool) -> Self {
        let store =
            RoleState { totals: Vec::new(), rings: Vec::new(), base: Vec::new(), with_base, free: Vec::new(), n };
        Side { index: AddrMap::default(), store }
    }

    /// The host's slot (a fresh one when it is not active) and the storage
    /// its slot points into.
    fn host(&mut self, a: IpAddr, epoch: u32) -> (&mut Slot, &mut RoleState<T>) {
        let Side { index, store } = self;
        let slot = index.get_or_insert_with(a, || store.alloc(epoch));
        (slot, store)
    }

    /// Moves the host to time `t` (≥ its newest); returns its window totals,
    /// its rings and its previous time (`None` when new: the rings are
    /// empty, nothing to clear).
    fn advance<'a>(
        slot: &mut Slot,
        store: &'a mut RoleState<T>,
        t: i64,
        widths: &[i64],
    ) -> (&'a mut [T], &'a mut [Ring<T>], Option<i64>) {
        let prev = (slot.last_t != i64::MIN).then_some(slot.last_t);
        slot.last_t = t;
        let (n, at) = (store.n, slot.at as usize);
        let totals = &mut store.totals[at].0[..n];
        let rings = &mut store.rings[at * n..][..n];
        if let Some(p) = prev {
            for ((r, total), w) in rings.iter_mut().zip(totals.iter_mut()).zip(widths) {
                r.advance(total, p.div_euclid(*w), t.div_euclid(*w));
            }
        }
        (totals, rings, prev)
    }

    /// Drops hosts whose newest event is at or before `cutoff`.
    fn sweep(&mut self, cutoff: i64) {
        let free = &mut self.store.free;
        self.index.retain(|s| {
            let keep = s.last_t > cutoff;
            if !keep {
                free.push(s.at);
            }
            keep
        });
    }
}

/// "Last seen" times `V` of values: IPv4 keys packed exactly into a `u64`,
/// anything else under its full key.
#[derive(Debug)]
struct LastSeen<K, V> {
    v4: FxHashMap<u64, V>,
    other: FxHashMap<K, V>,
    /// Entries left by the last prune.
    kept: usize,
}

impl<K, V> Default for LastSeen<K, V> {
    fn default() -> Self {
        LastSeen { v4: FxHashMap::default(), other: FxHashMap::default(), kept: 0 }
    }
}

/// When a value was last seen: on the clock of each side that counts it,
/// and in which sweep epoch.
#[derive(Debug, Clone, Copy)]
struct Stamp<const N: usize> {
    t: [i64; N],
    epoch: u32,
}

/// Entries a table may grow beyond twice the last prune's before pruning.
const PRUNE_SLACK: usize = 4096;

impl<K: Hash + Eq, V: Copy> LastSeen<K, V> {
    /// Sets the value's last time to `t`; returns the previous one.
    fn insert(&mut self, k: Result<u64, K>, t: V) -> Option<V> {
        match k {
            Ok(k) => self.v4.insert(k, t),
            Err(k) => self.other.insert(k, t),
        }
    }

    /// Forgets entries not to `keep` once the table has doubled since the
    /// last prune: amortized O(1) per insert, memory within twice what the
    /// windows hold.
    fn prune(&mut self, keep: impl Fn(&V) -> bool) {
        if self.len() > 2 * self.kept + PRUNE_SLACK {
            self.v4.retain(|_, v| keep(v));
            self.other.retain(|_, v| keep(v));
            self.kept = self.len();
        }
    }

    fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }
}

fn pair_key(src: IpAddr, dst: IpAddr) -> Result<u64, (IpAddr, IpAddr)> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ok(u64::from(s.to_bits()) << 32 | u64::from(d.to_bits())),
        _ => Err((src, dst)),
    }
}

fn port_key(src: IpAddr, port: u16) -> Result<u64, (IpAddr, u16)> {
    match src {
        IpAddr::V4(s) => Ok(u64::from(s.to_bits()) << 16 | u64::from(port)),
        IpAddr::V6(_) => Err((src, port)),
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
    /// Bucket widths per window, µs.
    widths: Vec<i64>,
    baseline_w: i64,
    /// The longest of the windows and the baseline, µs: hosts quiet for this
    /// long are dropped.
    horizon_us: i64,
    /// The longest window, µs.
    longest_us: i64,
    src: Side<SrcSums>,
    dst: Side<DstSums>,
    /// (source, destination) → when last seen on the source's clock (its
    /// distinct destinations), and on the destination's (its distinct
    /// sources): one table per side, so each side's state is its own (a
    /// worker keyed by source or by destination holds it; docs/scale-out.md).
    src_pairs: LastSeen<(IpAddr, IpAddr), Stamp<1>>,
    dst_pairs: LastSeen<(IpAddr, IpAddr), Stamp<1>>,
    /// (source, destination port) → when last seen.
    ports: LastSeen<(IpAddr, u16), Stamp<1>>,
    now: i64,
    /// Sweeps so far (2^32 of them are 2.8·10^14 flows).
    epoch: u32,
    since_sweep: u32,
    /// Flows older than a newer flow of their source or destination by more
    /// than the longest window (see [`Context::late_flows`]).
    late: u64,
}

/// Flows between sweeps for quiet hosts.
const SWEEP_EVERY: u32 = 1 << 16;

impl Context {
    pub fn new(w: Windows) -> Self {
        let widths: Vec<i64> = w.secs.iter().map(|s| (i64::from(*s) * 1_000_000 / BUCKETS as i64).max(1)).collect();
        let baseline_w = (i64::from(w.baseline_secs) * 1_000_000 / BUCKETS as i64).max(1);
        let horizon_us = i64::from(w.secs.iter().copied().chain([w.baseline_secs]).max().unwrap_or(0)) * 1_000_000;
        let longest_us = i64::from(w.secs.iter().copied().max().unwrap_or(0)) * 1_000_000;
        let n = widths.len();
        Context {
            w,
            widths,
            baseline_w,
            horizon_us,
            longest_us,
            src: Side::new(n, true),
            dst: Side::new(n, false),
            src_pairs: LastSeen::default(),
            dst_pairs: LastSeen::default(),
            ports: LastSeen::default(),
            now: i64::MIN,
            epoch: 0,
            since_sweep: 0,
            late: 0,
        }
    }

    /// Flows that came more than the longest window after a newer flow of
    /// the same source or destination. Each side counts a flow at its own
    /// newest time (rings only move forward), which is right for the seconds
    /// to minutes by which logs lag, and for the odd long connection a Zeek
    /// log writes when it ends; many such flows mean inputs not in time
    /// order (a directory of captures read newest first), whose windows
    /// then mix periods — what `features`, `train` and `detect` warn about.
    pub fn late_flows(&self) -> u64 {
        self.late
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
            v.push(Feature::new(format!("dst_icmp_flows_{x}"), Count));
        }
        v.push(Feature::new(
            format!("src_burst_{}_{}", window_suffix(w.secs[0]), window_suffix(w.baseline_secs)),
            Count,
        ));
        v
    }

    /// The longest window, seconds.
    pub fn longest_window_secs(&self) -> u32 {
        (self.longest_us / 1_000_000) as u32
    }

    /// Hosts currently holding state (sources + destinations).
    pub fn active_hosts(&self) -> usize {
        self.src.index.len() + self.dst.index.len()
    }

    /// Entries in the "last seen" tables (pairs + ports).
    pub fn table_entries(&self) -> usize {
        self.src_pairs.len() + self.dst_pairs.len() + self.ports.len()
    }

    /// Adds a flow and appends its context features to `out`.
    pub fn update(&mut self, k: &Key, out: &mut Vec<f32>) {
        self.now = self.now.max(k.t);
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.sweep();
        }
        let (widths, n) = (&self.widths[..], self.widths.len());
        let (ss, sstore) = self.src.host(k.src, self.epoch);
        let (ds, dstore) = self.dst.host(k.dst, self.epoch);
        // Each side counts the flow at its own newest time: rings only move
        // forward.
        let (ts, td) = (k.t.max(ss.last_t), k.t.max(ds.last_t));
        let behind = ts.max(td).saturating_sub(k.t);
        self.late += u64::from(behind > self.longest_us);
        sstore.touch(ss.at, ts, widths);
        dstore.touch(ds.at, td, widths);
        let epoch = self.epoch;
        let pk = pair_key(k.src, k.dst);
        let pair_s = self.src_pairs.insert(pk, Stamp { t: [ts], epoch });
        let pair_d = self.dst_pairs.insert(pk, Stamp { t: [td], epoch });
        let port = k.dst_port.and_then(|p| self.ports.insert(port_key(k.src, p), Stamp { t: [ts], epoch }));
        let (src_totals, src_rings, src_prev) = Side::advance(ss, sstore, ts, widths);
        let (dst_totals, dst_rings, _) = Side::advance(ds, dstore, td, widths);

        // Source side: a pair or port seen in an earlier life of the host was
        // never counted in its rings.
        let pair_s = pair_s.filter(|p| p.epoch >= ss.born).map(|p| p.t[0]);
        let port_s = port.filter(|p| p.epoch >= ss.born).map(|p| p.t[0]);
        let longest = widths[n - 1];
        let new_dst = pair_s.is_none_or(|p| !live(p.div_euclid(longest), ts.div_euclid(longest)));
        let add = SrcSums {
            bytes: k.bytes,
            flows: 1,
            rejected: u32::from(k.rejected),
            new_dst: u32::from(new_dst),
            dsts_last: 1,
            ports_last: u32::from(k.dst_port.is_some()),
        };
        let mut src_w = [SrcSums::default(); MAX_WINDOWS];
        for (((r, total), w), out) in src_rings.iter_mut().zip(src_totals.iter_mut()).zip(widths).zip(&mut src_w) {
            let b = ts.div_euclid(*w);
            if let Some(p) = pair_s {
                r.forget(total, p.div_euclid(*w), b, |x| &mut x.dsts_last);
            }
            if let Some(p) = port_s {
                r.forget(total, p.div_euclid(*w), b, |x| &mut x.ports_last);
            }
            r.add(total, b, &add);
            *out = *total;
        }
        let base = &mut sstore.base[ss.at as usize];
        let bt = ts.div_euclid(self.baseline_w);
        base.add(src_prev.map_or(bt, |p| p.div_euclid(self.baseline_w)), bt);
        // Current rate over the shortest window vs the rate over the baseline:
        // 1 for a steady host, up to baseline/window for a host that just woke.
        let short = f64::from(src_w[0].flows) / f64::from(self.w.secs[0]);
        let burst = (short / (f64::from(base.total) / f64::from(self.w.baseline_secs))) as f32;

        // Destination side.
        let pair_d = pair_d.filter(|p| p.epoch >= ds.born).map(|p| p.t[0]);
        let add = DstSums {
            bytes: k.bytes,
            packets: k.packets,
            flows: 1,
            rejected: u32::from(k.rejected),
            srcs_last: 1,
            icmp: u32::from(k.icmp),
        };
        for (((r, total), w), sw) in dst_rings.iter_mut().zip(dst_totals.iter_mut()).zip(widths).zip(&src_w) {
            let b = td.div_euclid(*w);
            if let Some(p) = pair_d {
                r.forget(total, p.div_euclid(*w), b, |x| &mut x.srcs_last);
            }
            r.add(total, b, &add);
            let dw = &*total;
            out.push(sw.flows as f32);
            out.push(sw.dsts_last as f32);
            out.push(sw.ports_last as f32);
            out.push(sw.rejected as f32 / sw.flows as f32);
            out.push(sw.bytes as f32);
            out.push(sw.new_dst as f32);
            out.push(dw.flows as f32);
            out.push(dw.srcs_last as f32);
            out.push(dw.packets as f32);
            out.push(dw.bytes as f32);
            out.push(dw.rejected as f32 / dw.flows as f32);
            out.push(dw.icmp as f32);
        }
        out.push(burst);
        // Entries this old are outside every window of every host that is not
        // itself older than the sweep horizon. (Should such a host's late
        // record meet a pruned peer, the peer counts twice until its old
        // bucket expires: an overcount, never an underflow.)
        let cutoff = self.now.saturating_sub(self.horizon_us).saturating_sub(self.longest_us);
        self.src_pairs.prune(|s| s.t[0] >= cutoff);
        self.dst_pairs.prune(|s| s.t[0] >= cutoff);
        self.ports.prune(|s| s.t[0] >= cutoff);
    }

    /// Drops hosts whose newest event is older than every window.
    fn sweep(&mut self) {
        self.since_sweep = 0;
        // Hosts created from here on are born in a later epoch than every
        // table entry of the hosts this sweep drops.
        self.epoch += 1;
        let cutoff = self.now.saturating_sub(self.horizon_us);
        self.src.sweep(cutoff);
        self.dst.sweep(cutoff);
    }
}

// ---- checkpoints (`watch` saves the windows with the offsets they cover)

use crate::checkpoint::{Dec, DecResult, Enc};

/// Numbers that go into a checkpoint.
trait Codec: Sized {
    fn put(&self, e: &mut Enc);
    fn get(d: &mut Dec<'_>) -> DecResult<Self>;
}

impl Codec for SrcSums {
    fn put(&self, e: &mut Enc) {
        e.u64(self.bytes);
        for v in [self.flows, self.rejected, self.new_dst, self.dsts_last, self.ports_last] {
            e.u32(v);
        }
    }
    fn get(d: &mut Dec<'_>) -> DecResult<Self> {
        Ok(SrcSums {
            bytes: d.u64()?,
            flows: d.u32()?,
            rejected: d.u32()?,
            new_dst: d.u32()?,
            dsts_last: d.u32()?,
            ports_last: d.u32()?,
        })
    }
}

impl Codec for DstSums {
    fn put(&self, e: &mut Enc) {
        e.u64(self.bytes);
        e.u64(self.packets);
        for v in [self.flows, self.rejected, self.srcs_last, self.icmp] {
            e.u32(v);
        }
    }
    fn get(d: &mut Dec<'_>) -> DecResult<Self> {
        Ok(DstSums {
            bytes: d.u64()?,
            packets: d.u64()?,
            flows: d.u32()?,
            rejected: d.u32()?,
            srcs_last: d.u32()?,
            icmp: d.u32()?,
        })
    }
}

impl Codec for Slot {
    fn put(&self, e: &mut Enc) {
        e.u32(self.at);
        e.i64(self.last_t);
        e.u32(self.born);
    }
    fn get(d: &mut Dec<'_>) -> DecResult<Self> {
        Ok(Slot { at: d.u32()?, last_t: d.i64()?, born: d.u32()? })
    }
}

impl<const N: usize> Codec for Stamp<N> {
    fn put(&self, e: &mut Enc) {
        for t in self.t {
            e.i64(t);
        }
        e.u32(self.epoch);
    }
    fn get(d: &mut Dec<'_>) -> DecResult<Self> {
        let mut t = [0i64; N];
        for x in &mut t {
            *x = d.i64()?;
        }
        Ok(Stamp { t, epoch: d.u32()? })
    }
}

impl Codec for IpAddr {
    fn put(&self, e: &mut Enc) {
        match self {
            IpAddr::V4(a) => {
                e.u8(4);
                e.bytes(&a.octets());
            }
            IpAddr::V6(a) => {
                e.u8(6);
                e.bytes(&a.octets());
            }
        }
    }
    fn get(d: &mut Dec<'_>) -> DecResult<Self> {
        match d.u8()? {
            4 => Ok(IpAddr::from(d.bytes::<4>()?)),
            6 => Ok(IpAddr::from(d.bytes::<16>()?)),
            t => Err(format!("address tag {t}")),
        }
    }
}

impl Codec for (IpAddr, IpAddr) {
    fn put(&self, e: &mut Enc) {
        self.0.put(e);
        self.1.put(e);
    }
    fn get(d: &mut Dec<'_>) -> DecResult<Self> {
        Ok((IpAddr::get(d)?, IpAddr::get(d)?))
    }
}

impl Codec for (IpAddr, u16) {
    fn put(&self, e: &mut Enc) {
        self.0.put(e);
        e.u16(self.1);
    }
    fn get(d: &mut Dec<'_>) -> DecResult<Self> {
        Ok((IpAddr::get(d)?, d.u16()?))
    }
}

impl Codec for u64 {
    fn put(&self, e: &mut Enc) {
        e.u64(*self);
    }
    fn get(d: &mut Dec<'_>) -> DecResult<Self> {
        d.u64()
    }
}

fn put_map<K: Codec, V: Codec>(e: &mut Enc, m: &FxHashMap<K, V>) {
    e.len(m.len());
    for (k, v) in m {
        k.put(e);
        v.put(e);
    }
}

fn get_map<K: Codec + Hash + Eq, V: Codec>(d: &mut Dec<'_>, min_item: usize) -> DecResult<FxHashMap<K, V>> {
    let n = d.len(min_item)?;
    let mut m = FxHashMap::default();
    m.reserve(n);
    for _ in 0..n {
        let k = K::get(d)?;
        m.insert(k, V::get(d)?);
    }
    Ok(m)
}

impl<T: Sums + Codec> Side<T> {
    fn save(&self, e: &mut Enc) {
        e.len(self.index.v4.len());
        for (k, v) in &self.index.v4 {
            e.u32(*k);
            v.put(e);
        }
        e.len(self.index.v6.len());
        for (k, v) in &self.index.v6 {
            e.bytes(&k.octets());
            v.put(e);
        }
        let s = &self.store;
        e.len(s.totals.len());
        for t in &s.totals {
            for x in &t.0[..s.n] {
                x.put(e);
            }
        }
        for r in &s.rings {
            for x in &r.0 {
                x.put(e);
            }
        }
        for c in &s.base {
            for b in c.buckets {
                e.u32(b);
            }
            e.u32(c.total);
        }
        e.len(s.free.len());
        for f in &s.free {
            e.u32(*f);
        }
    }

    fn load(d: &mut Dec<'_>, n: usize, with_base: bool) -> DecResult<Self> {
        let mut side = Side::new(n, with_base);
        for _ in 0..d.len(20)? {
            let k = d.u32()?;
            side.index.v4.insert(k, Slot::get(d)?);
        }
        for _ in 0..d.len(32)? {
            let k = Ipv6Addr::from(d.bytes::<16>()?);
            side.index.v6.insert(k, Slot::get(d)?);
        }
        let hosts = d.len(n * 24)?;
        let s = &mut side.store;
        for _ in 0..hosts {
            let mut t = Totals::<T>::default();
            for x in &mut t.0[..n] {
                *x = T::get(d)?;
            }
            s.totals.push(t);
        }
        for _ in 0..hosts * n {
            let mut r = Ring::<T>::default();
            for x in &mut r.0 {
                *x = T::get(d)?;
            }
            s.rings.push(r);
        }
        if with_base {
            for _ in 0..hosts {
                let mut c = Counter::default();
                for b in &mut c.buckets {
                    *b = d.u32()?;
                }
                c.total = d.u32()?;
                s.base.push(c);
            }
        }
        for _ in 0..d.len(4)? {
            s.free.push(d.u32()?);
        }
        // Every index must point into the store: a corrupt checkpoint must
        // fail here, not as an out-of-bounds panic on the next flow.
        let inside = |at: u32| (at as usize) < hosts;
        if !side.index.v4.values().chain(side.index.v6.values()).all(|s| inside(s.at))
            || !side.store.free.iter().all(|a| inside(*a))
        {
            return Err("a host points outside the window state".into());
        }
        Ok(side)
    }
}

/// FNV-1a over a checkpoint (a guard against damage, not an attacker: the
/// state directory is the user's own).
pub(crate) fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| (h ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3))
}

/// Format of [`Context::checkpoint`].
const CHECKPOINT_VERSION: u32 = 3;

impl Context {
    /// The whole window state, to continue exactly where it stands with
    /// [`Context::restore`] (same window settings).
    pub fn checkpoint(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.bytes(b"FHWIN");
        e.u32(CHECKPOINT_VERSION);
        e.len(self.w.secs.len());
        for s in &self.w.secs {
            e.u32(*s);
        }
        e.u32(self.w.baseline_secs);
        e.i64(self.now);
        e.u32(self.epoch);
        e.u32(self.since_sweep);
        e.u64(self.late);
        self.src.save(&mut e);
        self.dst.save(&mut e);
        for pairs in [&self.src_pairs, &self.dst_pairs] {
            e.u64(pairs.kept as u64);
            put_map(&mut e, &pairs.v4);
            put_map(&mut e, &pairs.other);
        }
        e.u64(self.ports.kept as u64);
        put_map(&mut e, &self.ports.v4);
        put_map(&mut e, &self.ports.other);
        let sum = fnv1a(&e.0);
        e.u64(sum);
        e.0
    }

    /// Replaces the window state with a checkpoint's; refuses one of other
    /// window settings, another version, or bytes that do not read whole.
    pub fn restore(&mut self, b: &[u8]) -> Result<(), String> {
        // A flipped bit could still decode into numbers that break the
        // rings' bookkeeping: the sum over every byte comes first.
        let (b, sum) = b.split_last_chunk::<8>().ok_or("cut short")?;
        if fnv1a(b) != u64::from_le_bytes(*sum) {
            return Err("damaged (its checksum does not match)".into());
        }
        let mut d = Dec::new(b);
        if &d.bytes::<5>()? != b"FHWIN" {
            return Err("not a window checkpoint".into());
        }
        let v = d.u32()?;
        if v != CHECKPOINT_VERSION {
            return Err(format!("checkpoint version {v}, this flowhound reads {CHECKPOINT_VERSION}"));
        }
        let secs: Vec<u32> = (0..d.len(4)?).map(|_| d.u32()).collect::<DecResult<_>>()?;
        let baseline = d.u32()?;
        if secs != self.w.secs || baseline != self.w.baseline_secs {
            return Err(format!(
                "the checkpoint's windows ({secs:?} s, baseline {baseline} s) are not the model's ({:?} s, baseline {} s)",
                self.w.secs, self.w.baseline_secs
            ));
        }
        let n = self.widths.len();
        let mut c = Context::new(self.w.clone());
        c.now = d.i64()?;
        c.epoch = d.u32()?;
        c.since_sweep = d.u32()?;
        c.late = d.u64()?;
        c.src = Side::load(&mut d, n, true)?;
        c.dst = Side::load(&mut d, n, false)?;
        for pairs in [&mut c.src_pairs, &mut c.dst_pairs] {
            pairs.kept = usize::try_from(d.u64()?).unwrap_or(usize::MAX);
            pairs.v4 = get_map(&mut d, 20)?;
            pairs.other = get_map(&mut d, 22)?;
        }
        c.ports.kept = usize::try_from(d.u64()?).unwrap_or(usize::MAX);
        c.ports.v4 = get_map(&mut d, 20)?;
        c.ports.other = get_map(&mut d, 19)?;
        d.end()?;
        *self = c;
        Ok(())
    }
}
