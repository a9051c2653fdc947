//! Incidents: flagged flows of one threat class and one actor (the scanner,
//! the flooded host, the exfiltrating host, …), close together in event
//! time, reported as one thing with its extent and its strongest evidence.

use std::net::IpAddr;
use std::sync::Arc;

use flowhound_detect::{Severity, Verdict};
use flowhound_flow::FlowRecord;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::{Actor, Contribution, Finding};

/// Grouping settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IncidentParams {
    /// A flow joins its class and actor's open incident when it comes in
    /// the incident's period, or at most this long after its last flow;
    /// otherwise a new one opens.
    pub gap_secs: u32,
    /// The period an incident covers (UTC, from midnight; 0: the gap alone):
    /// a scanner is one incident for the day, its count and extent updated,
    /// however it pauses. Live, an incident ends once its period is over
    /// and it has been quiet for the gap.
    pub period_secs: u32,
    /// Flows kept as samples per incident (the first ones).
    pub samples: usize,
    /// Most member flow positions kept per incident (`flows` still counts
    /// all): a live incident of a week-long flood must not grow without end.
    pub max_members: usize,
}

impl Default for IncidentParams {
    fn default() -> Self {
        IncidentParams { gap_secs: 900, period_secs: 86_400, samples: 5, max_members: usize::MAX }
    }
}

/// One flow kept as evidence.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Position of the flow in the input (0-based).
    pub flow: u64,
    pub time: Option<i64>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub protocol: Option<u8>,
    pub score: f32,
}

/// An incident.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    /// 1-based rank after sorting (severity, then score).
    pub id: u64,
    pub class: Arc<str>,
    /// Variant of the strongest flow.
    pub variant: Option<Arc<str>>,
    pub technique: Option<Arc<str>>,
    pub actor: Option<IpAddr>,
    pub actor_role: Actor,
    /// The one peer a beacon or brute-force incident gathers ([`crate::Per`]).
    #[serde(default)]
    pub peer: Option<crate::Peer>,
    /// Event time of the first and last flow, µs (None without timestamps).
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub flows: u64,
    /// Peers of the actor (destinations of a source actor and vice versa).
    pub targets: FxHashSet<IpAddr>,
    pub ports: FxHashSet<u16>,
    pub bytes: u64,
    pub peak_severity: Severity,
    pub max_score: f32,
    /// The highest confidence among its flows.
    pub confidence: f32,
    /// Reason and explanation of the strongest flow.
    pub reason: String,
    pub explanation: Vec<Contribution>,
    pub samples: Vec<Sample>,
    /// Every flow of it (input positions, in input order per part), for
    /// feedback on the whole incident.
    pub members: Vec<u64>,
    /// Flows of it an allowlist entry covers.
    pub suppressed: u64,
    last_t: i64,
    /// Weak incidents of the same actor folded in: class → flows.
    pub absorbed: std::collections::BTreeMap<Arc<str>, u64>,
    /// A single low-severity `other_anomaly` flow: counted in the digest,
    /// browsable, but not an alert.
    pub digest: bool,
    /// The severity last sent to the alert sinks (`None`: never sent).
    pub alerted: Severity,
    /// (not an answer, score) of the flow whose story is told.
    best: (bool, f32),
    /// Grown since [`Incidents::take_touched`] last looked.
    touched: bool,
}

impl Incident {
    /// Folds a weak incident of the same actor into this one.
    fn absorb(&mut self, w: Incident, max_members: usize) {
        self.flows += w.flows;
        let room = max_members.saturating_sub(self.members.len());
        self.members.extend(w.members.into_iter().take(room));
        self.suppressed += w.suppressed;
        self.bytes += w.bytes;
        self.targets.extend(w.targets);
        self.ports.extend(w.ports);
        self.peak_severity = self.peak_severity.max(w.peak_severity);
        self.confidence = self.confidence.max(w.confidence);
        self.max_score = self.max_score.max(w.max_score);
        self.first_seen = self.first_seen.min(w.first_seen).or(w.first_seen);
        self.last_seen = self.last_seen.max(w.last_seen);
        *self.absorbed.entry(w.class.clone()).or_default() += w.flows;
    }
}

