//! The event-time side of a live run (`watch`, `serve --watch`): a
//! watermark over the flows' own start times, lateness, and the life of
//! incidents as traffic goes on — when one is alerted, updated, and ended.
//! Batch runs (`detect`) end every incident at the end of the input instead.
//!
//! The rules, in one place:
//! - a flow older than the watermark less the lateness is *late*: counted,
//!   still scored (its windows were already closed, so its features see less);
//! - a named incident is alerted when it opens and each time its severity
//!   grows, not when it only grows in flows (the dashboard shows that);
//! - an incident ends once it has been quiet for the gap (and its period is
//!   over) as measured on the watermark, less the lateness a straggler may have;
//! - an ended incident never alerted at its peak severity (the weak classes,
//!   which alert only at the end) is owed one alert; the digest never is.

use std::time::Duration;

use flowhound_explain::{Incident, Incidents};

/// The watermark: the newest flow start seen (µs), and how late a flow may
/// be before it counts as late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    watermark: i64,
    lateness_us: i64,
}

impl Clock {
    pub fn new(lateness: Duration) -> Clock {
        Clock { watermark: i64::MIN, lateness_us: lateness.as_micros().min(i64::MAX as u128) as i64 }
    }

    /// The watermark (µs since the epoch; `i64::MIN` before any timed flow).
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Resumes from a checkpoint's watermark.
    pub fn restore(&mut self, watermark: i64) {
        self.watermark = watermark;
    }

    /// Sees one flow's start time (µs); true when the flow is late. Flows
    /// without a time move nothing.
    pub fn observe(&mut self, start_us: Option<i64>) -> bool {
        let Some(t) = start_us else { return false };
        let late = t < self.watermark.saturating_sub(self.lateness_us);
        self.watermark = self.watermark.max(t);
        late
    }

    /// Incidents last seen before this time (µs) are over: the gap behind
    /// the watermark, less the lateness.
    pub fn idle_before(&self, gap_secs: u32) -> i64 {
        let gap = i64::from(gap_secs) * 1_000_000;
        self.watermark.saturating_sub(gap).saturating_sub(self.lateness_us)
    }
}

/// What one scored batch did to the open incidents.
#[derive(Debug, Default)]
pub struct Changes {
    /// Named incidents that grew (the dashboard updates them).
    pub touched: Vec<Incident>,
    /// Named incidents to alert now: opened, or their severity grew.
    pub alerts: Vec<Incident>,
    /// Incidents that ended.
    pub ended: Vec<Incident>,
}

/// After a batch was pushed into `incidents`: what to alert, update and end
/// at the `clock`'s watermark.
pub fn settle(incidents: &mut Incidents, clock: &Clock) -> Changes {
    let touched = incidents.take_touched();
    let alerts = incidents.take_alerts();
    let ended = incidents.close_idle(clock.idle_before(incidents.gap_secs()));
    Changes { touched, alerts, ended }
}

/// At the end of a live run: every open incident ends now.
pub fn drain(incidents: &mut Incidents) -> Vec<Incident> {
    incidents.close_idle(i64::MAX)
}

