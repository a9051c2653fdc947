//! What a live run shows while it runs: the Prometheus text of its metrics
//! and the one-line status — read from the sources' counters, the queue,
//! the run's [`Tally`] as of its last batch, and the latency histogram.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use flowhound_detect::Severity;
use flowhound_source::live::SourceStats;

use crate::Tally;

/// Latency buckets (seconds), fine enough for a p99 under a second.
pub const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Time from a record's arrival to its finding being written.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    /// Per bucket (and one more for +Inf), the flows whose latency fell in it.
    pub counts: [u64; BUCKETS.len() + 1],
    pub sum: f64,
}

impl Latency {
    pub fn observe(&mut self, secs: f64, n: u64) {
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.counts[i] += n;
        self.sum += secs * n as f64;
    }

    /// The upper bound of the bucket holding quantile `q`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil() as u64;
        let mut acc = 0;
        for (i, n) in self.counts.iter().enumerate() {
            acc += n;
            if acc >= want {
                return Some(BUCKETS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        None
    }
}

/// Everything the metrics endpoint and the status line read.
#[derive(Debug)]
pub struct Monitor {
    pub names: Vec<String>,
    pub sources: Vec<Arc<SourceStats>>,
    pub depth: Arc<AtomicUsize>,
    numbers: Mutex<(Tally, Latency)>,
}

/// Resident memory from /proc (Linux); 0 elsewhere.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Monitor {
    pub fn new(names: Vec<String>, sources: Vec<Arc<SourceStats>>, depth: Arc<AtomicUsize>) -> Monitor {
        Monitor { names, sources, depth, numbers: Mutex::default() }
    }

    /// The counts, also after a panic elsewhere poisoned the lock: they are
    /// counters, never left half-updated in a way that matters.
    fn numbers(&self) -> MutexGuard<'_, (Tally, Latency)> {
        self.numbers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The run's counts after a batch, and the latency of its flows.
    pub fn update(&self, tally: &Tally, latency: &Latency) {
        let mut n = self.numbers();
        n.0.clone_from(tally);
        n.1.clone_from(latency);
    }

    /// Lines the sources' readers rejected.
    pub fn rejected(&self) -> u64 {
        self.sources.iter().map(|s| s.rejected.load(Ordering::Relaxed)).sum()
    }

    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(s, "# HELP flowhound_{name} {help}\n# TYPE flowhound_{name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(s, "flowhound_{name}{labels} {v}");
            }
        };
        // An unlabelled sample.
        let one = |v: u64| vec![(String::new(), v.to_string())];
        let per_source = |f: &dyn Fn(&SourceStats) -> u64| {
            self.names
                .iter()
                .zip(&self.sources)
                .map(|(n, st)| (format!("{{source=\"{}\"}}", label(n)), f(st).to_string()))
                .collect::<Vec<_>>()
        };
        let r = Ordering::Relaxed;
        type PerSource<'a> = (&'a str, &'a str, fn(&SourceStats) -> &AtomicU64);
        let counters: [PerSource<'_>; 6] = [
            ("flows_received_total", "Flow records read, per source.", |s| &s.records),
            ("lines_rejected_total", "Lines that did not parse, per source.", |s| &s.rejected),
            ("flows_dropped_total", "Records dropped because the detector was behind (UDP sources).", |s| &s.dropped),
            ("flows_lost_total", "Records the exporters' sequence numbers say never arrived (NetFlow).", |s| &s.lost),
            (
                "source_units_total",
                "Files or objects read (dir, S3) or export packets received (NetFlow), per source.",
                |s| &s.units,
            ),
            ("source_errors_total", "Read errors and undecodable input, per source.", |s| &s.errors),
        ];
        for (name, help, field) in counters {
            metric(name, "counter", help, per_source(&|s| field(s).load(r)));
        }
        metric(
            "queue_depth",
            "gauge",
            "Chunks waiting between the sources and the detector.",
            one(self.depth.load(r) as u64),
        );
        metric("resident_memory_bytes", "gauge", "Resident memory of the process.", one(rss_bytes()));
        let n = self.numbers();
        let (t, lat) = (&n.0, &n.1);
        metric("flows_scored_total", "counter", "Flows scored.", one(t.flows));
        metric("flows_late_total", "counter", "Flows that arrived later than --lateness.", one(t.late));
        let sev = |a: &[u64; 4]| {
            [Severity::Low, Severity::Medium, Severity::High]
                .iter()
                .map(|s| (format!("{{severity=\"{}\"}}", s.name()), a[*s as usize].to_string()))
                .collect::<Vec<_>>()
        };
        metric("anomalies_total", "counter", "Anomalous flows, by severity.", sev(&t.by_severity));
        metric(
            "findings_total",
            "counter",
            "Anomalous flows, by threat class.",
            t.by_class.iter().map(|(c, v)| (format!("{{class=\"{}\"}}", label(c)), v.to_string())).collect(),
        );
        metric("incidents_total", "counter", "Incidents ended, by peak severity.", sev(&t.incidents_ended));
        metric("incidents_open", "gauge", "Incidents still open.", one(t.incidents_open));
        metric(
            "alerts_total",
            "counter",
            "Incident snapshots due an alert (opened, grown worse, or ended owing one); handed to the sinks when any are configured.",
            one(t.alerts),
        );
        let _ = writeln!(
            s,
            "# HELP flowhound_latency_seconds Time from a record's arrival to its finding being written.\n# TYPE flowhound_latency_seconds histogram"
        );
        let mut acc = 0;
        for (i, c) in lat.counts.iter().enumerate() {
            acc += c;
            let le = BUCKETS.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(s, "flowhound_latency_seconds_bucket{{le=\"{le}\"}} {acc}");
        }
        let _ = writeln!(s, "flowhound_latency_seconds_sum {}\nflowhound_latency_seconds_count {acc}", lat.sum);
        s
    }

    /// The status line; `last` holds the time and count of the previous one
    /// (for the rate).
    pub fn status(&self, since: Instant, last: &mut (Instant, u64)) -> String {
        let r = Ordering::Relaxed;
        let sum = |f: &dyn Fn(&SourceStats) -> u64| self.sources.iter().map(|s| f(s)).sum::<u64>();
        let n = self.numbers();
        let (t, lat) = (&n.0, &n.1);
        let dt = last.0.elapsed().as_secs_f64().max(1e-3);
        let rate = t.flows.saturating_sub(last.1) as f64 / dt;
        *last = (Instant::now(), t.flows);
        let q = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v}s"));
        format!(
            "watch {:.0}s: {} flows ({:.0}/s), {} anomalies, {} incidents open, {} alerts, {} rejected, {} dropped, {} lost, {} late, queue {}, latency p50 ≤{} p99 ≤{}, rss {} MiB",
            since.elapsed().as_secs_f64(),
            t.flows,
            rate,
            t.anomalies(),
            t.incidents_open,
            t.alerts,
            sum(&|s| s.rejected.load(r)),
            sum(&|s| s.dropped.load(r)),
            sum(&|s| s.lost.load(r)),
            t.late,
            self.depth.load(r),
            q(lat.quantile(0.5)),
            q(lat.quantile(0.99)),
            rss_bytes() >> 20,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_are_bucket_bounds() {
        let mut l = Latency::default();
        assert_eq!(l.quantile(0.5), None);
        l.observe(0.003, 98);
        l.observe(0.7, 1);
        l.observe(99.0, 1);
        assert_eq!(l.quantile(0.5), Some(0.005));
        assert_eq!(l.quantile(0.99), Some(1.0));
        assert_eq!(l.quantile(1.0), Some(f64::INFINITY));
        assert!((l.sum - (0.294 + 0.7 + 99.0)).abs() < 1e-9);
    }

    #[test]
    fn metrics_show_the_runs_counts_per_source_and_severity() {
        let st = Arc::new(SourceStats::default());
        st.records.store(7, Ordering::Relaxed);
        let m = Monitor::new(vec!["file:/a \"b\"".into()], vec![st], Arc::default());
        let mut t = Tally::new(vec!["iforest"]);
        t.flows = 7;
        t.by_severity = [4, 1, 0, 2];
        t.by_class.insert("port_scan".into(), 3);
        t.incidents_open = 1;
        let mut l = Latency::default();
        l.observe(0.02, 7);
        m.update(&t, &l);
        let text = m.prometheus();
        for line in [
            "flowhound_flows_received_total{source=\"file:/a \\\"b\\\"\"} 7",
            "flowhound_flows_scored_total 7",
            "flowhound_anomalies_total{severity=\"high\"} 2",
            "flowhound_findings_total{class=\"port_scan\"} 3",
            "flowhound_incidents_open 1",
            "flowhound_latency_seconds_bucket{le=\"0.025\"} 7",
            "flowhound_latency_seconds_count 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        let status = m.status(Instant::now(), &mut (Instant::now(), 0));
        assert!(
            status.contains("7 flows") && status.contains("3 anomalies") && status.contains("p50 ≤0.025s"),
            "{status}"
        );
    }
}