/// Whether two incidents overlap or touch within `gap` (µs) of event time.
fn near(a: &Incident, b: &Incident, gap: i64) -> bool {
    match (a.first_seen, a.last_seen, b.first_seen, b.last_seen) {
        (Some(af), Some(al), Some(bf), Some(bl)) => af <= bl + gap && bf <= al + gap,
        _ => false,
    }
}

/// A single low-severity flow no rule names: the digest, not an alert.
fn is_digest(inc: &Incident) -> bool {
    &*inc.class == crate::OTHER && inc.flows == 1 && inc.peak_severity <= Severity::Low
}

/// Whether a class is what a flow is called before its context shows more.
fn is_weak(class: &str) -> bool {
    class == WEAK_FIRST_CONTACT || class == crate::OTHER
}

/// The class of first contact with an unknown address.
const WEAK_FIRST_CONTACT: &str = "unknown_ip";

/// What one incident gathers: class, actor, peer.
type IncidentKey = (Arc<str>, Option<IpAddr>, Option<crate::Peer>);

/// Builds incidents from flagged flows, in input order.
/// Serializable: a worker group checkpoints the open incidents of a
/// partition with the stream position they cover.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Incidents {
    params: IncidentParams,
    /// Open incidents by class, actor and peer (beacons gather one peer).
    open: FxHashMap<IncidentKey, usize>,
    list: Vec<Incident>,
    /// Live ids, in order of opening (batch ids are ranks, set at the end).
    opened: u64,
}

impl Incidents {
    pub fn new(params: IncidentParams) -> Self {
        Incidents { params, ..Default::default() }
    }

    /// Adds a flagged flow with its finding.
    pub fn push(&mut self, flow: u64, r: &FlowRecord, v: &Verdict, f: &Finding, suppressed: bool) {
        let t = r.start.map(|t| t.micros());
        let key = (f.class.clone(), f.actor, f.peer);
        let gap = i64::from(self.params.gap_secs) * 1_000_000;
        let period = self.period_us();
        let joins = self.open.get(&key).copied().filter(|&i| match (t, self.list[i].first_seen) {
            (Some(t), first) => {
                t - self.list[i].last_t <= gap
                    || (period > 0 && first.is_some_and(|f| f.div_euclid(period) == t.div_euclid(period)))
            }
            (None, _) => true,
        });
        let i = match joins {
            Some(i) => i,
            None => {
                self.opened += 1;
                self.list.push(Incident {
                    id: self.opened,
                    class: f.class.clone(),
                    variant: f.variant.clone(),
                    technique: f.technique.clone(),
                    actor: f.actor,
                    actor_role: f.actor_role,
                    peer: f.peer,
                    first_seen: t,
                    last_seen: t,
                    flows: 0,
                    targets: FxHashSet::default(),
                    ports: FxHashSet::default(),
                    bytes: 0,
                    peak_severity: Severity::None,
                    max_score: f32::NEG_INFINITY,
                    confidence: 0.0,
                    reason: String::new(),
                    explanation: Vec::new(),
                    samples: Vec::new(),
                    members: Vec::new(),
                    suppressed: 0,
                    last_t: t.unwrap_or(i64::MIN),
                    best: (false, f32::NEG_INFINITY),
                    absorbed: Default::default(),
                    digest: false,
                    alerted: Severity::None,
                    touched: false,
                });
                self.open.insert(key, self.list.len() - 1);
                self.list.len() - 1
            }
        };
        let inc = &mut self.list[i];
        inc.flows += 1;
        inc.touched = true;
        if inc.members.len() < self.params.max_members {
            inc.members.push(flow);
        }
        inc.suppressed += u64::from(suppressed);
        if let Some(t) = t {
            inc.first_seen = Some(inc.first_seen.map_or(t, |f| f.min(t)));
            inc.last_seen = Some(inc.last_seen.map_or(t, |l| l.max(t)));
            inc.last_t = inc.last_t.max(t);
        }
        // The peer of the actor: for a destination actor, the sources.
        let peer = if inc.actor == r.dst && r.dst.is_some() { r.src } else { r.dst };
        if let Some(p) = peer {
            inc.targets.insert(p);
        }
        // The service port: an answer's is its source port.
        if let Some(p) = if f.answer { r.src_port } else { r.dst_port } {
            inc.ports.insert(p);
        }
        inc.bytes += r.bytes.total.unwrap_or(0);
        inc.peak_severity = inc.peak_severity.max(v.severity);
        inc.confidence = inc.confidence.max(v.confidence);
        inc.max_score = inc.max_score.max(v.score);
        // The story is told by the strongest request; an answer only when
        // nothing else is known.
        let key = (!f.answer, v.score);
        if inc.reason.is_empty() || key > inc.best {
            inc.best = key;
            inc.variant = f.variant.clone();
            inc.technique = f.technique.clone();
            inc.reason = f.reason.clone();
            inc.explanation = f.explanation.clone();
        }
        if inc.samples.len() < self.params.samples {
            inc.samples.push(Sample {
                flow,
                time: t,
                src: r.src,
                dst: r.dst,
                src_port: r.src_port,
                dst_port: r.dst_port,
                protocol: r.protocol,
                score: v.score,
            });
        }
    }

