//! flowhound-explain: from a verdict to something an analyst can act on.
//!
//! - [`Explainer`]: for each flagged flow, the features that made it stand
//!   out (robust deviation from the training baseline, combined with what the
//!   models themselves say: the Isolation Forest's paths, the autoencoder's
//!   per-column reconstruction error, the Random Forest's importances), a
//!   threat class from the rule table ([`rules`]) and a one-sentence reason.
//! - [`incident`]: flagged flows of one class and one actor grouped into incidents.
//! - [`allow`]: the allowlist that marks flows as suppressed (still scored,
//!   still counted, never silently dropped).
//!
//! Definitions: `docs/explain.md`.

pub mod allow;
pub mod incident;
pub mod json;
pub mod rules;
pub mod text;

use std::net::IpAddr;
use std::sync::Arc;

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{Severity, Verdict};
use flowhound_features::pairs::{PairParams, Pairs, PAIR_WIDTH};
use flowhound_features::pipeline::Column;
use flowhound_flow::FlowRecord;
use ndarray::ArrayView2;
use rustc_hash::FxHashMap;

pub use allow::Allowlist;
pub use incident::{Incident, IncidentParams, Incidents};
pub use rules::{Actor, Per, Rule, Rules, Vars, WindowNames};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("threat-class rules: {}", .0.join("; "))]
    Rules(Vec<String>),
    #[error("allowlist: {}", .0.join("; "))]
    Allowlist(Vec<String>),
    #[error("the model's feature settings are unreadable: {0}")]
    Model(String),
    #[error("rows do not match the model: {0}")]
    Shape(String),
}

/// The class of a flagged flow no rule claims.
pub const OTHER: &str = "other_anomaly";

/// A deviation is counted up to this many spreads: one absurd value should
/// not hide every other reason.
const MAX_Z: f32 = 10.0;

/// Deviation given to a category training saw too rarely to have its own
/// column (an unknown protocol, a state never seen).
const RARE_CATEGORY_Z: f32 = 4.0;

/// How long a flagged request is remembered to class its answer, µs.
const PAIR_US: i64 = 600 * 1_000_000;

/// Flagged requests remembered at most.
const RECENT_CAP: usize = 100_000;

/// Makes room among the remembered requests: those older than [`PAIR_US`]
/// go, and if more than half the cap are still that recent, the older half
/// of those too. Leaving the map full made every flagged flow sweep all of it
/// (49 % of `watch`'s time at 100k NetFlow flows/s, 9 % of them flagged);
/// halving it leaves at least `RECENT_CAP / 2` inserts before the next sweep.
fn forget_requests(recent: &mut FxHashMap<FiveTuple, Request>, now: i64) {
    recent.retain(|_, (at, ..)| now - *at <= PAIR_US);
    let keep = RECENT_CAP / 2;
    if recent.len() > keep {
        let mut at: Vec<i64> = recent.values().map(|r| r.0).collect();
        let nth = at.len() - keep;
        let cut = *at.select_nth_unstable(nth).1;
        recent.retain(|_, r| r.0 >= cut);
        if recent.len() > keep + keep / 2 {
            // Many requests at the cut's very time (timestamps in seconds).
            recent.retain(|_, r| r.0 > cut);
        }
    }
}

/// One feature's part in an explanation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Contribution {
    pub feature: Arc<str>,
    /// The flow's value, in the feature's own unit.
    pub value: f32,
    /// The training median (most common category for categorical features).
    pub baseline: f32,
    /// For categorical features, `value` and `baseline` as names (`dns`,
    /// `tcp`): their numbers are codes that mean nothing to a reader.
    pub labels: Option<(Arc<str>, Arc<str>)>,
    /// Signed distance from the baseline in training spreads (after log1p
    /// for counts); 0 when missing.
    pub z: f32,
    /// Share of the explanation, the top features of a flow sum to ≤ 1.
    pub contribution: f32,
}

/// An explained, classified flagged flow. Serializable: a worker group
/// hands findings from the stage that explains to the one keyed by actor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    pub class: Arc<str>,
    pub variant: Option<Arc<str>>,
    pub technique: Option<Arc<str>>,
    /// Who an incident of this finding is about, and which side that is.
    pub actor: Option<IpAddr>,
    pub actor_role: Actor,
    pub reason: String,
    pub explanation: Vec<Contribution>,
    /// The flow answers a flagged request and took its class from it.
    pub answer: bool,
    /// For classes whose incidents gather one peer of the actor
    /// ([`rules::Per`]): the peer address (per pair) and port.
    #[serde(default)]
    pub peer: Option<Peer>,
}

