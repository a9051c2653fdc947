//! Delivery that loses nothing: dedup, per-sink filters and rate limits,
//! retries with exponential backoff and full jitter, and a disk spool for
//! what a sink could not take, replayed in order once it is back.
//!
//! Semantics: at least once. A message counts as sent when the sink said so;
//! one whose answer was lost (a timeout after the server acted) is sent again,
//! so receivers should drop repeats by the alert's `uid`.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use flowhound_detect::Severity;
use flowhound_explain::Incident;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{Config, SinkConfig, Target};
use crate::format::{self, Alert, Meta};
use crate::spool::{self, AppendError, Spool};
use crate::transport::{Failure, Transport};
use crate::SinkError;

/// What one run counted, for CloudWatch metrics.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    pub flows: u64,
    /// Lines the readers rejected.
    pub rejected: u64,
    /// Anomalous flows by severity: low, medium, high.
    pub anomalies: [u64; 3],
    /// Anomalous flows by threat class.
    pub anomalies_by_class: BTreeMap<String, u64>,
}

/// Per-sink delivery counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SinkStats {
    pub name: String,
    pub kind: String,
    /// Messages the sink accepted (replayed ones included).
    pub sent: u64,
    /// Attempts after a failure.
    pub retried: u64,
    /// Messages written to the spool this run.
    pub spooled: u64,
    /// Spooled messages (of this run or earlier ones) delivered.
    pub replayed: u64,
    /// Messages lost: the spool was full or absent. Always an error.
    pub dropped: u64,
    /// Incidents below the sink's severity floor or outside its classes.
    pub filtered: u64,
    /// Messages still waiting in the spool at the end.
    pub pending: u64,
    pub last_error: Option<String>,
}

/// The delivery summary of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub incidents: u64,
    /// Incidents not re-sent because an alert of the same class and actor
    /// went out within the dedup window.
    pub deduplicated: u64,
    pub sinks: Vec<SinkStats>,
}

impl Summary {
    pub fn dropped(&self) -> u64 {
        self.sinks.iter().map(|s| s.dropped).sum()
    }

    pub fn pending(&self) -> u64 {
        self.sinks.iter().map(|s| s.pending).sum()
    }

    /// One line per sink, for a command's summary on stderr.
    pub fn render(&self) -> String {
        let mut s = format!("alerts: {} incidents, {} held back as duplicates\n", self.incidents, self.deduplicated);
        for k in &self.sinks {
            s += &format!(
                "  {} ({}): sent {}, retried {}, spooled {}, replayed {}, dropped {}, filtered {}",
                k.name, k.kind, k.sent, k.retried, k.spooled, k.replayed, k.dropped, k.filtered
            );
            if k.pending > 0 {
                s += &format!(", {} waiting in the spool", k.pending);
            }
            if let Some(e) = &k.last_error {
                s += &format!("\n    last error: {e}");
            }
            s.push('\n');
        }
        s
    }
}

/// The dedup memory: per class and actor, the alerts sent (event time of
/// their first and last flow, µs) and what was held back since the last.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DedupEntry {
    sent: Vec<(i64, i64)>,
    repeats: u64,
    repeated_flows: u64,
    /// The highest severity alerted for this key: an incident that grows
    /// more severe (a live one, seen again as it escalates) is alerted again.
    #[serde(default)]
    severity: u8,
}

/// Alerts remembered per key, and for how long (event time before the newest).
const DEDUP_KEEP: usize = 256;
const DEDUP_KEEP_US: i64 = 7 * 86_400 * 1_000_000;

const DEDUP_FILE: &str = "dedup.json";