    /// Live use: the classed incidents that grew since the last call, as they
    /// stand now (weak ones, `unknown_ip` and `other_anomaly`, wait for
    /// [`Incidents::close_idle`]: most are the first flows of something their
    /// context names a moment later).
    pub fn take_touched(&mut self) -> Vec<Incident> {
        let mut out = Vec::new();
        for inc in &mut self.list {
            if std::mem::take(&mut inc.touched) && !is_weak(&inc.class) {
                out.push(inc.clone());
            }
        }
        out
    }

    /// Live use: the classed incidents to send to the alert sinks now —
    /// those never sent, and those whose severity grew since they were —
    /// marked as sent. An incident growing in count alone is updated where
    /// it is shown, not re-alerted.
    pub fn take_alerts(&mut self) -> Vec<Incident> {
        let mut out = Vec::new();
        for inc in &mut self.list {
            if !is_weak(&inc.class) && inc.peak_severity > inc.alerted {
                inc.alerted = inc.peak_severity;
                out.push(inc.clone());
            }
        }
        out
    }

    fn period_us(&self) -> i64 {
        i64::from(self.params.period_secs) * 1_000_000
    }

    /// Keeps at most `n` member flow positions per incident from now on.
    pub fn limit_members(&mut self, n: usize) {
        self.params.max_members = n;
    }

    /// The grouping settings.
    pub fn params(&self) -> &IncidentParams {
        &self.params
    }

    /// Quiet time that ends an incident.
    pub fn gap_secs(&self) -> u32 {
        self.params.gap_secs
    }

    /// Incidents still open.
    pub fn open_count(&self) -> usize {
        self.list.len()
    }