/// Ended incidents still owed an alert: never sent at their peak severity
/// (the weak classes alert only when they end); the digest never is.
pub fn owed(ended: &[Incident]) -> Vec<Incident> {
    ended.iter().filter(|i| !i.digest && i.peak_severity > i.alerted).cloned().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use flowhound_detect::{Severity, Verdict};
    use flowhound_explain::{Finding, IncidentParams};
    use flowhound_flow::{FlowRecord, Timestamp};

    use super::*;

    const T0: i64 = 1_700_000_000 * 1_000_000;

    fn flow(secs: i64) -> FlowRecord {
        FlowRecord {
            start: Timestamp::from_micros(T0 + secs * 1_000_000),
            src: Some("203.0.113.9".parse().unwrap_or_else(|e| panic!("{e}"))),
            dst: Some("10.0.0.5".parse().unwrap_or_else(|e| panic!("{e}"))),
            ..Default::default()
        }
    }

    fn verdict(severity: Severity) -> Verdict {
        Verdict { score: 0.99, votes: 2, severity, confidence: 0.5, models: vec![], category: None }
    }

    fn finding(class: &str) -> Finding {
        Finding {
            class: Arc::from(class),
            variant: None,
            technique: None,
            actor: Some("203.0.113.9".parse().unwrap_or_else(|e| panic!("{e}"))),
            actor_role: Default::default(),
            reason: format!("{class} for the test"),
            explanation: vec![],
            answer: false,
            peer: None,
        }
    }

    #[test]
    fn late_flows_are_counted_against_the_watermark_less_the_lateness() {
        let mut c = Clock::new(Duration::from_secs(60));
        assert!(!c.observe(Some(T0)));
        assert!(!c.observe(None), "a flow without a time is never late");
        assert!(!c.observe(Some(T0 - 60_000_000)), "exactly the lateness behind: on time");
        assert!(c.observe(Some(T0 - 60_000_001)));
        assert_eq!(c.watermark(), T0, "a late flow does not move the watermark back");
        assert!(!c.observe(Some(T0 + 5_000_000)));
        assert_eq!(c.watermark(), T0 + 5_000_000);
        assert_eq!(c.idle_before(900), T0 + 5_000_000 - 900_000_000 - 60_000_000);
        assert_eq!(Clock::new(Duration::ZERO).idle_before(900), i64::MIN, "no flow seen: nothing ends");
    }

    #[test]
    fn a_named_incident_alerts_on_open_and_on_worse_severity_and_ends_after_the_gap() {
        let mut inc =
            Incidents::new(IncidentParams { gap_secs: 300, period_secs: 0, samples: 5, ..Default::default() });
        let mut clock = Clock::new(Duration::from_secs(10));
        let scan = finding("port_scan");
        // Batch 1: the scan opens (low): one alert.
        for s in 0..3 {
            clock.observe(flow(s).start.map(|t| t.micros()));
            inc.push(s as u64, &flow(s), &verdict(Severity::Low), &scan, false);
        }
        let c = settle(&mut inc, &clock);
        assert_eq!((c.alerts.len(), c.touched.len(), c.ended.len()), (1, 1, 0));
        assert_eq!(c.alerts[0].flows, 3);
        // Batch 2: more low flows: updated, not alerted again.
        for s in 3..6 {
            clock.observe(flow(s).start.map(|t| t.micros()));
            inc.push(s as u64, &flow(s), &verdict(Severity::Low), &scan, false);
        }
        let c = settle(&mut inc, &clock);
        assert_eq!((c.alerts.len(), c.touched.len()), (0, 1));
        // Batch 3: a high flow: alerted again, at high.
        clock.observe(flow(7).start.map(|t| t.micros()));
        inc.push(7, &flow(7), &verdict(Severity::High), &scan, false);
        let c = settle(&mut inc, &clock);
        assert_eq!(c.alerts.len(), 1);
        assert_eq!(c.alerts[0].peak_severity, Severity::High);
        // Other traffic moves the watermark: not yet past gap + lateness …
        clock.observe(Some(T0 + (7 + 300 + 10) * 1_000_000));
        assert!(settle(&mut inc, &clock).ended.is_empty());
        // … and then past it: the scan ends, already alerted at its peak.
        clock.observe(Some(T0 + (7 + 300 + 10 + 1) * 1_000_000));
        let c = settle(&mut inc, &clock);
        assert_eq!(c.ended.len(), 1);
        assert_eq!(c.ended[0].flows, 7);
        assert!(owed(&c.ended).is_empty(), "alerted at its peak already");
        assert_eq!(inc.open_count(), 0);
    }

    #[test]
    fn weak_incidents_alert_only_when_they_end_and_the_digest_never() {
        let mut inc =
            Incidents::new(IncidentParams { gap_secs: 300, period_secs: 0, samples: 5, ..Default::default() });
        let clock = Clock::new(Duration::ZERO);
        for s in 0..2 {
            inc.push(s, &flow(s as i64), &verdict(Severity::Medium), &finding("unknown_ip"), false);
        }
        let other = FlowRecord { src: Some("10.9.9.9".parse().unwrap_or_else(|e| panic!("{e}"))), ..flow(1) };
        let lone = Finding { actor: other.src, ..finding(flowhound_explain::OTHER) };
        inc.push(9, &other, &verdict(Severity::Low), &lone, false);
        let c = settle(&mut inc, &clock);
        assert!(c.alerts.is_empty() && c.touched.is_empty(), "weak classes are not alerted while open");
        let ended = drain(&mut inc);
        assert_eq!(ended.len(), 2);
        let owed = owed(&ended);
        assert_eq!(owed.len(), 1, "the unknown_ip incident, not the single low other_anomaly (the digest)");
        assert_eq!(&*owed[0].class, "unknown_ip");
        assert!(ended.iter().any(|i| i.digest));
    }
}