/// A token bucket: `rate` per second, `burst` at once.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, burst: u32) -> Bucket {
        Bucket { rate, burst: f64::from(burst), tokens: f64::from(burst), at: Instant::now() }
    }

    /// How long to wait before the next message may go (and takes its token).
    fn take(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[derive(Debug)]
struct Sink {
    cfg: SinkConfig,
    transport: Transport,
    bucket: Bucket,
    stats: SinkStats,
    /// The spool file, when there is a spool directory.
    spool: Option<Spool>,
    /// Messages in the spool (this run's and earlier runs').
    queued: u64,
    /// Failed after its retries: new messages queue behind the spool, and
    /// the spool is tried again once `PROBE` has passed (and at the end).
    down: Option<Instant>,
}

/// How long a sink that failed is left alone before the spool is tried again.
const PROBE: Duration = Duration::from_secs(2);

/// Sends alerts to every configured sink. Owns a small tokio runtime, so
/// callers stay synchronous.
#[derive(Debug)]
pub struct Dispatcher {
    rt: tokio::runtime::Runtime,
    sinks: Vec<Sink>,
    window_us: i64,
    dedup: BTreeMap<String, DedupEntry>,
    spool_dir: Option<PathBuf>,
    spool_max: u64,
    flush_timeout: Duration,
    meta: Meta,
    incidents: u64,
    deduplicated: u64,
    /// Incidents seen, by (severity, class), for the metrics.
    seen: BTreeMap<(Severity, String), u64>,
}

impl Dispatcher {
    /// Opens every sink (files, clients) and loads the dedup state; an error
    /// lists every sink that could not be opened.
    pub fn new(config: &Config, meta: Meta) -> Result<Dispatcher, SinkError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SinkError::Io(format!("cannot start the delivery runtime: {e}")))?;
        let dir = config.delivery.spool_dir.clone();
        if let Some(d) = &dir {
            fs::create_dir_all(d).map_err(|e| SinkError::Io(format!("spool directory {}: {e}", d.display())))?;
        }
        let mut sinks = Vec::new();
        let mut problems = Vec::new();
        for cfg in &config.sinks {
            match rt.block_on(Transport::open(cfg)) {
                Ok(transport) => {
                    let spool = dir.as_ref().filter(|_| cfg.target.remote()).map(|d| Spool::new(d, &cfg.name));
                    let queued = spool.as_ref().map_or(0, Spool::waiting);
                    sinks.push(Sink {
                        stats: SinkStats {
                            name: cfg.name.clone(),
                            kind: cfg.target.kind().into(),
                            ..Default::default()
                        },
                        bucket: Bucket::new(cfg.rate, cfg.burst),
                        cfg: cfg.clone(),
                        transport,
                        spool,
                        queued,
                        down: None,
                    });
                }
                Err(e) => problems.push(format!("sink {}: {e}", cfg.name)),
            }
        }
        if !problems.is_empty() {
            return Err(SinkError::Config(problems));
        }
        let dedup = dir.as_ref().map(|d| load_dedup(&d.join(DEDUP_FILE))).unwrap_or_default();
        let window_us = i64::try_from(config.delivery.dedup_window.as_micros()).unwrap_or(i64::MAX);
        Ok(Dispatcher {
            rt,
            sinks,
            window_us,
            dedup,
            spool_dir: dir,
            spool_max: config.delivery.spool_max_bytes,
            flush_timeout: config.delivery.flush_timeout,
            meta,
            incidents: 0,
            deduplicated: 0,
            seen: BTreeMap::new(),
        })
    }

    /// Deduplicates, filters, renders and sends incidents to every sink.
    pub fn send(&mut self, incidents: &[Incident]) {
        let now_us = format::now_ms() * 1000;
        for i in incidents {
            self.incidents += 1;
            *self.seen.entry((i.peak_severity, i.class.to_string())).or_default() += 1;
            let mut alert = Alert::new(i);
            let first = alert.incident.first_seen.unwrap_or(now_us);
            let last = alert.time_us().unwrap_or(now_us).max(first);
            if self.window_us > 0 {
                let e = self.dedup.entry(alert.key.clone()).or_default();
                // Within the window of an alert sent, on either side: a replay
                // of the same logs is held back as well as a repeat.
                let w = self.window_us;
                let escalates = i.peak_severity as u8 > e.severity;
                if !escalates
                    && e.sent.iter().any(|&(f, l)| first <= l.saturating_add(w) && last >= f.saturating_sub(w))
                {
                    e.repeats += 1;
                    e.repeated_flows += i.flows;
                    self.deduplicated += 1;
                    continue;
                }
                alert.repeats = e.repeats;
                alert.repeated_flows = e.repeated_flows;
            }
            // Remembered as sent only once every sink that wants it took it
            // or spooled it: one dropped (no spool, spool full) is sent
            // again by a later run rather than held back as a duplicate.
            let mut dropped = false;
            for s in &mut self.sinks {
                // CloudWatch takes the run's metrics at the end, not incidents.
                if let Target::CloudWatch(_) = s.cfg.target {
                    continue;
                }
                let wanted = i.peak_severity >= s.cfg.min_severity
                    && (s.cfg.classes.is_empty() || s.cfg.classes.iter().any(|c| c == i.class.as_ref()));
                if !wanted {
                    s.stats.filtered += 1;
                    continue;
                }
                let m = render(&s.cfg.target, &alert, &self.meta);
                let msg = json!({"uid": alert.uid, "message": m});
                dropped |= !self.rt.block_on(deliver(s, msg, self.spool_max));
            }
            if self.window_us > 0 && !dropped {
                let e = self.dedup.entry(alert.key.clone()).or_default();
                e.severity = e.severity.max(i.peak_severity as u8);
                e.repeats = 0;
                e.repeated_flows = 0;
                if e.sent.len() == DEDUP_KEEP {
                    e.sent.remove(0);
                }
                e.sent.push((first, last));
            }
        }
    }

    /// Sends the run's metrics to CloudWatch sinks, replays what waits in
    /// the spools, saves the dedup state and returns the summary.
    pub fn finish(mut self, stats: &RunStats) -> Summary {
        let time_ms = format::now_ms();
        for s in &mut self.sinks {
            if let Target::CloudWatch(_) = s.cfg.target {
                let m = metrics(stats, &self.seen, &s.cfg.dimensions, time_ms);
                self.rt.block_on(deliver(
                    s,
                    json!({"uid": format!("metrics-{time_ms}"), "message": m}),
                    self.spool_max,
                ));
            }
        }
        // A sink that is down gets until the flush timeout to come back.
        let until = Instant::now() + self.flush_timeout;
        for s in &mut self.sinks {
            while s.queued > 0 {
                self.rt.block_on(replay(s));
                let next = Instant::now() + PROBE;
                if s.queued == 0 || next > until {
                    break;
                }
                std::thread::sleep(PROBE);
            }
            s.stats.pending = s.queued;
        }
        if let Some(d) = &self.spool_dir {
            let (file, window_us) = (d.join(DEDUP_FILE), self.window_us);
            // Other runs on the same directory saved theirs since this run
            // loaded it: merge, under the lock, instead of overwriting.
            let saved = spool::locked(&d.join(format!("{DEDUP_FILE}.lock")), || {
                let mut merged = load_dedup(&file);
                merge_dedup(&mut merged, std::mem::take(&mut self.dedup), window_us);
                let b = serde_json::to_vec(&merged).map_err(std::io::Error::other)?;
                spool::replace(&file, &b)
            });
            if let Err(e) = saved {
                tracing::warn!("cannot save the dedup state in {}: {e}", d.display());
            }
        }
        Summary {
            incidents: self.incidents,
            deduplicated: self.deduplicated,
            sinks: self.sinks.into_iter().map(|s| s.stats).collect(),
        }
    }
}