    /// Live use: ends every incident whose last flow is before `before_us`
    /// (event time; the caller gives its watermark minus the gap and the
    /// allowed lateness) and returns them in order of first flow. A weak one
    /// is first folded into a classed incident of its actor that it touches
    /// within the gap, open or ending, as [`Incidents::finish`] does.
    pub fn close_idle(&mut self, before_us: i64) -> Vec<Incident> {
        let gap = i64::from(self.params.gap_secs) * 1_000_000;
        let period = self.period_us();
        // Quiet for the gap, and its period over.
        let ending = |inc: &Incident| {
            inc.last_seen.is_some()
                && inc.last_t < before_us
                && (period == 0 || inc.first_seen.is_some_and(|f| (f.div_euclid(period) + 1) * period <= before_us))
        };
        if !self.list.iter().any(ending) {
            return Vec::new();
        }
        let mut list = std::mem::take(&mut self.list);
        let mut gone = vec![false; list.len()];
        for i in 0..list.len() {
            if !(ending(&list[i]) && is_weak(&list[i].class)) {
                continue;
            }
            let target = (0..list.len()).find(|&j| {
                !gone[j]
                    && j != i
                    && list[j].actor == list[i].actor
                    && !is_weak(&list[j].class)
                    && near(&list[i], &list[j], gap)
            });
            if let (Some(j), Some(_)) = (target, list[i].actor) {
                let w = list[i].clone();
                list[j].absorb(w, self.params.max_members);
                gone[i] = true;
            }
        }
        let mut closed = Vec::new();
        for (inc, g) in list.into_iter().zip(gone) {
            if g {
                continue;
            }
            if ending(&inc) {
                let mut inc = inc;
                inc.digest = is_digest(&inc);
                closed.push(inc);
            } else {
                self.list.push(inc);
            }
        }
        self.open.clear();
        for (k, inc) in self.list.iter().enumerate() {
            self.open.insert((inc.class.clone(), inc.actor, inc.peer), k);
        }
        closed.sort_by_key(|i| (i.first_seen, i.id));
        closed
    }

