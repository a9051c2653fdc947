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

/// The passes over an input that `review` and `tune` make.
pub mod passes {
    use std::collections::BTreeMap;
    use std::io::Write as _;

    use flowhound_detect::bundle::Bundle;
    use flowhound_detect::Batch;
    use flowhound_source::{Input, ScanEvents, ScanOptions, ScanReport};

    use super::{decision_level, pick, Candidate};
    use crate::feedback::{example, Judgement, TrainingExample};
    use crate::run::RunError;
    use crate::Step;

    /// The flows picked for review, and why.
    #[derive(Debug)]
    pub struct Queue {
        /// Flow number → why it was picked.
        pub chosen: BTreeMap<u64, &'static str>,
        /// The score at the operating point.
        pub level: f32,
    }

    fn scan(
        bundle: &Bundle,
        inputs: &[Input],
        opts: &ScanOptions,
        events: &mut dyn ScanEvents,
        each: &mut impl FnMut(&Batch<'_>) -> Result<(), RunError>,
    ) -> Result<ScanReport, RunError> {
        Ok(crate::scan::score_files(bundle, inputs, opts, events, each)?.0)
    }

    /// First pass: every flow's score (rule alerts raised, nothing
    /// explained); the queue of `count` is picked from all of them, leaving
    /// out the flows `skip` holds.
    pub fn choose(
        bundle: &Bundle,
        step: &mut Step,
        inputs: &[Input],
        opts: &ScanOptions,
        events: &mut dyn ScanEvents,
        count: usize,
        skip: &BTreeMap<u64, Judgement>,
    ) -> Result<(Queue, ScanReport), RunError> {
        let mut seen: Vec<Candidate> = Vec::new();
        let report = scan(bundle, inputs, opts, events, &mut |b: &Batch<'_>| {
            let e = step.run(bundle, b, |_, _| false)?;
            for (r, v) in e.batch(b).iter() {
                seen.push(Candidate::new(seen.len() as u64, r, v));
            }
            Ok(())
        })?;
        let level = decision_level(bundle, &seen);
        let chosen = pick(&seen, level, count, &|f| skip.contains_key(&f));
        Ok((Queue { chosen, level }, report))
    }

    /// How the queue is written.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum QueueFormat {
        /// `detect`'s JSON with `review` saying why.
        Jsonl,
        Table,
    }

    /// Second pass: the chosen flows, explained, written as `format` into
    /// `out`; the number of flows read.
    #[allow(clippy::too_many_arguments, reason = "one pass over one input: each argument is a different part of it")]
    pub fn write(
        bundle: &Bundle,
        step: &mut Step,
        inputs: &[Input],
        opts: &ScanOptions,
        events: &mut dyn ScanEvents,
        q: &Queue,
        format: QueueFormat,
        out: &mut dyn std::io::Write,
    ) -> Result<(u64, ScanReport), RunError> {
        let names = bundle.ensemble.model_names();
        let classes = bundle.ensemble.supervised().map(|s| s.classes.as_slice());
        if format == QueueFormat::Table {
            let head = format!(
                "{:>8} {:<22} {:<20} {:>6} {:>7} {:<8} {:<18} {:<22} {}\n",
                "flow", "why", "src", "dport", "score", "severity", "class", "dst", "reason"
            );
            out.write_all(head.as_bytes()).map_err(|e| RunError::Output(e.into()))?;
        }
        let mut flow = 0u64;
        let report = scan(bundle, inputs, opts, events, &mut |b: &Batch<'_>| {
            let start = flow;
            let e = step.run(bundle, b, |i, _| q.chosen.contains_key(&(start + i as u64)))?;
            let mut buf = Vec::new();
            for (i, (r, v)) in e.batch(b).iter().enumerate() {
                let n = start + i as u64;
                let Some(why) = q.chosen.get(&n) else { continue };
                let f = e.found[i].as_ref();
                match format {
                    QueueFormat::Jsonl => {
                        let mut m = flowhound_explain::json::flow_json(n, r, v, f, None, &names, classes);
                        m.insert("review".into(), (*why).into());
                        let _ = serde_json::to_writer(&mut buf, &serde_json::Value::Object(m));
                        buf.push(b'\n');
                    }
                    QueueFormat::Table => {
                        let opt = |x: Option<String>| x.unwrap_or_else(|| "-".into());
                        let _ = writeln!(
                            buf,
                            "{n:>8} {why:<22} {:<20} {:>6} {:>7.4} {:<8} {:<18} {:<22} {}",
                            opt(r.src.map(|s| s.to_string())),
                            opt(r.dst_port.map(|p| p.to_string())),
                            v.score,
                            v.severity.name(),
                            f.map_or("-", |f| f.class.as_ref()),
                            opt(r.dst.map(|s| s.to_string())),
                            f.map_or("", |f| f.reason.as_str())
                        );
                    }
                }
            }
            flow += b.recs.len() as u64;
            out.write_all(&buf).map_err(|e| RunError::Output(e.into()))
        })?;
        Ok((flow, report))
    }

    /// `tune`'s pass: the judged flows, explained, as training examples;
    /// the number of flows read.
    pub fn examples(
        bundle: &Bundle,
        step: &mut Step,
        inputs: &[Input],
        opts: &ScanOptions,
        events: &mut dyn ScanEvents,
        verdicts: &BTreeMap<u64, Judgement>,
    ) -> Result<(Vec<TrainingExample>, u64, ScanReport), RunError> {
        let nets = flowhound_flow::net::Networks::new(&bundle.features.internal);
        let mut examples = Vec::new();
        let mut flow = 0u64;
        let report = scan(bundle, inputs, opts, events, &mut |b: &Batch<'_>| {
            let start = flow;
            flow += b.recs.len() as u64;
            let judged = |i: usize| verdicts.contains_key(&(start + i as u64));
            if !(0..b.recs.len()).any(judged) {
                // Nothing to explain, but the pairs count every flow.
                step.explainer.observe(b.recs);
                return Ok(());
            }
            let e = step.run(bundle, b, |i, _| judged(i))?;
            let w = b.raw_width();
            for (i, r) in b.recs.iter().enumerate() {
                let Some(v) = verdicts.get(&(start + i as u64)) else { continue };
                examples.push(example(*v, e.found[i].as_ref(), &b.raw[i * w..(i + 1) * w], r, &nets));
            }
            Ok(())
        })?;
        Ok((examples, flow, report))
    }
}