fn load_dedup(p: &std::path::Path) -> BTreeMap<String, DedupEntry> {
    match fs::read(p) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!("dedup state {} unreadable ({e}); starting afresh", p.display());
            BTreeMap::new()
        }),
        Err(_) => BTreeMap::new(),
    }
}

/// Folds this run's dedup memory into what is saved: sent alerts are the
/// union, counts and severity the larger (both runs started from the same
/// saved counts), then alerts a week (of event time) older than the newest
/// are forgotten.
fn merge_dedup(into: &mut BTreeMap<String, DedupEntry>, ours: BTreeMap<String, DedupEntry>, window_us: i64) {
    for (k, e) in ours {
        let m = into.entry(k).or_default();
        m.sent.extend(e.sent);
        m.sent.sort_unstable();
        m.sent.dedup();
        if m.sent.len() > DEDUP_KEEP {
            m.sent.sort_by_key(|s| s.1);
            m.sent.drain(..m.sent.len() - DEDUP_KEEP);
        }
        m.repeats = m.repeats.max(e.repeats);
        m.repeated_flows = m.repeated_flows.max(e.repeated_flows);
        m.severity = m.severity.max(e.severity);
    }
    let newest = into.values().flat_map(|e| e.sent.iter().map(|s| s.1)).max().unwrap_or(0);
    let keep = newest.saturating_sub(DEDUP_KEEP_US.max(window_us));
    for e in into.values_mut() {
        e.sent.retain(|s| s.1 >= keep);
    }
    into.retain(|_, e| !e.sent.is_empty() || e.repeats > 0);
}