    /// The incidents, most severe first (then named threats before weak
    /// ones, then highest score, then earliest).
    /// A weak incident (`unknown_ip`, `other_anomaly`: what a flow is called
    /// before its context shows more, e.g. the first probes of a flood) is
    /// folded into a classed incident of the same actor that it overlaps or
    /// touches within the gap, and listed there under `absorbed`.
    pub fn finish(self) -> Vec<Incident> {
        let gap = i64::from(self.params.gap_secs) * 1_000_000;
        let weak = is_weak;
        let mut list = self.list;
        let mut strong: FxHashMap<IpAddr, Vec<usize>> = FxHashMap::default();
        for (i, inc) in list.iter().enumerate() {
            if let (false, Some(a)) = (weak(&inc.class), inc.actor) {
                strong.entry(a).or_default().push(i);
            }
        }
        let mut gone = vec![false; list.len()];
        for i in 0..list.len() {
            if !weak(&list[i].class) {
                continue;
            }
            let Some(cands) = list[i].actor.and_then(|a| strong.get(&a)) else { continue };
            let Some(&j) = cands.iter().find(|&&j| near(&list[i], &list[j], gap)) else { continue };
            let w = list[i].clone();
            list[j].absorb(w, usize::MAX);
            gone[i] = true;
        }
        let mut list: Vec<Incident> = list.into_iter().zip(gone).filter(|(_, g)| !g).map(|(i, _)| i).collect();
        for inc in &mut list {
            inc.digest = is_digest(inc);
        }
        // Worst first: severity, then a named threat before a weak one (a
        // 235-flow port scan above a single never-seen address at the same
        // severity), then the score.
        list.sort_by(|a, b| {
            b.peak_severity
                .cmp(&a.peak_severity)
                .then(is_weak(&a.class).cmp(&is_weak(&b.class)))
                .then(b.max_score.total_cmp(&a.max_score))
                .then(a.first_seen.cmp(&b.first_seen))
        });
        for (k, inc) in list.iter_mut().enumerate() {
            inc.id = k as u64 + 1;
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowhound_flow::{Counts, Timestamp};

    fn finding(class: &str, actor: &str) -> Finding {
        Finding {
            class: class.into(),
            variant: None,
            technique: Some("T1046".into()),
            actor: actor.parse().ok(),
            actor_role: Actor::Src,
            reason: format!("{class} by {actor}"),
            explanation: Vec::new(),
            answer: false,
            peer: None,
        }
    }

    fn flow(t: i64, src: &str, dst: &str, port: u16) -> FlowRecord {
        FlowRecord {
            start: Timestamp::from_micros(t * 1_000_000),
            src: src.parse().ok(),
            dst: dst.parse().ok(),
            dst_port: Some(port),
            bytes: Counts::total(40),
            ..Default::default()
        }
    }

    fn verdict(score: f32, severity: Severity) -> Verdict {
        Verdict { score, votes: 2, severity, confidence: 0.5, models: Vec::new(), category: None }
    }

    #[test]
    fn one_actor_one_class_one_incident_until_a_gap() {
        let mut inc = Incidents::new(IncidentParams { gap_secs: 60, period_secs: 0, samples: 2, ..Default::default() });
        let scan = finding("port_scan", "10.0.3.7");
        // 412 probes in 40 s, then the same scanner again 10 minutes later.
        for k in 0..412u16 {
            let v = verdict(0.5 + f32::from(k) / 1000.0, if k == 100 { Severity::High } else { Severity::Low });
            inc.push(u64::from(k), &flow(i64::from(k) / 10, "10.0.3.7", "10.0.1.9", 1 + k), &v, &scan, k < 3);
        }
        inc.push(500, &flow(641, "10.0.3.7", "10.0.1.9", 22), &verdict(0.9, Severity::Medium), &scan, false);
        // Another class from the same host is another incident.
        let burst = finding("connection_burst", "10.0.3.7");
        inc.push(501, &flow(5, "10.0.3.7", "8.8.8.8", 443), &verdict(0.7, Severity::Low), &burst, false);
        // The scanner's first probe, before its context showed a scan: folded in.
        let first = finding("unknown_ip", "10.0.3.7");
        inc.push(502, &flow(0, "10.0.3.7", "10.0.1.8", 1), &verdict(0.6, Severity::Low), &first, false);
        // The same class from another actor, far in time: stays on its own.
        let other = finding("unknown_ip", "10.0.3.8");
        inc.push(503, &flow(5000, "10.0.3.8", "10.0.1.8", 1), &verdict(0.6, Severity::Low), &other, false);
        let list = inc.finish();
        assert_eq!(list.len(), 4);
        let first = &list[0];
        assert_eq!((first.id, first.class.as_ref(), first.flows), (1, "port_scan", 413));
        assert_eq!(first.peak_severity, Severity::High);
        assert_eq!((first.targets.len(), first.ports.len(), first.bytes, first.suppressed), (2, 412, 413 * 40, 3));
        assert_eq!(first.absorbed.get("unknown_ip"), Some(&1));
        assert_eq!((first.first_seen, first.last_seen), (Some(0), Some(41_000_000)));
        assert!((first.max_score - 0.911).abs() < 1e-6);
        assert_eq!(first.samples.iter().map(|s| s.flow).collect::<Vec<_>>(), [0, 1]);
        assert_eq!((list[1].class.as_ref(), list[1].flows), ("port_scan", 1));
        assert_eq!(list[2].class.as_ref(), "connection_burst");
        assert_eq!((list[3].class.as_ref(), list[3].actor), ("unknown_ip", "10.0.3.8".parse().ok()));
    }

    #[test]
    fn live_incidents_alert_as_they_grow_and_close_when_idle() {
        let mut inc = Incidents::new(IncidentParams { gap_secs: 60, period_secs: 0, samples: 2, max_members: 3 });
        let low = verdict(0.6, Severity::Low);
        // The scanner's first probe looks like first contact, then a scan.
        inc.push(0, &flow(0, "10.0.3.7", "10.0.1.8", 1), &low, &finding("unknown_ip", "10.0.3.7"), false);
        assert!(inc.take_touched().is_empty(), "weak incidents wait for their context");
        for k in 1..10u16 {
            inc.push(
                u64::from(k),
                &flow(i64::from(k), "10.0.3.7", "10.0.1.9", k),
                &low,
                &finding("port_scan", "10.0.3.7"),
                false,
            );
        }
        let now = inc.take_touched();
        assert_eq!((now.len(), now[0].class.as_ref(), now[0].flows, now[0].id), (1, "port_scan", 9, 2));
        assert!(inc.take_touched().is_empty(), "nothing grew since");
        // Another host's first contact, far from any scan.
        inc.push(20, &flow(30, "10.0.3.8", "1.2.3.4", 443), &low, &finding("unknown_ip", "10.0.3.8"), false);
        // The first probe, idle past the cut, is folded into the open scan;
        // nothing else ends yet.
        assert!(inc.close_idle(5_000_000).is_empty());
        assert_eq!(inc.open_count(), 2);
        // Past the scan's last flow (9 s) and the other's (30 s).
        let closed = inc.close_idle(31_000_000);
        assert_eq!(closed.len(), 2, "{closed:?}");
        assert_eq!((closed[0].class.as_ref(), closed[0].flows, closed[0].members.len()), ("port_scan", 10, 3));
        assert_eq!(closed[0].absorbed.get("unknown_ip"), Some(&1));
        assert_eq!((closed[1].class.as_ref(), closed[1].actor), ("unknown_ip", "10.0.3.8".parse().ok()));
        assert_eq!(inc.open_count(), 0);
        // The scanner again: a new incident with a new id.
        inc.push(30, &flow(200, "10.0.3.7", "10.0.1.9", 80), &low, &finding("port_scan", "10.0.3.7"), false);
        assert_eq!(inc.take_touched()[0].id, 4);
    }

    #[test]
    fn one_incident_per_actor_and_class_for_the_day_alerted_when_it_grows_worse() {
        let day = 86_400;
        let mut inc = Incidents::new(IncidentParams { gap_secs: 900, ..Default::default() });
        let scan = finding("port_scan", "165.154.254.36");
        let (low, medium) = (verdict(0.6, Severity::Low), verdict(0.8, Severity::Medium));
        // A slow scanner: a probe every 20 minutes from 06:00 to 12:00 —
        // every pause longer than the 15-minute gap, one day.
        for k in 0..18i64 {
            let t = day + 6 * 3600 + k * 1200;
            inc.push(k as u64, &flow(t, "165.154.254.36", "64.225.56.201", 1000 + k as u16), &low, &scan, false);
        }
        let first = inc.take_alerts();
        assert_eq!((first.len(), first[0].flows), (1, 18), "one alert for the day's scan");
        assert!(inc.take_alerts().is_empty(), "more flows at the same severity: updated, not re-alerted");
        inc.push(18, &flow(day + 13 * 3600, "165.154.254.36", "64.225.56.201", 2000), &medium, &scan, false);
        let worse = inc.take_alerts();
        assert_eq!((worse.len(), worse[0].flows, worse[0].peak_severity), (1, 19, Severity::Medium));
        // Live: the day is not over at 13:30, so the incident stays open.
        assert!(inc.close_idle((day + 13 * 3600 + 1800) * 1_000_000).is_empty());
        // Next day the scanner is a new incident; yesterday's closes.
        inc.push(19, &flow(2 * day + 3600, "165.154.254.36", "64.225.56.201", 22), &low, &scan, false);
        let closed = inc.close_idle((2 * day + 2 * 3600) * 1_000_000);
        assert_eq!((closed.len(), closed[0].flows), (1, 19));
        assert_eq!(inc.take_alerts().len(), 1, "the new day's incident alerts");
        // A lone low flow no rule names is the digest, not an incident to act on.
        inc.push(
            20,
            &flow(2 * day + 7200, "10.0.9.9", "10.0.1.1", 80),
            &low,
            &finding(crate::OTHER, "10.0.9.9"),
            false,
        );
        let list = inc.finish();
        assert_eq!(list.len(), 2, "the day-2 scan and the digest flow");
        assert_eq!(list.iter().filter(|i| i.digest).map(|i| i.actor).collect::<Vec<_>>(), ["10.0.9.9".parse().ok()]);
        assert!(!list[0].digest && &*list[0].class == "port_scan");
    }
}
