//! One counter for a run: flows by severity, detector, threat class and
//! ground truth, incidents and deliveries, and the summary a person reads.

use flowhound_detect::{Severity, Verdict};
use flowhound_explain::{Finding, Incident};
use flowhound_flow::FlowRecord;
use flowhound_sink::RunStats;

/// What to do about input far from time order (after the extractor's warning).
pub const SORT_HINT: &str = "read it with --sort-time";

/// What a live view counts of the flows scored: the dashboard's summary.
/// A worker group's partitions keep one each (cumulative, saved with their
/// state) and the dashboard adds them up.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub flows: u64,
    pub by_severity: [u64; 4],
    /// Flagged flows (at `--min-severity`) per threat class, and those an
    /// allowlist entry covers.
    pub by_class: std::collections::BTreeMap<String, u64>,
    pub suppressed: u64,
    /// First and last event time (seconds).
    pub span: Option<(i64, i64)>,
}

impl Counts {
    /// Counts one scored flow as the page lists it: classes and suppression
    /// for the flagged ones.
    pub fn add(&mut self, x: &crate::Flow<'_>) {
        self.flows += 1;
        self.by_severity[x.verdict.severity as usize] += 1;
        if let (Some(f), true) = (x.finding, x.shown.flagged) {
            *self.by_class.entry(f.class.to_string()).or_default() += 1;
            self.suppressed += u64::from(x.shown.entry.is_some());
        }
        if let Some(t) = x.record.start.map(|t| t.secs()) {
            let (a, b) = self.span.unwrap_or((t, t));
            self.span = Some((a.min(t), b.max(t)));
        }
    }

    /// Adds another's counts (another partition's).
    pub fn merge(&mut self, o: &Counts) {
        self.flows += o.flows;
        for (a, b) in self.by_severity.iter_mut().zip(o.by_severity) {
            *a += b;
        }
        for (c, n) in &o.by_class {
            *self.by_class.entry(c.clone()).or_default() += n;
        }
        self.suppressed += o.suppressed;
        self.span = match (self.span, o.span) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (s, None) | (None, s) => s,
        };
    }

    pub fn anomalies(&self) -> u64 {
        self.by_severity[1..].iter().sum()
    }
}

/// Counts for the summary.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub flows: u64,
    pub by_severity: [u64; 4],
    pub by_model: Vec<u64>,
    /// With ground truth: flows labeled malicious, and those flagged.
    pub labeled: u64,
    pub malicious: u64,
    pub malicious_flagged: u64,
    pub benign_flagged: u64,
    /// Per ground-truth category of malicious flows: (flows, flagged).
    pub by_category: std::collections::BTreeMap<String, (u64, u64)>,
    /// Voter names, in verdict order.
    pub names: Vec<&'static str>,
    /// Flagged flows an allowlist entry covers.
    pub suppressed: u64,
    /// Flagged flows per threat class.
    pub by_class: std::collections::BTreeMap<String, u64>,
    /// With ground truth: (category, threat class or "not flagged") → flows.
    pub confusion: std::collections::BTreeMap<(String, String), u64>,
    /// Incidents of the written severities (suppressed ones only with
    /// --show-suppressed), most severe first.
    pub incidents: Vec<Incident>,
    /// Single low-severity `other_anomaly` flows, left out of `incidents`
    /// and of the alerts (they are in the flow output).
    pub digest: u64,
    /// Lines the readers rejected.
    pub rejected: u64,
    /// What the sinks did with the incidents (with --sink or --config).
    pub delivery: Option<flowhound_sink::Summary>,
    /// When the input was far from time order.
    pub order_warning: Option<String>,
    /// Live runs: flows that came later than the allowed lateness.
    pub late: u64,
    /// Live runs: incident snapshots due an alert (opened, grown worse, or
    /// ended owing one).
    pub alerts: u64,
    /// Live runs: incidents ended, by peak severity.
    pub incidents_ended: [u64; 4],
    /// Live runs: incidents open after the last batch.
    pub incidents_open: u64,
}

impl Tally {
    /// A tally for the voters `names` (in verdict order).
    pub fn new(names: Vec<&'static str>) -> Tally {
        Tally { by_model: vec![0; names.len()], names, ..Default::default() }
    }

    pub fn anomalies(&self) -> u64 {
        self.by_severity[1..].iter().sum()
    }

    /// The counts the sinks report at the end of a run.
    pub fn run_stats(&self) -> RunStats {
        RunStats {
            flows: self.flows,
            rejected: self.rejected,
            anomalies: [self.by_severity[1], self.by_severity[2], self.by_severity[3]],
            anomalies_by_class: self.by_class.clone(),
        }
    }