/// An incident's peer: address (none: any) and destination port.
pub type Peer = (Option<IpAddr>, Option<u16>);

/// (src, src port, dst, dst port, protocol); a missing port or protocol is 0.
type FiveTuple = (IpAddr, u16, IpAddr, u16, u8);

/// A flow's 5-tuple, or its answer's (`reverse`); none without addresses.
fn five_tuple(r: &FlowRecord, reverse: bool) -> Option<FiveTuple> {
    let (a, ap, b, bp) =
        if reverse { (r.dst?, r.dst_port, r.src?, r.src_port) } else { (r.src?, r.src_port, r.dst?, r.dst_port) };
    Some((a, ap.unwrap_or(0), b, bp.unwrap_or(0), r.protocol.unwrap_or(0)))
}

/// A classified request remembered for its answer: time (µs), rule,
/// actor, reason, peer.
type Request = (i64, usize, Option<IpAddr>, Arc<str>, Option<Peer>);

/// What an explainer remembers between flows: the flagged requests whose
/// answers take their class, its newest time, and each (source,
/// destination, port) pair's history. A worker group saves it with the
/// partition whose (source, destination) pairs it explains.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    recent: Vec<(FiveTuple, Request)>,
    now: i64,
    pairs: Pairs,
}

/// Per raw feature: how its deviation is measured.
#[derive(Debug, Clone)]
enum Stat {
    Numeric {
        log: bool,
        median: f32,
        spread: f32,
        baseline: f32,
    },
    Category {
        codes: Vec<f32>,
    },
    /// Not used by the model (never happens with a fitted pipeline).
    Unused,
}

#[derive(Debug, Clone)]
struct RuleText {
    class: Arc<str>,
    variant: Option<Arc<str>>,
    technique: Option<Arc<str>>,
}

/// Explainer settings.
#[derive(Debug, Clone)]
pub struct ExplainParams {
    /// Features listed per flow.
    pub top: usize,
}

impl Default for ExplainParams {
    fn default() -> Self {
        ExplainParams { top: 5 }
    }
}

/// Explains and classifies the flagged flows of one model's verdicts.
#[derive(Debug, Clone)]
pub struct Explainer {
    names: Vec<Arc<str>>,
    stats: Vec<Stat>,
    /// Model input column → raw feature.
    column_feature: Vec<usize>,
    /// Random Forest importance per raw feature, when the model has one.
    importance: Option<Vec<f32>>,
    rules: Rules,
    texts: Vec<RuleText>,
    top: usize,
    /// Recently flagged requests by (src, src port, dst, dst port, protocol):
    /// their time, rule, actor and reason, so the answer inherits the class.
    recent: FxHashMap<FiveTuple, Request>,
    now: i64,
    /// The model's internal networks, to tell which side is external.
    nets: flowhound_flow::net::Networks,
    /// Raw indices of `hour_sin` and `hour_cos`, and the usual time of day
    /// (minutes after midnight, UTC) when training traffic has one.
    hours: Option<(usize, usize, Option<u32>)>,
    /// Each (source, destination, port) pair's history: the evidence of
    /// beacons, brute force and long connections.
    pairs: Pairs,
}

/// Most characters of a name from the input a reason may carry.
const MAX_LABEL: usize = 48;

/// A name taken from flow data (a Zeek `service`), safe to print: reasons go
/// to terminals (`--format table`), where a raw escape sequence in a hostile
/// log would rewrite the screen.
fn printable(s: &str) -> Arc<str> {
    flowhound_flow::error::printable(s, MAX_LABEL).into()
}

/// Minutes after midnight as `HH:MM`.
fn clock(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60 % 24, minutes % 60)
}

fn forward(x: f32, log: bool) -> f32 {
    if log {
        x.max(0.0).ln_1p()
    } else {
        x
    }
}