/// The message a sink sends for an alert (CloudWatch sinks take none).
fn render(t: &Target, a: &Alert<'_>, meta: &Meta) -> Value {
    match t {
        Target::Jsonl(_) | Target::Webhook(_) => format::native(a, meta),
        Target::Ocsf(_) => format::ocsf(a, meta),
        Target::Ecs(_) => format::ecs(a, meta),
        Target::Slack(_) => format::slack(a, meta),
        Target::Sns(_) => {
            let body = format::native(a, meta);
            let i = &a.incident;
            json!({
                "subject": format::sns_subject(a),
                // MessageStructure=json: subscribers get their protocol's entry or `default`.
                "message": {"default": body.to_string(), "email": format!("{}\n\n{}", format::summary(a), serde_json::to_string_pretty(&body).unwrap_or_default())},
                "attributes": {"severity": i.peak_severity.name(), "threat_class": i.class.as_ref(), "uid": a.uid},
            })
        }
        Target::CloudWatch(_) => Value::Null,
    }
}

/// The run's metrics: flows, rejected lines, anomalies and incidents in all
/// and by severity and by threat class, each with the sink's extra dimensions.
fn metrics(
    stats: &RunStats,
    seen: &BTreeMap<(Severity, String), u64>,
    dims: &BTreeMap<String, String>,
    time_ms: i64,
) -> Value {
    let mut out = Vec::new();
    let mut push = |name: &str, extra: Option<(&str, &str)>, value: u64| {
        let mut d: serde_json::Map<String, Value> =
            dims.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        if let Some((k, v)) = extra {
            d.insert(k.into(), v.into());
        }
        out.push(json!({"name": name, "dimensions": d, "value": value}));
    };
    push("FlowsProcessed", None, stats.flows);
    push("RejectedLines", None, stats.rejected);
    push("Anomalies", None, stats.anomalies.iter().sum());
    for (sev, n) in ["low", "medium", "high"].iter().zip(stats.anomalies) {
        push("Anomalies", Some(("Severity", sev)), n);
    }
    for (class, n) in &stats.anomalies_by_class {
        push("Anomalies", Some(("ThreatClass", class)), *n);
    }
    push("Incidents", None, seen.values().sum());
    for sev in [Severity::Low, Severity::Medium, Severity::High] {
        let n = seen.iter().filter(|((s, _), _)| *s == sev).map(|(_, n)| n).sum();
        push("Incidents", Some(("Severity", sev.name())), n);
    }
    let mut by_class: BTreeMap<&str, u64> = BTreeMap::new();
    for ((_, c), n) in seen {
        *by_class.entry(c).or_default() += n;
    }
    for (c, n) in by_class {
        push("Incidents", Some(("ThreatClass", c)), n);
    }
    json!({"time_ms": time_ms, "metrics": out})
}

/// Sends with retries: exponential backoff from `backoff`, capped at
/// `max_backoff`, each wait drawn uniformly below it (full jitter, so many
/// clients do not retry in step).
async fn attempt(s: &mut Sink, m: &Value) -> Result<(), Failure> {
    let mut n = 0u32;
    loop {
        match s.transport.send(m).await {
            Ok(()) => return Ok(()),
            Err(f) if f.retryable && n < s.cfg.retries => {
                n += 1;
                s.stats.retried += 1;
                let cap = s.cfg.backoff.saturating_mul(1 << n.min(16)).min(s.cfg.max_backoff);
                let wait = cap.mul_f64(rand::thread_rng().gen_range(0.0..1.0));
                tracing::debug!("sink {}: {} (retry {n} in {wait:?})", s.cfg.name, f.message);
                tokio::time::sleep(wait).await;
            }
            Err(f) => return Err(f),
        }
    }
}