    /// Counts one scored flow (`f`: its finding, when anomalous; `suppressed`:
    /// an allowlist entry covers it).
    pub fn add(&mut self, r: &FlowRecord, v: &Verdict, f: Option<&Finding>, suppressed: bool) {
        self.flows += 1;
        if let Some(f) = f {
            *self.by_class.entry(f.class.to_string()).or_default() += 1;
            self.suppressed += u64::from(suppressed);
        }
        self.by_severity[v.severity as usize] += 1;
        for (c, (_, f)) in self.by_model.iter_mut().zip(&v.models) {
            *c += u64::from(*f);
        }
        if let Some(t) = &r.truth {
            self.labeled += 1;
            let flagged = v.severity != Severity::None;
            if t.malicious {
                self.malicious += 1;
                self.malicious_flagged += u64::from(flagged);
                let cat = t.category.as_deref().unwrap_or("unknown");
                let class = f.map_or(NOT_FLAGGED, |f| f.class.as_ref());
                *self.confusion.entry((cat.to_string(), class.to_string())).or_default() += 1;
                let e = self.by_category.entry(cat.to_string()).or_default();
                e.0 += 1;
                e.1 += u64::from(flagged);
            } else {
                self.benign_flagged += u64::from(flagged);
            }
        }
    }

    pub fn render(&self) -> String {
        let pct = |a: u64, b: u64| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
        let mut s = format!(
            "{} flows scored; {} anomalies ({:.2} %, {:.0} per million flows): high {}, medium {}, low {}\n",
            self.flows,
            self.anomalies(),
            pct(self.anomalies(), self.flows),
            pct(self.anomalies(), self.flows) * 1e4,
            self.by_severity[3],
            self.by_severity[2],
            self.by_severity[1]
        );
        s += "flagged per detector:";
        for (k, c) in self.names.iter().zip(&self.by_model) {
            s += &format!(" {k} {c}");
        }
        s.push('\n');
        if !self.by_class.is_empty() {
            s += "threat classes:";
            for (c, n) in &self.by_class {
                s += &format!(" {c} {n}");
            }
            s.push('\n');
        }
        if self.suppressed > 0 {
            s += &format!("{} anomalies suppressed by the allowlist\n", self.suppressed);
        }
        if !self.incidents.is_empty() {
            let by = |sev: Severity| self.incidents.iter().filter(|i| i.peak_severity == sev).count();
            s += &format!(
                "{} incidents: high {}, medium {}, low {}\n",
                self.incidents.len(),
                by(Severity::High),
                by(Severity::Medium),
                by(Severity::Low)
            );
        }
        if self.digest > 0 {
            s += &format!(
                "digest: {} single low-severity flows no rule names (other_anomaly), not alerted; they are in the flow output\n",
                self.digest
            );
        }
        if let Some(d) = &self.delivery {
            s += &d.render();
        }
        if let Some(w) = &self.order_warning {
            s += &format!("{w}: {}\n", SORT_HINT);
        }
        if self.labeled > 0 {
            let benign = self.labeled - self.malicious;
            s += &format!(
                "ground truth: {} of {} malicious flows flagged (recall {:.1} %), {} of {} benign flows flagged (FPR {:.2} %)\n",
                self.malicious_flagged,
                self.malicious,
                pct(self.malicious_flagged, self.malicious),
                self.benign_flagged,
                benign,
                pct(self.benign_flagged, benign)
            );
            if !self.confusion.is_empty() {
                s += "threat class given to the malicious flows, by ground-truth category:\n";
                s += &self.render_confusion();
            }
        }
        s
    }

    /// With ground truth: flows per attack category and threat class given
    /// (`not flagged` for the rest), as a text table.
    pub fn render_confusion(&self) -> String {
        if self.confusion.is_empty() {
            return String::new();
        }
        let mut cols: Vec<&str> = self.confusion.keys().map(|(_, c)| c.as_str()).collect();
        cols.sort_unstable();
        cols.dedup();
        if let Some(p) = cols.iter().position(|c| *c == NOT_FLAGGED) {
            let nf = cols.remove(p);
            cols.push(nf);
        }
        let width = |c: &str| c.len().max(7);
        let mut s = format!("{:<24}", "category \\ class");
        for c in &cols {
            s += &format!(" {:>w$}", c, w = width(c));
        }
        s.push('\n');
        let mut cats: Vec<&str> = self.confusion.keys().map(|(c, _)| c.as_str()).collect();
        cats.dedup();
        for cat in cats {
            s += &format!("{cat:<24}");
            for c in &cols {
                let n = self.confusion.get(&(cat.to_string(), c.to_string())).copied().unwrap_or(0);
                s += &format!(" {:>w$}", n, w = width(c));
            }
            s.push('\n');
        }
        s
    }
}

/// The confusion column of malicious flows nothing flagged.
pub const NOT_FLAGGED: &str = "not flagged";
