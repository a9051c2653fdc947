//! The review queue: the flows whose verdict would teach the model most —
//! half the most anomalous (is the top of the list right?), the rest
//! nearest the operating point, on either side, at most [`PER_KEY`] per
//! source (or, without addresses, per kind of flow) while others are left,
//! so one busy host or one kind of attack does not fill it (active anomaly
//! discovery, Das et al. 2016, in its simplest form). `flowhound review`
//! picks from every scored flow; the dashboard from an analysis' anomalies.

use std::collections::{BTreeMap, HashMap};

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{Severity, Verdict};
use flowhound_flow::FlowRecord;

/// Candidates per source (or kind) while others are left.
pub const PER_KEY: usize = 2;

/// Why a flow is in the queue.
pub const TOP: &str = "most anomalous";
pub const NEAR: &str = "at the operating point";

/// One candidate: flow number, ensemble score, anomalous, diversity key.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub flow: u64,
    pub score: f32,
    pub anomalous: bool,
    pub key: u64,
}

/// What the queue spreads over: the source address, or the flow's kind
/// (protocol, service, state) when it has none.
pub fn diversity_key(src: Option<&str>, kind: (Option<u8>, Option<&str>, Option<&str>)) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same flows give the same queue.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match src {
        Some(a) => a.hash(&mut h),
        None => kind.hash(&mut h),
    }
    h.finish()
}

impl Candidate {
    /// A scored flow as the queue sees it (`v`: after the rules).
    pub fn new(flow: u64, r: &FlowRecord, v: &Verdict) -> Candidate {
        let src = r.src.map(|a| a.to_string());
        let key = diversity_key(src.as_deref(), (r.protocol, r.service.as_deref(), r.state.as_deref()));
        Candidate { flow, score: v.score, anomalous: v.severity != Severity::None, key }
    }
}

/// Where the operating point sits on the ensemble `score`: the budget's
/// level, the stacked probability's 1/2 with a forest, else between the
/// highest normal and the lowest anomalous score seen.
pub fn decision_level(bundle: &Bundle, seen: &[Candidate]) -> f32 {
    if bundle.ensemble.supervised().is_some_and(|s| s.stack.is_some()) {
        return 0.5;
    }
    if let Some(op) = bundle.ensemble.operating_point() {
        return op.level;
    }
    let lo = seen.iter().filter(|s| s.anomalous).map(|s| s.score).fold(f32::INFINITY, f32::min);
    let hi = seen.iter().filter(|s| !s.anomalous).map(|s| s.score).fold(f32::NEG_INFINITY, f32::max);
    if lo.is_finite() && hi.is_finite() {
        (lo + hi) / 2.0
    } else {
        lo.min(hi)
    }
}

/// Picks `k` flows around the decision `level` (on the score's scale),
/// leaving out `skip`; returns flow → why.
pub fn pick(seen: &[Candidate], level: f32, k: usize, skip: &dyn Fn(u64) -> bool) -> BTreeMap<u64, &'static str> {
    let mut chosen = BTreeMap::new();
    let mut per_key: HashMap<u64, usize> = HashMap::new();
    let mut take =
        |order: &[&Candidate], n: usize, cap: usize, why: &'static str, chosen: &mut BTreeMap<u64, &'static str>| {
            let mut got = 0;
            for c in order {
                if got >= n {
                    break;
                }
                if skip(c.flow) || chosen.contains_key(&c.flow) {
                    continue;
                }
                let used = per_key.entry(c.key).or_default();
                if *used >= cap {
                    continue;
                }
                *used += 1;
                chosen.insert(c.flow, why);
                got += 1;
            }
        };
    let mut top: Vec<&Candidate> = seen.iter().collect();
    top.sort_by(|a, b| b.anomalous.cmp(&a.anomalous).then(b.score.total_cmp(&a.score)).then(a.flow.cmp(&b.flow)));
    take(&top, k.div_ceil(2), PER_KEY, TOP, &mut chosen);
    let mut near: Vec<&Candidate> = seen.iter().filter(|c| c.score.is_finite()).collect();
    near.sort_by(|a, b| (a.score - level).abs().total_cmp(&(b.score - level).abs()).then(a.flow.cmp(&b.flow)));
    let left = k.saturating_sub(chosen.len());
    take(&near, left, PER_KEY, NEAR, &mut chosen);
    // Few sources (one capture, one host): fill the queue past the cap.
    let left = k.saturating_sub(chosen.len());
    take(&near, left, usize::MAX, NEAR, &mut chosen);
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_from_the_top_half_at_the_level_two_per_source() {
        // Source 1 owns the ten highest scores; others spread below.
        let seen: Vec<Candidate> = (0..100u64)
            .map(|f| Candidate {
                flow: f,
                score: 1.0 - f as f32 / 100.0,
                anomalous: f < 30,
                key: if f < 10 { 1 } else { f },
            })
            .collect();
        let q = pick(&seen, 0.705, 10, &|f| f == 11);
        assert_eq!(q.len(), 10);
        let top: Vec<u64> = q.iter().filter(|(_, w)| **w == TOP).map(|(f, _)| *f).collect();
        // Two of source 1, then the next sources; flow 11 was judged already.
        assert_eq!(top, [0, 1, 10, 12, 13]);
        let near: Vec<u64> = q.iter().filter(|(_, w)| **w == NEAR).map(|(f, _)| *f).collect();
        assert_eq!(near, [28, 29, 30, 31, 32], "nearest 0.705 on both sides");
        // One source only: the queue still fills.
        let one: Vec<Candidate> = seen.iter().map(|c| Candidate { key: 7, ..*c }).collect();
        assert_eq!(pick(&one, 0.5, 10, &|_| false).len(), 10);
    }
}