impl Explainer {
    /// An explainer for `bundle` with `rules` (None: the default table).
    /// What it remembers now (see [`Memory`]).
    pub fn memory(&self) -> Memory {
        let mut recent: Vec<(FiveTuple, Request)> = self.recent.iter().map(|(k, v)| (*k, v.clone())).collect();
        // Stable bytes for the same state.
        recent.sort_unstable_by_key(|r| r.0);
        Memory { recent, now: self.now, pairs: self.pairs.clone() }
    }

    /// Continues from a [`Explainer::memory`] of the same model.
    pub fn set_memory(&mut self, m: Memory) {
        self.recent = m.recent.into_iter().collect();
        self.now = m.now;
        self.pairs = m.pairs;
    }

    /// Counts a batch's flows into their pairs (every flow, in input order)
    /// and returns their evidence, [`PAIR_WIDTH`] values a flow, for
    /// [`Explainer::raise`] and [`Explainer::explain`].
    pub fn observe(&mut self, recs: &[FlowRecord]) -> Vec<f32> {
        let mut out = Vec::with_capacity(recs.len() * PAIR_WIDTH);
        let mut e = [0.0f32; PAIR_WIDTH];
        for r in recs {
            self.pairs.observe(r, &mut e);
            out.extend_from_slice(&e);
        }
        out
    }

