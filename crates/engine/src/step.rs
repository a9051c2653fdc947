//! One scored batch through the rules and the explainer, and what becomes of
//! each flow: the step every front end used to write out for itself.

use std::borrow::Cow;

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{Batch, Severity, Verdict};
use flowhound_explain::allow::Entry;
use flowhound_explain::{Allowlist, ExplainError, Explainer, Finding, Incident};
use flowhound_flow::FlowRecord;

/// Rule alerts and explanations for scored batches.
#[derive(Debug)]
pub struct Step {
    pub explainer: Explainer,
}

/// A batch after the rules: its verdicts (rule alerts raised) and a finding
/// for each flow that was asked for.
#[derive(Debug)]
pub struct Explained<'v> {
    pub verdicts: Cow<'v, [Verdict]>,
    pub found: Vec<Option<Finding>>,
}

impl<'v> Explained<'v> {
    /// The batch with the raised verdicts in place of the scorer's.
    pub fn batch<'s>(&'s self, b: &Batch<'s>) -> Batch<'s> {
        Batch { verdicts: &self.verdicts, ..*b }
    }
}

impl Step {
    pub fn new(explainer: Explainer) -> Step {
        Step { explainer }
    }

    /// Raises rule alerts (`alert = true` rules flag flows the vote left
    /// alone), then explains the flows `want` picks, by position and raised
    /// verdict.
    pub fn run<'v>(
        &mut self,
        bundle: &Bundle,
        b: &Batch<'v>,
        want: impl Fn(usize, &Verdict) -> bool,
    ) -> Result<Explained<'v>, ExplainError> {
        // Every flow counts into its pair, in input order, before the rules look.
        let pair = self.explainer.observe(b.recs);
        let verdicts = self.explainer.raise(b.recs, b.raw, &pair, b.verdicts);
        let found =
            self.explainer.explain(bundle, b.recs, &verdicts, b.raw, &pair, b.input, |i| want(i, &verdicts[i]))?;
        Ok(Explained { verdicts, found })
    }

    /// [`Step::run`] explaining every anomalous flow.
    pub fn flagged<'v>(&mut self, bundle: &Bundle, b: &Batch<'v>) -> Result<Explained<'v>, ExplainError> {
        self.run(bundle, b, |_, v| v.severity != Severity::None)
    }
}

/// Which scored flows a run shows: the same for `detect` and `watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Show {
    /// Every flow is written, not only anomalies.
    pub all: bool,
    /// Anomalies below this are not flagged (nor grow incidents).
    pub min_severity: Severity,
    /// Flows an allowlist entry covers are still shown.
    pub suppressed: bool,
    /// Incidents are written instead of flows.
    pub incidents: bool,
}

impl Default for Show {
    fn default() -> Self {
        Show { all: false, min_severity: Severity::Low, suppressed: false, incidents: false }
    }
}

/// What becomes of one scored flow.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a> {
    /// The allowlist entry covering it (looked up only when it matters).
    pub entry: Option<&'a Entry>,
    /// Anomalous and at least `min_severity`.
    pub flagged: bool,
    /// Not suppressed, or suppressed flows are shown.
    pub shown: bool,
    /// Written as a flow line (not when incidents are written).
    pub written: bool,
}

impl Shown<'_> {
    /// Whether the flow (when it has a finding) grows an incident: flagged
    /// and not hidden by the allowlist.
    pub fn grows_incident(&self) -> bool {
        self.flagged && self.shown
    }
}

impl Show {
    /// `found`: the flow has a finding (it is anomalous).
    pub fn decide<'a>(&self, allow: &'a Allowlist, r: &FlowRecord, v: &Verdict, found: bool) -> Shown<'a> {
        let entry = if found || self.all { allow.check(r) } else { None };
        let flagged = v.severity != Severity::None && v.severity >= self.min_severity;
        let shown = entry.is_none() || self.suppressed;
        let written = !self.incidents && (self.all || (flagged && shown));
        Shown { entry, flagged, shown, written }
    }
}

/// A finished run's incidents as reported and alerted: digest incidents
/// (single low-severity flows no rule names) left out and counted, the rest
/// numbered 1, 2, … in their (worst-first) order. Returns the digest count.
pub fn finish_incidents(incidents: &mut Vec<Incident>) -> u64 {
    let before = incidents.len();
    incidents.retain(|i| !i.digest);
    for (k, i) in incidents.iter_mut().enumerate() {
        i.id = k as u64 + 1;
    }
    (before - incidents.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowhound_flow::FlowRecord;

    fn verdict(severity: Severity) -> Verdict {
        Verdict { score: 0.9, votes: 2, severity, confidence: 0.5, models: vec![], category: None }
    }

    #[test]
    fn decide_flags_by_min_severity_and_hides_suppressed_flows() {
        let allow = Allowlist::parse("[[allow]]\nsrc = \"10.0.0.1\"\nreason = \"scanner\"\n", 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let covered =
            FlowRecord { src: Some("10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"))), ..Default::default() };
        let other =
            FlowRecord { src: Some("10.0.0.2".parse().unwrap_or_else(|e| panic!("{e}"))), ..Default::default() };
        let show = Show { min_severity: Severity::Medium, ..Show::default() };
        let low = show.decide(&allow, &other, &verdict(Severity::Low), true);
        assert!(!low.flagged && !low.written && low.shown);
        let high = show.decide(&allow, &other, &verdict(Severity::High), true);
        assert!(high.flagged && high.written && high.entry.is_none());
        let hidden = show.decide(&allow, &covered, &verdict(Severity::High), true);
        assert!(hidden.flagged && !hidden.shown && !hidden.written);
        assert_eq!(hidden.entry.map(|e| e.reason.as_str()), Some("scanner"));
        let shown = Show { suppressed: true, ..show }.decide(&allow, &covered, &verdict(Severity::High), true);
        assert!(shown.shown && shown.written);
        // Incidents written instead of flows: nothing is a flow line.
        let inc = Show { incidents: true, all: true, ..show }.decide(&allow, &other, &verdict(Severity::High), true);
        assert!(inc.flagged && !inc.written);
        // Every flow with `all`, normal ones included; a normal flow is not looked up.
        let all = Show { all: true, ..Show::default() }.decide(&allow, &other, &verdict(Severity::None), false);
        assert!(all.written && !all.flagged);
        let normal = Show::default().decide(&allow, &covered, &verdict(Severity::None), false);
        assert!(normal.entry.is_none() && !normal.written);
    }
}