/// Waits for the sink's rate limit, then sends with retries.
async fn paced(s: &mut Sink, m: &Value) -> Result<(), Failure> {
    let wait = s.bucket.take();
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    attempt(s, m).await
}

/// Sends or spools one message; false when it was dropped.
async fn deliver(s: &mut Sink, msg: Value, spool_max: u64) -> bool {
    // Order: while older messages wait, new ones queue behind them; a sink
    // that failed is probed again after a pause, not at every message.
    let rested = s.down.is_none_or(|t| t.elapsed() >= PROBE);
    if s.queued > 0 && rested {
        replay(s).await;
    }
    if s.queued == 0 && s.down.is_none() {
        match paced(s, &msg["message"]).await {
            Ok(()) => {
                s.stats.sent += 1;
                return true;
            }
            Err(f) => {
                tracing::warn!("sink {}: {}", s.cfg.name, f.message);
                s.stats.last_error = Some(f.message);
                s.down = Some(Instant::now());
            }
        }
    }
    spool(s, &msg, spool_max)
}

/// Appends a message to the sink's spool, or drops it (counted, false)
/// when there is no spool or it is full.
fn spool(s: &mut Sink, msg: &Value, max: u64) -> bool {
    let Some(sp) = &s.spool else {
        s.stats.dropped += 1;
        return false;
    };
    let mut line = msg.to_string();
    line.push('\n');
    let error = match sp.append(&line, max) {
        Ok(()) => {
            s.stats.spooled += 1;
            s.queued += 1;
            return true;
        }
        Err(AppendError::Full) => format!("spool {} is full ({max} bytes)", sp.path.display()),
        Err(AppendError::Io(e)) => format!("cannot write the spool {}: {e}", sp.path.display()),
    };
    s.stats.dropped += 1;
    s.stats.last_error = Some(error);
    false
}

/// Sends the spooled messages in order; stops at the first that fails and
/// gives it and the rest back to the spool (ahead of what other runs
/// appended meanwhile). Lines that are not JSON (a torn write) are kept
/// aside in `NAME.spool.bad` rather than lost or retried forever.
async fn replay(s: &mut Sink) {
    let Some(sp) = s.spool.clone() else { return };
    let claim = match sp.claim() {
        Ok(Some(c)) => c,
        Ok(None) => {
            s.queued = 0;
            return;
        }
        Err(e) => {
            s.stats.last_error = Some(format!("cannot read the spool {}: {e}", sp.path.display()));
            return;
        }
    };
    let lines = claim.lines();
    let mut done = 0;
    let mut bad = Vec::new();
    s.down = None;
    for l in &lines {
        let Ok(msg) = serde_json::from_str::<Value>(l) else {
            bad.push(*l);
            done += 1;
            continue;
        };
        match paced(s, &msg["message"]).await {
            Ok(()) => {
                s.stats.sent += 1;
                s.stats.replayed += 1;
                done += 1;
            }
            Err(f) => {
                s.stats.last_error = Some(f.message);
                s.down = Some(Instant::now());
                break;
            }
        }
    }
    if !bad.is_empty() {
        let aside = sp.path.with_extension("bad");
        let kept = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&aside)
            .and_then(|mut f| f.write_all((bad.join("\n") + "\n").as_bytes()));
        tracing::warn!(
            "{}: {} unreadable spool lines moved to {} ({kept:?})",
            sp.path.display(),
            bad.len(),
            aside.display()
        );
    }
    let unsent = (lines.len() - done) as u64;
    match sp.give_back(claim, done) {
        Ok(n) => s.queued = n,
        Err(e) => {
            // The claim file keeps the lines: the next replay takes it over.
            s.queued = unsent;
            s.stats.last_error = Some(format!("cannot rewrite the spool {}: {e}", sp.path.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_paces_after_the_burst() {
        let mut b = Bucket::new(10.0, 2);
        assert_eq!(b.take(), Duration::ZERO);
        assert_eq!(b.take(), Duration::ZERO);
        let w = b.take();
        assert!(w > Duration::from_millis(90) && w <= Duration::from_millis(100), "{w:?}");
    }
}