    pub fn new(bundle: &Bundle, rules: Option<&str>, params: &ExplainParams) -> Result<Self, ExplainError> {
        let p = &bundle.pipeline;
        let names: Vec<&str> = p.input.names().collect();
        let fp = &bundle.features;
        let w = WindowNames::new(&fp.windows, fp.baseline_secs);
        let rules = match rules {
            Some(t) => Rules::parse(t, &names, &w)?,
            None => Rules::default_for(&names, &w)?,
        };
        let mut stats = vec![Stat::Unused; names.len()];
        let mut column_feature = Vec::with_capacity(p.output_width());
        for c in &p.columns {
            match c {
                Column::Numeric { input, log, fill, scale, indicator, .. } => {
                    let baseline = if *log { fill.exp_m1() } else { *fill };
                    stats[*input] = Stat::Numeric { log: *log, median: *fill, spread: *scale, baseline };
                    column_feature.push(*input);
                    if *indicator {
                        column_feature.push(*input);
                    }
                }
                Column::OneHot { input, codes } => {
                    stats[*input] = Stat::Category { codes: codes.clone() };
                    column_feature.extend(std::iter::repeat_n(*input, codes.len() + 1));
                }
            }
        }
        if column_feature.len() != p.output_width() {
            return Err(ExplainError::Shape(format!(
                "pipeline columns make {} inputs, its names {}",
                column_feature.len(),
                p.output_width()
            )));
        }
        let importance = bundle.ensemble.supervised().map(|s| {
            let mut v = vec![0.0f32; names.len()];
            for (c, imp) in s.forest.importance().iter().enumerate() {
                if let Some(&f) = column_feature.get(c) {
                    v[f] += imp;
                }
            }
            v
        });
        let texts = rules
            .rules()
            .iter()
            .map(|r| RuleText {
                class: r.class.as_str().into(),
                variant: r.variant.as_deref().map(Arc::from),
                technique: r.technique.as_deref().map(Arc::from),
            })
            .collect();
        let hours = Self::hours(&names, &stats);
        Ok(Explainer {
            hours,
            names: names.iter().map(|n| Arc::from(*n)).collect(),
            stats,
            column_feature,
            importance,
            rules,
            texts,
            top: params.top,
            recent: FxHashMap::default(),
            now: i64::MIN,
            nets: flowhound_flow::net::Networks::new(&fp.internal),
            pairs: Pairs::new(PairParams::default()),
        })
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Signed deviation of one raw value from its training baseline.
    fn deviation(&self, j: usize, x: f32) -> (f32, f32) {
        match &self.stats[j] {
            Stat::Numeric { log, median, spread, baseline } => {
                if x.is_nan() {
                    return (0.0, *baseline);
                }
                let z = (forward(x, *log) - median) / spread;
                (if z.is_finite() { z.clamp(-MAX_Z, MAX_Z) } else { MAX_Z.copysign(z) }, *baseline)
            }
            Stat::Category { codes } => {
                let base = codes.first().copied().unwrap_or(f32::NAN);
                if x.is_nan() || codes.contains(&x) {
                    (0.0, base)
                } else {
                    (RARE_CATEGORY_Z, base)
                }
            }
            Stat::Unused => (0.0, f32::NAN),
        }
    }

    /// Where the time-of-day features are, and the usual time of day: the
    /// angle of the training medians of sine and cosine, when they are far
    /// enough from the centre to mean one (traffic at every hour puts both
    /// medians near 0).
    fn hours(names: &[&str], stats: &[Stat]) -> Option<(usize, usize, Option<u32>)> {
        let at = |n: &str| names.iter().position(|x| *x == n);
        let (sin, cos) = (at("hour_sin")?, at("hour_cos")?);
        let usual = match (&stats[sin], &stats[cos]) {
            (Stat::Numeric { baseline: s, .. }, Stat::Numeric { baseline: c, .. }) if s.hypot(*c) >= 0.3 => {
                let turn = f64::from(s.atan2(*c)).rem_euclid(std::f64::consts::TAU) / std::f64::consts::TAU;
                Some((turn * 1440.0).round() as u32 % 1440)
            }
            _ => None,
        };
        Some((sin, cos, usual))
    }

    /// A categorical feature's value and baseline by name; a value training
    /// never saw is named from the flow's record, or `other` when it has none.
    fn labels(&self, bundle: &Bundle, j: usize, x: f32, base: f32, r: &FlowRecord) -> Option<(Arc<str>, Arc<str>)> {
        if let Some((sin, cos, usual)) = self.hours {
            if j == sin || j == cos {
                // A sine or cosine of the hour means nothing to a reader; the
                // flow's time of day does.
                let at = r.start.map_or("missing".to_string(), |t| clock((t.secs().rem_euclid(86_400) / 60) as u32));
                return Some((at.into(), usual.map_or("any hour".to_string(), |m| format!("~{}", clock(m))).into()));
            }
        }
        if !matches!(self.stats[j], Stat::Category { .. }) {
            return None;
        }
        let names = &bundle.category_names;
        let label = |v: f32, r| {
            let missing = if v.is_nan() { "missing" } else { "other" };
            printable(
                flowhound_features::flow::category_label(&self.names[j], v, names, r).as_deref().unwrap_or(missing),
            )
        };
        Some((label(x, Some(r)), label(base, None)))
    }

    /// The flows of a batch the vote left normal that a rule raising alerts
    /// on its own ([`rules::RuleSpec::alert`]) classes — and the answers to
    /// such flows (VPC logs each direction: a beacon's replies, a scanned
    /// port's SYN-ACK), which take the request's class when explained —
    /// become `low` anomalies. Returns the batch's verdicts with those
    /// raised (borrowed as they were when none is).
    pub fn raise<'v>(
        &self,
        recs: &[FlowRecord],
        raw: &[f32],
        pair: &[f32],
        verdicts: &'v [Verdict],
    ) -> std::borrow::Cow<'v, [Verdict]> {
        let w = self.names.len();
        // Requests of this batch a raising rule classes, by 5-tuple.
        let mut raising: rustc_hash::FxHashSet<FiveTuple> = rustc_hash::FxHashSet::default();
        let mut hits = Vec::new();
        for (i, v) in verdicts.iter().enumerate() {
            let Some(row) = raw.get(i * w..(i + 1) * w) else { continue };
            let p = pair.get(i * PAIR_WIDTH..(i + 1) * PAIR_WIDTH).unwrap_or(&[]);
            let r = recs.get(i);
            let raises = self.rules.raises(&Vars::new(row, p, v));
            if raises {
                raising.extend(r.and_then(|r| five_tuple(r, false)));
            }
            if v.severity != Severity::None {
                continue;
            }
            let answers = r.is_some_and(|r| {
                let t = r.start.map_or(self.now, |t| t.micros());
                five_tuple(r, true).is_some_and(|k| {
                    raising.contains(&k)
                        || self.recent.get(&k).is_some_and(|(at, rule, ..)| {
                            t - at <= PAIR_US && self.rules.get(*rule).is_some_and(|x| x.alert)
                        })
                })
            });
            if raises || answers {
                hits.push(i);
            }
        }
        if hits.is_empty() {
            return std::borrow::Cow::Borrowed(verdicts);
        }
        let mut owned = verdicts.to_vec();
        for &i in &hits {
            owned[i].severity = Severity::Low;
        }
        std::borrow::Cow::Owned(owned)
    }

    /// Explains the flows of one scored batch for which `want` holds.
    /// `raw` and `input` are the batch's raw feature rows and model input
    /// ([`flowhound_detect::Scorer::last_rows`]), `pair` its pair evidence
    /// ([`Explainer::observe`]; empty: none). Flows must come in input
    /// order across calls (answers are paired with their requests).
    #[allow(clippy::too_many_arguments, reason = "one batch's parallel slices, each checked against the others")]
    pub fn explain(
        &mut self,
        bundle: &Bundle,
        recs: &[FlowRecord],
        verdicts: &[Verdict],
        raw: &[f32],
        pair: &[f32],
        input: &[f32],
        want: impl Fn(usize) -> bool,
    ) -> Result<Vec<Option<Finding>>, ExplainError> {
        let (wr, wi) = (self.names.len(), self.column_feature.len());
        if raw.len() != recs.len() * wr || input.len() != recs.len() * wi || verdicts.len() != recs.len() {
            return Err(ExplainError::Shape(format!(
                "{} flows, {} verdicts, {} raw values ({wr} per row), {} inputs ({wi} per row)",
                recs.len(),
                verdicts.len(),
                raw.len(),
                input.len()
            )));
        }
        let picked: Vec<usize> = (0..recs.len()).filter(|i| want(*i)).collect();
        let mut sub = Vec::with_capacity(picked.len() * wi);
        for &i in &picked {
            sub.extend_from_slice(&input[i * wi..(i + 1) * wi]);
        }
        let sub = ArrayView2::from_shape((picked.len(), wi), &sub).map_err(|e| ExplainError::Shape(e.to_string()))?;
        let attributions = if picked.is_empty() { Vec::new() } else { bundle.ensemble.attributions(sub) };
        let names = bundle.ensemble.model_names();
        let mut out = vec![None; recs.len()];
        for (k, &i) in picked.iter().enumerate() {
            let row = &raw[i * wr..(i + 1) * wr];
            let v = &verdicts[i];
            // Signals, each a distribution over raw features.
            let mut signals: Vec<Vec<f32>> = Vec::with_capacity(4);
            let dev: Vec<(f32, f32)> = row.iter().enumerate().map(|(j, x)| self.deviation(j, *x)).collect();
            signals.push(dev.iter().map(|(z, _)| z.abs()).collect());
            let flagged_by = |name: &str| names.iter().position(|n| *n == name).is_some_and(|m| v.models[m].1);
            let any_flagged = attributions.iter().any(|(n, _)| flagged_by(n));
            for (name, a) in &attributions {
                if any_flagged && !flagged_by(name) {
                    continue;
                }
                let mut s = vec![0.0f32; wr];
                for (c, val) in a.row(k).iter().enumerate() {
                    if val.is_finite() {
                        s[self.column_feature[c]] += val;
                    }
                }
                signals.push(s);
            }
            if let Some(imp) = &self.importance {
                signals.push(imp.iter().zip(&signals[0]).map(|(a, b)| a * b).collect());
            }
            let mut score = vec![0.0f32; wr];
            let mut used = 0.0f32;
            for s in &signals {
                let total: f32 = s.iter().sum();
                if total > 0.0 && total.is_finite() {
                    used += 1.0;
                    score.iter_mut().zip(s).for_each(|(o, v)| *o += v / total);
                }
            }
            let mut order: Vec<usize> = (0..wr).filter(|j| score[*j] > 0.0).collect();
            order.sort_by(|a, b| score[*b].total_cmp(&score[*a]).then(a.cmp(b)));
            order.truncate(self.top);
            let explanation: Vec<Contribution> = order
                .iter()
                .map(|&j| Contribution {
                    feature: self.names[j].clone(),
                    value: row[j],
                    baseline: dev[j].1,
                    labels: self.labels(bundle, j, row[j], dev[j].1, &recs[i]),
                    z: dev[j].0,
                    contribution: score[j] / used.max(1.0),
                })
                .collect();
            let p = pair.get(i * PAIR_WIDTH..(i + 1) * PAIR_WIDTH).unwrap_or(&[]);
            out[i] = Some(self.classify(&recs[i], row, p, v, explanation));
        }
        Ok(out)
    }

    fn classify(
        &mut self,
        r: &FlowRecord,
        row: &[f32],
        pair: &[f32],
        v: &Verdict,
        explanation: Vec<Contribution>,
    ) -> Finding {
        let t = r.start.map_or(self.now, |t| t.micros());
        self.now = self.now.max(t);
        // An answer to a flagged request is part of what the request was.
        let reverse = five_tuple(r, true);
        if let Some((_, rule, actor, reason, peer)) =
            reverse.and_then(|k| self.recent.get(&k)).filter(|(at, ..)| t - at <= PAIR_US).cloned()
        {
            let text = &self.texts[rule];
            return Finding {
                class: text.class.clone(),
                variant: text.variant.clone(),
                technique: text.technique.clone(),
                actor,
                actor_role: self.rules.get(rule).map_or(Actor::Src, |r| r.actor),
                reason: format!("answer to a flagged flow: {reason}"),
                explanation,
                answer: true,
                peer,
            };
        }
        let vars = Vars::new(row, pair, v);
        let Some((i, rule)) = self.rules.classify(&vars) else {
            let reason = generic_reason(&explanation);
            return Finding {
                class: OTHER.into(),
                variant: None,
                technique: None,
                actor: r.src,
                actor_role: Actor::Src,
                reason,
                explanation,
                answer: false,
                peer: None,
            };
        };
        let reason = rule.reason(&vars, r);
        let actor = match rule.actor {
            Actor::Src => r.src,
            Actor::Dst => r.dst,
            Actor::External => {
                let outside = |a: Option<IpAddr>| a.filter(|a| !self.nets.is_internal(*a));
                outside(r.src).or(outside(r.dst)).or(r.src)
            }
        };
        let peer = match rule.per {
            Per::Actor => None,
            // The other side of the actor, and the service.
            Per::Pair if rule.actor == Actor::Dst => Some((r.src, r.dst_port)),
            Per::Pair => Some((r.dst, r.dst_port)),
            Per::Service => Some((None, r.dst_port)),
        };
        if let Some(k) = five_tuple(r, false) {
            if self.recent.len() >= RECENT_CAP {
                forget_requests(&mut self.recent, self.now);
            }
            self.recent.insert(k, (t, i, actor, reason.as_str().into(), peer));
        }
        let text = &self.texts[i];
        Finding {
            class: text.class.clone(),
            variant: text.variant.clone(),
            technique: text.technique.clone(),
            actor,
            actor_role: rule.actor,
            reason,
            explanation,
            answer: false,
            peer,
        }
    }
}

