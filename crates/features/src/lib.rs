//! flowhound-features: flow records in, feature rows out.
//!
//! [`Extractor`] writes one row of `f32` per flow: the flow's own features
//! ([`flow`]), context over event-time windows per source and destination
//! ([`context`]), and whether an external address was ever seen in training.
//! [`Pipeline`] is the fitted preprocessing (imputation, log1p, scaling,
//! one-hot) that turns rows into model input. Every feature is defined in
//! `docs/features.md`.
//!
//! The same extractor serves batch (`features`, `train`, `detect`) and, later,
//! streaming: it is fed one flow at a time, in order, and keeps only bounded
//! state.

mod checkpoint;
pub mod context;
pub mod flow;
pub mod pairs;
pub mod pipeline;
pub mod schema;

use std::collections::BTreeMap;
use std::net::IpAddr;

use flowhound_flow::net::Networks;
use flowhound_flow::{Action, FlowRecord};
use ipnet::IpNet;
use rustc_hash::FxHashSet;

pub use context::{Context, Key, Windows};
pub use pipeline::{Pipeline, PipelineParams, Scaling};
pub use schema::{Feature, Kind, Schema};

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("invalid feature settings: {}", .0.join("; "))]
    Params(Vec<String>),
    #[error("{values} values do not make rows of {width} features")]
    Shape { width: usize, values: usize },
    #[error("no valid training rows")]
    Empty,
    #[error("preprocessing was saved by format version {found}; this flowhound reads version {expected}: retrain")]
    Version { found: u64, expected: u32 },
    #[error("preprocessing was fitted on other features (missing here: {}; unknown here: {}): retrain or use the matching flowhound", list(.missing), list(.unexpected))]
    Mismatch { missing: Vec<String>, unexpected: Vec<String> },
    #[error("preprocessing file is corrupt: {0}")]
    Corrupt(String),
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Feature settings, validated by [`ExtractorParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractorParams {
    /// Context window lengths in seconds: 60 s for floods and bursts, 1 h for
    /// slow scans (the Internet scanner in the zeek-conn data touches ~3 ports
    /// a minute but ~40 an hour).
    pub windows: Vec<u32>,
    /// The longer window a source's current rate is compared with.
    pub baseline_secs: u32,
    /// Address ranges counted as internal besides RFC 1918/6598 and ULA.
    pub internal: Vec<IpNet>,
    /// Dataset columns (CIC, UNSW extras) to add as features, by name.
    pub extras: Vec<String>,
}

impl Default for ExtractorParams {
    fn default() -> Self {
        ExtractorParams { windows: vec![60, 3600], baseline_secs: 900, internal: Vec::new(), extras: Vec::new() }
    }
}

/// `--extra` value naming every extra column of the input.
pub const ALL_EXTRAS: &str = "all";

/// Extra columns `--extra all` leaves out: row numbers and clocks.
const NOT_FEATURES: &[&str] = &["id", "uid", "ts", "time", "timestamp", "stime", "ltime", "flow id", "no", "index"];

/// Longest window accepted: a week.
const MAX_WINDOW: u32 = 7 * 86_400;

impl ExtractorParams {
    /// Lists every problem, not the first.
    pub fn check(&self) -> Result<(), FeatureError> {
        let mut p = Vec::new();
        if self.windows.is_empty() || self.windows.len() > context::MAX_WINDOWS {
            p.push(format!("give 1 to {} windows, not {}", context::MAX_WINDOWS, self.windows.len()));
        }
        for w in &self.windows {
            if *w == 0 || *w > MAX_WINDOW {
                p.push(format!("window {w}s must be 1s..=7d"));
            }
        }
        let mut sorted = self.windows.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.windows.len() {
            p.push("windows are listed twice".to_string());
        }
        if let Some(short) = sorted.first() {
            if self.baseline_secs <= *short || self.baseline_secs > MAX_WINDOW {
                p.push(format!(
                    "burst baseline {}s must be longer than the shortest window ({short}s) and at most 7d",
                    self.baseline_secs
                ));
            }
        }
        let mut seen = FxHashSet::default();
        for e in &self.extras {
            if e.trim().is_empty() || !seen.insert(e.as_str()) {
                p.push(format!("extra {e:?} is empty or listed twice"));
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(FeatureError::Params(p))
        }
    }

    /// `--extra all`: every numeric column of the input that flowhound does
    /// not map itself, resolved from the first record ([`ExtractorParams::resolve_all`]).
    pub fn wants_all(&self) -> bool {
        self.extras.len() == 1 && self.extras[0] == ALL_EXTRAS
    }

    /// Replaces `--extra all` with the extra columns `r` carries, less
    /// identifiers and clocks (a row number or a timestamp as a feature
    /// tells a model where a row sits in the file, not what it is).
    /// Returns whether anything changed.
    pub fn resolve_all(&mut self, r: &FlowRecord) -> bool {
        if !self.wants_all() {
            return false;
        }
        let names = r.extra.names.as_deref().unwrap_or_default();
        self.extras = names
            .iter()
            .map(|n| n.to_string())
            .filter(|n| {
                let l = n.trim().to_ascii_lowercase();
                !NOT_FEATURES.contains(&l.as_str()) && !l.ends_with("_id") && !l.ends_with(" id")
            })
            .collect();
        true
    }

    /// The schema an extractor with these settings writes.
    pub fn schema(&self) -> Schema {
        let mut w = self.windows.clone();
        w.sort_unstable();
        let mut features = flow::features(&self.extras);
        features.extend(Context::features(&Windows { secs: w, baseline_secs: self.baseline_secs }));
        features.push(Feature::new("external_unseen", Kind::Binary));
        Schema { features }
    }

    /// Validates and builds an extractor. `known` is the set of external
    /// addresses seen in training (`None` while training: it is being built).
    pub fn build(&self, known: Option<KnownExternal>) -> Result<Extractor, FeatureError> {
        self.check()?;
        let mut secs = self.windows.clone();
        secs.sort_unstable();
        let windows = Windows { secs, baseline_secs: self.baseline_secs };
        let learning = known.is_none();
        let names = [1u8, 6, 17, 58]
            .into_iter()
            .filter_map(|p| flowhound_flow::record::protocol_name(p).map(|n| (u32::from(p), n.to_string())))
            .collect();
        Ok(Extractor {
            schema: self.schema(),
            nets: Networks::new(&self.internal),
            extras: self.extras.clone(),
            context_width: Context::features(&windows).len(),
            context: Context::new(windows),
            known: known.unwrap_or_default(),
            learning,
            learn_now: true,
            names,
            last_codes: [u32::MAX; 2],
            hour_at: self.schema().index("hour_sin"),
            hours_seen: FxHashSet::default(),
            hours_known: None,
            unseen_parts: [false; 2],
        })
    }
}

/// External addresses seen in training: "never seen" is the unknown-IP
/// signal — except for a host and direction that met new external peers
/// all through training (an Internet-facing service receives new sources
/// all day; a proxy opens connections to new servers): there a new peer is
/// normal and the feature says 0. For other hosts (and for the other
/// direction of an open one) it stays the signal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownExternal {
    addrs: FxHashSet<IpAddr>,
    /// (host, inbound) pairs whose new external peers are normal.
    open: FxHashSet<(IpAddr, bool)>,
    /// While training: flows with an external peer, and new peers among
    /// them, per (host, inbound).
    novel: rustc_hash::FxHashMap<(IpAddr, bool), (u32, u32)>,
}

/// Distinct new external peers a host must meet in one direction during
/// training for new peers in that direction to count as normal, and the
/// share of its flows in that direction they must be. The Zeek host (an
/// Internet-facing server) meets ~300 new sources an hour, a third of its
/// inbound flows; the generated bastion host a few among thousands of
/// administrators' sessions.
pub const OPEN_AFTER: u32 = 50;
pub const OPEN_SHARE: f64 = 0.1;

/// Hosts tracked for [`OPEN_AFTER`] at most (training state).
const NOVEL_MAX: usize = 200_000;

/// Addresses remembered at most; beyond this, new ones are not added (the set
/// is saved with the model, so it must stay a reasonable size).
const KNOWN_MAX: usize = 2_000_000;

impl KnownExternal {
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    pub fn contains(&self, a: &IpAddr) -> bool {
        self.addrs.contains(a)
    }

    pub fn insert(&mut self, a: IpAddr) {
        self.learn(a);
    }

    /// Inserts `a` (while under the cap); returns whether it was known
    /// before. One probe instead of `contains` then `insert`.
    fn learn(&mut self, a: IpAddr) -> bool {
        if self.addrs.len() < KNOWN_MAX {
            !self.addrs.insert(a)
        } else {
            self.addrs.contains(&a)
        }
    }

    /// Whether new external peers of `host` in this direction are normal.
    pub fn is_open(&self, host: IpAddr, inbound: bool) -> bool {
        self.open.contains(&(host, inbound))
    }

    /// Marks new peers of `host` in this direction as normal (a loaded model).
    pub fn open(&mut self, host: IpAddr, inbound: bool) {
        self.open.insert((host, inbound));
    }

    /// The open (host, inbound) pairs, sorted (for saving).
    pub fn open_sorted(&self) -> Vec<(IpAddr, bool)> {
        let mut v: Vec<(IpAddr, bool)> = self.open.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// While training: `host` met an external peer in this direction, a
    /// new one when `new`; true once new peers are normal for it: at least
    /// [`OPEN_AFTER`] of them, and at least [`OPEN_SHARE`] of its flows.
    fn met(&mut self, host: IpAddr, inbound: bool, new: bool) -> bool {
        if self.open.contains(&(host, inbound)) {
            return true;
        }
        if self.novel.len() >= NOVEL_MAX && !self.novel.contains_key(&(host, inbound)) {
            return false;
        }
        let (flows, fresh) = self.novel.entry((host, inbound)).or_default();
        *flows += 1;
        *fresh += u32::from(new);
        if *fresh >= OPEN_AFTER && f64::from(*fresh) >= OPEN_SHARE * f64::from(*flows) {
            self.novel.remove(&(host, inbound));
            self.open.insert((host, inbound));
            return true;
        }
        false
    }

    /// The addresses in ascending order (for saving: stable bytes).
    pub fn sorted(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.addrs.iter().copied().collect();
        v.sort_unstable();
        v
    }
}

impl FromIterator<IpAddr> for KnownExternal {
    fn from_iter<I: IntoIterator<Item = IpAddr>>(it: I) -> Self {
        let mut k = KnownExternal::default();
        it.into_iter().for_each(|a| k.insert(a));
        k
    }
}

/// Turns flows, in order, into feature rows. See `docs/features.md`.
#[derive(Debug)]
pub struct Extractor {
    schema: Schema,
    nets: Networks,
    extras: Vec<String>,
    context: Context,
    context_width: usize,
    known: KnownExternal,
    learning: bool,
    learn_now: bool,
    /// Readable names of the category codes written so far (`state`, `service`),
    /// for one-hot column names.
    names: BTreeMap<u32, String>,
    /// The last code of each text category, to skip the name lookup on runs.
    last_codes: [u32; 2],
    /// Position of `hour_sin` (then `hour_cos`) in a row.
    hour_at: Option<usize>,
    /// While training: every (day, hour) the flows cover, as day × 24 + hour.
    hours_seen: FxHashSet<u32>,
    /// Detecting: the hours of day training covered on enough days; the
    /// time-of-day features of a flow in another hour are left empty.
    hours_known: Option<[bool; 24]>,
    /// The last flow's `external_unseen` in its two parts (see
    /// [`Extractor::last_unseen_parts`]).
    unseen_parts: [bool; 2],
}

/// Whose state a column of the row is computed from: what a worker of a
/// group keyed by address owns (docs/scale-out.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The flow alone (and the fitted model): any worker computes it.
    Flow,
    /// The source's windows.
    Src,
    /// The destination's windows.
    Dst,
    /// `external_unseen`: one part from each internal host's evidence
    /// ([`Extractor::last_unseen_parts`]).
    Unseen,
}

/// Days training must cover an hour of day on for the time of day to count
/// there: one day says when that day was busy, not what is usual.
pub const MIN_HOUR_DAYS: u16 = 3;

/// The hour of day (0–23) a row's `hour_sin`, `hour_cos` stand for.
fn hour_of(sin: f32, cos: f32) -> Option<usize> {
    if !(sin.is_finite() && cos.is_finite()) {
        return None;
    }
    let turn = f64::from(sin).atan2(f64::from(cos)).rem_euclid(std::f64::consts::TAU) / std::f64::consts::TAU;
    Some(((turn * 1440.0).round() as usize % 1440) / 60)
}

fn put_ip(e: &mut checkpoint::Enc, a: IpAddr) {
    match a {
        IpAddr::V4(v) => {
            e.u8(4);
            e.bytes(&v.octets());
        }
        IpAddr::V6(v) => {
            e.u8(6);
            e.bytes(&v.octets());
        }
    }
}

fn get_ip(d: &mut checkpoint::Dec<'_>) -> checkpoint::DecResult<IpAddr> {
    match d.u8()? {
        4 => Ok(IpAddr::from(d.bytes::<4>()?)),
        6 => Ok(IpAddr::from(d.bytes::<16>()?)),
        t => Err(format!("address kind {t}")),
    }
}

/// Which hours count, from days covered per hour.
pub fn known_hours(days: &[u16]) -> [bool; 24] {
    let mut k = [false; 24];
    for (h, d) in days.iter().take(24).enumerate() {
        k[h] = *d >= MIN_HOUR_DAYS;
    }
    k
}

/// Empties the time-of-day features of the rows (of `schema`'s width) whose
/// hour `known` does not cover: what training does to its own rows once it
/// knows the coverage, as detection does to every row.
pub fn neutralize_hours(schema: &Schema, rows: &mut [f32], known: &[bool; 24]) {
    let (Some(i), w) = (schema.index("hour_sin"), schema.len()) else { return };
    for r in rows.chunks_exact_mut(w) {
        if hour_of(r[i], r[i + 1]).is_some_and(|h| !known[h]) {
            r[i] = f32::NAN;
            r[i + 1] = f32::NAN;
        }
    }
}

impl Extractor {
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Hosts holding window state now (bounded by activity, not by time).
    pub fn active_hosts(&self) -> usize {
        self.context.active_hosts()
    }

    /// A warning for a run whose inputs were far from time order (at least
    /// 1 % of `flows` late, see [`Context::late_flows`]), else `None`: a few
    /// long connections in a Zeek log are normal and not worth one.
    pub fn order_warning(&self, flows: u64) -> Option<String> {
        let late = self.context.late_flows();
        (late > 0 && late * 100 >= flows).then(|| {
            format!(
                "warning: {late} of {flows} flows ({:.1} %) came more than {} after newer flows of the same host; \
                 inputs not in time order? Their window features count them at the host's newest time, \
                 mixing periods",
                100.0 * late as f64 / flows.max(1) as f64,
                schema::window_suffix(self.context.longest_window_secs()),
            )
        })
    }

    /// The window state and what detection learned of hosts meeting new
    /// external peers ([`KnownExternal`]'s open hosts and their counts), for
    /// [`Extractor::restore`]: `watch` saves it with the input offsets it
    /// covers, so a restart after a crash continues as `detect` would have.
    pub fn checkpoint(&self) -> Vec<u8> {
        let mut out = self.context.checkpoint();
        let windows = out.len() as u64;
        let mut e = checkpoint::Enc::default();
        e.bytes(b"FHNEW");
        let open = self.known.open_sorted();
        e.len(open.len());
        for (a, inbound) in open {
            put_ip(&mut e, a);
            e.u8(u8::from(inbound));
        }
        let mut novel: Vec<_> = self.known.novel.iter().map(|(k, v)| (*k, *v)).collect();
        novel.sort_unstable();
        e.len(novel.len());
        for ((a, inbound), (flows, fresh)) in novel {
            put_ip(&mut e, a);
            e.u8(u8::from(inbound));
            e.u32(flows);
            e.u32(fresh);
        }
        let sum = context::fnv1a(&e.0);
        e.u64(sum);
        out.extend_from_slice(&e.0);
        out.extend_from_slice(&windows.to_le_bytes());
        out
    }

    /// Continues from a [`Extractor::checkpoint`] of an extractor with the
    /// same window settings; on error the state is left as it was.
    pub fn restore(&mut self, b: &[u8]) -> Result<(), FeatureError> {
        let bad = |e: String| FeatureError::Corrupt(format!("window checkpoint: {e}"));
        let (b, len) = b.split_last_chunk::<8>().ok_or_else(|| bad("cut short".into()))?;
        let windows = usize::try_from(u64::from_le_bytes(*len)).ok().filter(|n| *n <= b.len());
        let (ctx, rest) = b.split_at(windows.ok_or_else(|| bad("cut short".into()))?);
        let (body, sum) = rest.split_last_chunk::<8>().ok_or_else(|| bad("cut short".into()))?;
        if context::fnv1a(body) != u64::from_le_bytes(*sum) {
            return Err(bad("damaged (its checksum does not match)".into()));
        }
        let mut d = checkpoint::Dec::new(body);
        let read = |d: &mut checkpoint::Dec<'_>| -> checkpoint::DecResult<_> {
            if &d.bytes::<5>()? != b"FHNEW" {
                return Err("not a host checkpoint".into());
            }
            let mut open = FxHashSet::default();
            for _ in 0..d.len(6)? {
                let a = get_ip(d)?;
                open.insert((a, d.u8()? != 0));
            }
            let mut novel = rustc_hash::FxHashMap::default();
            for _ in 0..d.len(14)? {
                let a = get_ip(d)?;
                let inbound = d.u8()? != 0;
                novel.insert((a, inbound), (d.u32()?, d.u32()?));
            }
            d.end()?;
            Ok((open, novel))
        };
        let (open, novel) = read(&mut d).map_err(bad)?;
        self.context.restore(ctx).map_err(bad)?;
        self.known.open = open;
        self.known.novel = novel;
        Ok(())
    }

    /// While training: days covered per hour of day (UTC) so far.
    pub fn hour_days(&self) -> [u16; 24] {
        let mut d = [0u16; 24];
        for k in &self.hours_seen {
            d[(k % 24) as usize] = d[(k % 24) as usize].saturating_add(1);
        }
        d
    }

    /// Detecting: days training covered per hour of day ([`Extractor::hour_days`]);
    /// hours covered on fewer than [`MIN_HOUR_DAYS`] get empty time-of-day features.
    pub fn set_hour_days(&mut self, days: &[u16]) {
        self.hours_known = Some(known_hours(days));
    }

    /// External addresses seen so far (while training) or in training.
    pub fn known_external(&self) -> &KnownExternal {
        &self.known
    }

    /// While training: whether the next flows' external addresses count as
    /// seen (off for flows known to be attacks, so a benign-only model still
    /// treats the attackers as unknown). No effect on a detecting extractor.
    pub fn learn_addresses(&mut self, on: bool) {
        self.learn_now = on;
    }

    /// While training: counts `a` as seen when it is external (a training
    /// set rebuilt from a model's sample and analyst feedback, where no
    /// record passes through [`Extractor::extract`]).
    pub fn learn_external(&mut self, a: IpAddr) {
        if self.learning && !self.nets.is_internal(a) {
            self.known.insert(a);
        }
    }

    /// While training: new external peers of `host` in this direction are
    /// normal (a retrained model's earlier finding).
    pub fn learn_open(&mut self, host: IpAddr, inbound: bool) {
        if self.learning {
            self.known.open(host, inbound);
        }
    }

    /// Adds readable names for category codes (from an earlier training).
    pub fn add_category_names(&mut self, names: &BTreeMap<u32, String>) {
        for (k, v) in names {
            if self.names.len() < 4096 {
                self.names.entry(*k).or_insert_with(|| v.clone());
            }
        }
    }

    /// Names for category codes, for [`Pipeline::fit`].
    pub fn category_names(&self) -> &BTreeMap<u32, String> {
        &self.names
    }

    /// Appends the row of `r` (the schema's width) to `out`.
    pub fn extract(&mut self, r: &FlowRecord, out: &mut Vec<f32>) {
        let before = out.len();
        flow::extract(r, &self.nets, &self.extras, out);
        if let (Some(t), Some(i)) = (r.start, self.hour_at) {
            let hour = t.secs().div_euclid(3600);
            if self.learning {
                // Bounded: 24 entries a day of traffic.
                if self.hours_seen.len() < 24 * 3660 {
                    self.hours_seen.insert(hour.rem_euclid(24 * 3660 * 24) as u32);
                }
            } else if self.hours_known.is_some_and(|k| !k[hour.rem_euclid(24) as usize]) {
                out[before + i] = f32::NAN;
                out[before + i + 1] = f32::NAN;
            }
        }
        for (i, s) in [r.state.as_deref(), r.service.as_deref()].into_iter().enumerate() {
            let Some(s) = s else { continue };
            let code = flow::category_code(s) as u32;
            if code != self.last_codes[i] && self.names.len() < 4096 {
                self.names.entry(code).or_insert_with(|| s.to_string());
            }
            self.last_codes[i] = code;
        }
        match (r.start, r.src, r.dst) {
            (Some(t), Some(src), Some(dst)) => {
                let key = Key {
                    t: t.micros(),
                    src,
                    dst,
                    dst_port: r.dst_port,
                    bytes: r.bytes.total.unwrap_or(0),
                    packets: r.packets.total.unwrap_or(0),
                    rejected: r.action == Some(Action::Reject),
                    icmp: matches!(r.protocol, Some(1 | 58)),
                };
                self.context.update(&key, out);
            }
            // UNSW-NB15 has no addresses or times: no context to speak of.
            _ => out.extend(std::iter::repeat_n(f32::NAN, self.context_width)),
        }
        out.push(self.unseen(r));
        debug_assert_eq!(out.len() - before, self.schema.len());
    }

    /// Whose state each column of the row comes from, in schema order: the
    /// context block's `src_*` columns are the source's, its `dst_*` ones the
    /// destination's.
    pub fn column_owners(&self) -> Vec<Owner> {
        let n = self.schema.len();
        let context = n - 1 - self.context_width..n - 1;
        self.schema
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| match i {
                _ if i == n - 1 => Owner::Unseen,
                _ if context.contains(&i) && f.name.starts_with("src_") => Owner::Src,
                _ if context.contains(&i) => Owner::Dst,
                _ => Owner::Flow,
            })
            .collect()
    }

    /// The last extracted flow's `external_unseen` in two parts, by whose
    /// evidence decided it: `[0]` an external destination judged on the
    /// source host's state, `[1]` an external source judged on the
    /// destination host's. The row holds their "or"; a worker keyed by
    /// address computes the part of the host it owns.
    pub fn last_unseen_parts(&self) -> [bool; 2] {
        self.unseen_parts
    }

    /// 1 when an external endpoint was never seen in training (while training:
    /// never seen before in the training stream), 0 otherwise.
    fn unseen(&mut self, r: &FlowRecord) -> f32 {
        self.unseen_parts = [false; 2];
        if r.src.is_none() && r.dst.is_none() {
            return f32::NAN;
        }
        let mut unseen = false;
        let learn = self.learning && self.learn_now;
        let reply = matches!((r.src_port, r.dst_port), (Some(s), Some(d)) if s < 1024 && d >= 1024);
        for (a, peer, remote_is_src) in [(r.src, r.dst, true), (r.dst, r.src, false)] {
            let Some(a) = a else { continue };
            if self.nets.is_internal(a) {
                continue;
            }
            let known = if learn { self.known.learn(a) } else { self.known.contains(&a) };
            // The host on the other side, and whether the remote called it
            // (inbound) — a server's answer (from a well-known port to an
            // ephemeral one, VPC logs' second record of a connection) is
            // part of an inbound conversation.
            let inbound = remote_is_src != reply;
            let host = match (r.direction, peer) {
                (Some(d), Some(p)) if (d == flowhound_flow::Direction::Ingress) == remote_is_src => Some((p, inbound)),
                (None, Some(p)) if self.nets.is_internal(p) => Some((p, inbound)),
                _ => None,
            };
            // Detecting too: a host that keeps meeting new peers in this
            // run (an NTP client of a pool, a server first seen here)
            // becomes open after the same evidence training needs; its first
            // strangers still count.
            let normal = match host {
                Some((h, inbound)) if learn || !self.learning => self.known.met(h, inbound, !known),
                _ => false,
            };
            let part = !known && !normal;
            // The source's external peer is judged on the destination host's
            // evidence and the other way round.
            self.unseen_parts[usize::from(remote_is_src)] |= part;
            unseen |= part;
        }
        if unseen {
            1.0
        } else {
            0.0
        }
    }
}
