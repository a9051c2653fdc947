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
        })
    }
}

/// External addresses seen in training: "never seen" is the unknown-IP signal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownExternal {
    addrs: FxHashSet<IpAddr>,
}

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

    /// The window state, for [`Extractor::restore`]: `watch` saves it with
    /// the input offsets it covers, so a restart after a crash continues
    /// with the windows `detect` would have.
    pub fn checkpoint(&self) -> Vec<u8> {
        self.context.checkpoint()
    }

    /// Continues from a [`Extractor::checkpoint`] of an extractor with the
    /// same window settings; on error the state is left as it was.
    pub fn restore(&mut self, b: &[u8]) -> Result<(), FeatureError> {
        self.context.restore(b).map_err(|e| FeatureError::Corrupt(format!("window checkpoint: {e}")))
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
                };
                self.context.update(&key, out);
            }
            // UNSW-NB15 has no addresses or times: no context to speak of.
            _ => out.extend(std::iter::repeat_n(f32::NAN, self.context_width)),
        }
        out.push(self.unseen(r));
        debug_assert_eq!(out.len() - before, self.schema.len());
    }

    /// 1 when an external endpoint was never seen in training (while training:
    /// never seen before in the training stream), 0 otherwise.
    fn unseen(&mut self, r: &FlowRecord) -> f32 {
        if r.src.is_none() && r.dst.is_none() {
            return f32::NAN;
        }
        let mut unseen = false;
        for a in [r.src, r.dst].into_iter().flatten() {
            if !self.nets.is_internal(a) {
                let known = if self.learning && self.learn_now { self.known.learn(a) } else { self.known.contains(&a) };
                unseen |= !known;
            }
        }
        if unseen {
            1.0
        } else {
            0.0
        }
    }
}