/// The reason of a flow no rule claims: its most telling features.
fn generic_reason(e: &[Contribution]) -> String {
    // A feature at its usual value can still weigh in a model's attribution
    // (the combination is odd), but "external_unseen 0 (usual 0)" tells a
    // reader nothing: the sentence names the features that differ.
    let differs = |c: &&Contribution| match &c.labels {
        Some((v, b)) => v != b,
        None => {
            // Baselines come back from log space a hair off (20.000002 for
            // 20); a missing value (NaN) is never the same.
            let same = (c.value - c.baseline).abs() <= 1e-4 * c.value.abs().max(c.baseline.abs()).max(1.0);
            !same
        }
    };
    let mut parts: Vec<String> = e
        .iter()
        .filter(differs)
        .take(3)
        .map(|c| match &c.labels {
            Some((value, usual)) if c.feature.starts_with("hour_") => {
                format!("time of day {value} UTC (usual {usual})")
            }
            Some((value, usual)) => format!("{} {value} (usual {usual})", c.feature),
            // A missing value (Zeek has no TCP flags) matters through its absence.
            None if c.value.is_nan() => format!("{} missing (usual {})", c.feature, text::human(c.baseline)),
            None => format!("{} {} (usual {})", c.feature, text::human(c.value), text::human(c.baseline)),
        })
        .collect();
    // hour_sin and hour_cos both read as the time of day: say it once.
    let mut seen = std::collections::HashSet::new();
    parts.retain(|p| seen.insert(p.clone()));
    if parts.is_empty() {
        "unusual combination of features".into()
    } else {
        format!("unusual {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(i: usize, at: i64) -> (FiveTuple, Request) {
        let a = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let b = IpAddr::from([203, 0, 113, 9]);
        ((a, (i % 60_000) as u16, b, 443, 6), (at, 0, Some(a), Arc::from("r"), None))
    }

    #[test]
    fn generic_reasons_read_names_units_and_missing_values() {
        let c = |feature: &str, value: f32, baseline: f32, labels: Option<(&str, &str)>| Contribution {
            feature: Arc::from(feature),
            value,
            baseline,
            labels: labels.map(|(v, b)| (Arc::from(v), Arc::from(b))),
            z: 1.0,
            contribution: 0.1,
        };
        let e = [
            c("service", 75_304.0, 4_128_593.0, Some(("irc", "dns"))),
            c("flag_syn", f32::NAN, 1.0, None),
            c("bytes", 2_500_000.0, 800.0, None),
            c("packets", 9.0, 2.0, None),
        ];
        assert_eq!(
            generic_reason(&e),
            "unusual service irc (usual dns), flag_syn missing (usual 1), bytes 2.5M (usual 800)"
        );
        assert_eq!(generic_reason(&[]), "unusual combination of features");
        // At its usual value a feature is left out of the sentence; the two
        // time-of-day features say the time once.
        let e = [
            c("external_unseen", 0.0, 0.0, None),
            c("dst_flows_60s", 20.0, 20.000_002, None),
            c("hour_sin", 0.5, -0.2, Some(("03:10", "~14:00"))),
            c("hour_cos", 0.8, -0.9, Some(("03:10", "~14:00"))),
            c("state", 1.0, 2.0, Some(("SF", "SF"))),
            c("packets", 9.0, 2.0, None),
        ];
        assert_eq!(generic_reason(&e), "unusual time of day 03:10 UTC (usual ~14:00), packets 9 (usual 2)");
        assert_eq!(generic_reason(&e[..1]), "unusual combination of features");
        assert_eq!(clock(0), "00:00");
        assert_eq!(clock(1439), "23:59");
    }

    #[test]
    fn names_from_flow_data_print_safely() {
        assert_eq!(printable("ssl,http").as_ref(), "ssl,http");
        assert_eq!(printable("dns\u{202e}txt").as_ref(), "dns\\u{202e}txt");
        assert_eq!(printable("Überwachung").as_ref(), "Überwachung");
        assert_eq!(printable("\u{1b}[2Jx\ny").as_ref(), "\\u{1b}[2Jx\\ny");
        let long = printable(&"a".repeat(100));
        assert_eq!(long.chars().count(), MAX_LABEL + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn the_usual_time_of_day_is_the_angle_of_the_medians() {
        let num = |baseline: f32| Stat::Numeric { log: false, median: baseline, spread: 1.0, baseline };
        let names = ["bytes", "hour_sin", "hour_cos"];
        // 14:00 is 210° round the clock: sin −0.5, cos −0.866.
        let day = [num(1.0), num(-0.5), num(-0.866)];
        assert_eq!(Explainer::hours(&names, &day), Some((1, 2, Some(14 * 60))));
        // Traffic at every hour: both medians near 0, no usual time.
        let flat = [num(1.0), num(0.1), num(-0.1)];
        assert_eq!(Explainer::hours(&names, &flat), Some((1, 2, None)));
        assert_eq!(Explainer::hours(&names[..2], &day[..2]), None);
    }

    #[test]
    fn forgetting_drops_old_requests_then_the_older_half() {
        let mut m = FxHashMap::default();
        // Older than the pairing window: all go; recent ones stay.
        for i in 0..1000 {
            let (k, v) = request(i, if i < 600 { 0 } else { PAIR_US + 10 });
            m.insert(k, v);
        }
        forget_requests(&mut m, PAIR_US + 20);
        assert_eq!(m.len(), 400);
        // A full map of recent requests, one µs apart: the newer half stays.
        let mut m = FxHashMap::default();
        for i in 0..RECENT_CAP {
            let (k, v) = request(i, i as i64);
            m.insert(k, v);
        }
        forget_requests(&mut m, RECENT_CAP as i64);
        assert_eq!(m.len(), RECENT_CAP / 2);
        assert!(m.values().all(|r| r.0 >= (RECENT_CAP / 2) as i64), "the newer half is kept");
        // All at one second: none can be told apart by age, so they go.
        let mut m = FxHashMap::default();
        for i in 0..RECENT_CAP {
            let (k, v) = request(i, 5_000_000);
            m.insert(k, v);
        }
        forget_requests(&mut m, 5_000_000);
        assert!(m.len() <= RECENT_CAP / 2 + RECENT_CAP / 4, "{}", m.len());
    }
}
