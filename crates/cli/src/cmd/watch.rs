//! `flowhound watch`: a long-running detector over live sources.
//!
//! Sources (crates/source/src/live.rs) run on their own threads and send
//! chunks of records through one bounded channel. This loop gathers them
//! into batches (scored when full or after `--flush`), explains and writes
//! the flagged flows as they are scored, grows incidents and hands every
//! classed incident that grew to the sinks at once (their dedup keeps one
//! alert per incident, and alerts again when it escalates), and ends
//! incidents once event time has moved a gap (plus the allowed lateness)
//! past their last flow. Records are scored in arrival order, exactly as
//! `detect` scores a file, so replaying a file gives the same findings.
//! Offsets of followed files and the files and objects read are saved after
//! their records were scored: a restart neither loses nor repeats them.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{Batch, Batches, Severity};
use flowhound_engine::live::{self as events, Clock};
use flowhound_engine::{Show, Step};
use flowhound_explain::{Allowlist, Incident, Incidents};
use flowhound_server::analysis::Flagged;
use flowhound_server::live::LiveFeed;
use flowhound_source::live::{self, Chunk, Feed, LiveOptions, Mark, Resume, SourceStats, Spec};

use super::detect::ScoreArgs;
use super::findings::{FindingArgs, Findings};
use super::sinks::SinkArgs;
use crate::exit::{Classify, CliError, CliResult};

/// Watch live flow sources and report anomalies as they happen.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Sources (--source, repeatable):\n  file:PATH          follow a growing log (rotation, truncation, resume after restart)\n  dir:PATH           read every file that appears below PATH\n  s3://BUCKET/PREFIX read new objects as they are delivered\n  -                  standard input\n  netflow:ADDR:PORT  NetFlow v5/v9/IPFIX collector (UDP)\n  pcap:FILE          a packet capture's flows\n\nOutput: JSON lines of flagged flows as `detect` writes them (with --incidents: incidents, as they\nend). Incidents go to the sinks (--sink/--config) as soon as they are classed. SIGINT/SIGTERM\nscore what was read, end open incidents, deliver and save state, then exit 0.\n\nExamples:\n  flowhound watch -m model --source file:/var/log/flows.log\n  flowhound watch -m model --source netflow:0.0.0.0:2055 --sink sns:arn:aws:sns:us-east-1:1:alerts --metrics 127.0.0.1:9102\n  flowhound watch -m model --source dir:/data/vpc --incidents -o incidents.jsonl"
)]
pub struct Args {
    /// Model folder written by `train`.
    #[arg(short, long = "model", value_name = "MODEL_DIR")]
    pub model: PathBuf,

    /// Where flows come from (see below); repeatable.
    #[arg(short, long = "source", value_name = "SPEC", required = true)]
    pub sources: Vec<String>,

    /// Append findings to this file (flushed after every batch); stdout when absent or `-`.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub score: ScoreArgs,

    #[command(flatten)]
    pub findings: FindingArgs,

    #[command(flatten)]
    pub sinks: SinkArgs,

    #[command(flatten)]
    pub live: LiveArgs,

    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// A one-line status on stderr this often (`0s`: never).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub status: String,

    /// No status lines or warnings on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// How live sources are read and batched: shared by `watch` and `serve --watch`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Live sources")]
pub struct LiveArgs {
    /// Skip format detection for line sources: vpc, zeek, zeek-json, zeek-csv, unsw, cic, csv, jsonl.
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<String>,

    /// How far behind the newest event time a record may arrive and still be counted on time;
    /// incidents end this much later than their gap (records later than this are scored and
    /// counted as late).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub lateness: String,

    /// Longest a record waits for its batch to fill before it is scored.
    #[arg(long, value_name = "DURATION", default_value = "250ms")]
    pub flush: String,

    /// Chunks of records waiting between the sources and the detector (backpressure beyond it).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub queue: usize,

    /// How often followed files and directories are checked.
    #[arg(long, value_name = "DURATION", default_value = "200ms")]
    pub poll: String,

    /// How often S3 prefixes are listed.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub s3_poll: String,

    /// A NetFlow v9/IPFIX template not refreshed for this long is forgotten.
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub template_timeout: String,

    /// Offsets of followed files and what was read from directories and S3
    /// [default: <state dir>/flowhound/watch].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Exit when no record has arrived for this long (replays, cron runs).
    #[arg(long, value_name = "DURATION")]
    pub idle_exit: Option<String>,

    /// How often the sources' offsets are saved together with the window state they lead to
    /// (a restart, even after kill -9, continues with the windows `detect` would have; up to this
    /// much input is read again).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub checkpoint: String,
}

/// Durations from the flags, every bad one listed.
struct Timing {
    lateness: Duration,
    flush: Duration,
    poll: Duration,
    s3_poll: Duration,
    template_timeout: Duration,
    status: Duration,
    idle_exit: Option<Duration>,
    checkpoint: Duration,
}

impl Args {
    fn timing(&self) -> CliResult<Timing> {
        let mut bad = Vec::new();
        let mut d = |flag: &str, v: &str| match flowhound_sink::config::parse_duration(v) {
            Some(d) => d,
            None => {
                bad.push(format!("{flag} {v:?}: expected a duration like 250ms, 10s, 5m"));
                Duration::ZERO
            }
        };
        let t = Timing {
            lateness: d("--lateness", &self.live.lateness),
            flush: d("--flush", &self.live.flush),
            poll: d("--poll", &self.live.poll),
            s3_poll: d("--s3-poll", &self.live.s3_poll),
            template_timeout: d("--template-timeout", &self.live.template_timeout),
            status: d("--status", &self.status),
            idle_exit: self.live.idle_exit.as_deref().map(|v| d("--idle-exit", v)),
            checkpoint: d("--checkpoint", &self.live.checkpoint),
        };
        if self.live.queue == 0 {
            bad.push("--queue must be at least 1".into());
        }
        if flowhound_sink::config::parse_duration(&self.live.poll) == Some(Duration::ZERO) {
            bad.push("--poll must be more than 0".into());
        }
        if bad.is_empty() {
            Ok(t)
        } else {
            Err(CliError::usage(anyhow::anyhow!(bad.join("; "))))
        }
    }
}

/// Flows scored at once live: half of `detect`'s batch. A full batch is
/// handed over two batches after it filled (the pipeline in
/// `flowhound_detect::run::Batches`), so at 100k flows/s a batch of 16,384
/// waits ~0.5 s before it is judged; halving it halves that, at the same
/// throughput (the models work in chunks of 2,048 rows either way).
const LIVE_BATCH: usize = 8_192;

/// Latency buckets (seconds), fine enough for a p99 under a second.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// What the metrics endpoint and the status line show.
#[derive(Debug, Default)]
struct Numbers {
    scored: u64,
    by_severity: [u64; 4],
    by_class: BTreeMap<String, u64>,
    incidents_by_severity: [u64; 4],
    incidents_open: usize,
    alerts_sent: u64,
    late: u64,
    written: u64,
    /// Per bucket (and one more for +Inf), the flows whose latency fell in it.
    latency: [u64; BUCKETS.len() + 1],
    latency_sum: f64,
}

impl Numbers {
    fn observe(&mut self, secs: f64, n: u64) {
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.latency[i] += n;
        self.latency_sum += secs * n as f64;
    }

    /// The upper bound of the bucket holding quantile `q`.
    fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (q * total as f64).ceil() as u64;
        let mut acc = 0;
        for (i, n) in self.latency.iter().enumerate() {
            acc += n;
            if acc >= want {
                return Some(BUCKETS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        None
    }
}

/// Everything the metrics thread reads.
struct Shared {
    names: Vec<String>,
    sources: Vec<Arc<SourceStats>>,
    depth: Arc<AtomicUsize>,
    numbers: Mutex<Numbers>,
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

impl Shared {
    /// The numbers, also after a panic elsewhere poisoned the lock: they are
    /// counters, never left half-updated in a way that matters.
    fn numbers(&self) -> std::sync::MutexGuard<'_, Numbers> {
        self.numbers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn prometheus(&self) -> String {
        use std::fmt::Write as _;
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
        metric("flows_scored_total", "counter", "Flows scored.", one(n.scored));
        metric("flows_late_total", "counter", "Flows that arrived later than --lateness.", one(n.late));
        let sev = |a: &[u64; 4]| {
            [Severity::Low, Severity::Medium, Severity::High]
                .iter()
                .map(|s| (format!("{{severity=\"{}\"}}", s.name()), a[*s as usize].to_string()))
                .collect::<Vec<_>>()
        };
        metric("anomalies_total", "counter", "Anomalous flows, by severity.", sev(&n.by_severity));
        metric(
            "findings_total",
            "counter",
            "Anomalous flows, by threat class.",
            n.by_class.iter().map(|(c, v)| (format!("{{class=\"{}\"}}", label(c)), v.to_string())).collect(),
        );
        metric("incidents_total", "counter", "Incidents ended, by peak severity.", sev(&n.incidents_by_severity));
        metric("incidents_open", "gauge", "Incidents still open.", one(n.incidents_open as u64));
        metric("alerts_total", "counter", "Incident snapshots handed to the sinks.", one(n.alerts_sent));
        let _ = writeln!(
            s,
            "# HELP flowhound_latency_seconds Time from a record's arrival to its finding being written.\n# TYPE flowhound_latency_seconds histogram"
        );
        let mut acc = 0;
        for (i, c) in n.latency.iter().enumerate() {
            acc += c;
            let le = BUCKETS.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(s, "flowhound_latency_seconds_bucket{{le=\"{le}\"}} {acc}");
        }
        let _ = writeln!(s, "flowhound_latency_seconds_sum {}\nflowhound_latency_seconds_count {acc}", n.latency_sum);
        s
    }

    fn status(&self, since: Instant, last: &mut (Instant, u64)) -> String {
        let r = Ordering::Relaxed;
        let sum = |f: &dyn Fn(&SourceStats) -> u64| self.sources.iter().map(|s| f(s)).sum::<u64>();
        let n = self.numbers();
        let dt = last.0.elapsed().as_secs_f64().max(1e-3);
        let rate = (n.scored - last.1) as f64 / dt;
        *last = (Instant::now(), n.scored);
        let q = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v}s"));
        format!(
            "watch {:.0}s: {} flows ({:.0}/s), {} anomalies, {} incidents open, {} alerts, {} rejected, {} dropped, {} lost, {} late, queue {}, latency p50 ≤{} p99 ≤{}, rss {} MiB",
            since.elapsed().as_secs_f64(),
            n.scored,
            rate,
            n.by_severity[1..].iter().sum::<u64>(),
            n.incidents_open,
            n.alerts_sent,
            sum(&|s| s.rejected.load(r)),
            sum(&|s| s.dropped.load(r)),
            sum(&|s| s.lost.load(r)),
            n.late,
            self.depth.load(r),
            q(n.quantile(0.5)),
            q(n.quantile(0.99)),
            rss_bytes() >> 20,
        )
    }
}

/// Serves `/metrics` on a plain thread: Prometheus scrapes every few
/// seconds, one connection at a time is plenty.
fn serve_metrics(addr: SocketAddr, shared: Arc<Shared>) -> CliResult {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| CliError::usage(anyhow::anyhow!("--metrics {addr}: cannot listen: {e}")))?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let n = std::io::Read::read(&mut c, &mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if req.starts_with("GET /metrics ") || req.starts_with("GET /metrics?") {
                ("200 OK", shared.prometheus())
            } else {
                ("404 Not Found", "only /metrics is here\n".to_string())
            };
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })
    .map_err(anyhow::Error::from)?;
    Ok(())
}

/// Saved progress of the sources, one JSON file per set of sources, and the
/// generation of the window checkpoint that goes with it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    sources: BTreeMap<String, Resume>,
    /// The checkpoint `<state>.windows.<generation>` holding the window state
    /// after exactly the records the offsets above cover.
    #[serde(default)]
    windows: Option<u64>,
}

/// The detector's side of a checkpoint: window state, the next flow
/// number, the event-time watermark.
struct Windows {
    flow: u64,
    watermark: i64,
    state: Vec<u8>,
}

const WINDOWS_MAGIC: &[u8; 8] = b"FHWATCH1";

/// Writes `path` whole or not at all: into a temporary file beside it,
/// then renamed over it.
fn replace_file(path: &Path, write: impl FnOnce(&mut std::fs::File) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    write(tmp.as_file_mut())?;
    tmp.persist(path)?;
    Ok(())
}

fn windows_path(state_file: &Path, generation: u64) -> PathBuf {
    let mut name = state_file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".windows.{generation}"));
    state_file.with_file_name(name)
}

impl Windows {
    fn save(&self, path: &Path) -> anyhow::Result<()> {
        replace_file(path, |f| {
            f.write_all(WINDOWS_MAGIC)?;
            f.write_all(&self.flow.to_le_bytes())?;
            f.write_all(&self.watermark.to_le_bytes())?;
            f.write_all(&self.state)?;
            Ok(f.sync_data()?)
        })
    }

    fn load(path: &Path) -> anyhow::Result<Windows> {
        let b = std::fs::read(path)?;
        let rest = b.strip_prefix(WINDOWS_MAGIC.as_slice()).ok_or_else(|| anyhow::anyhow!("not a watch checkpoint"))?;
        let (flow, rest) = rest.split_first_chunk::<8>().ok_or_else(|| anyhow::anyhow!("cut short"))?;
        let (mark, rest) = rest.split_first_chunk::<8>().ok_or_else(|| anyhow::anyhow!("cut short"))?;
        Ok(Windows { flow: u64::from_le_bytes(*flow), watermark: i64::from_le_bytes(*mark), state: rest.to_vec() })
    }
}

impl State {
    fn load(path: &Path) -> State {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                eprintln!("warning: {}: unreadable watch state ({e}); starting afresh", path.display());
                State::default()
            }),
            Err(_) => State::default(),
        }
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        replace_file(path, |f| Ok(serde_json::to_writer(f, self)?))
    }
}

/// Where findings go: appended and flushed per batch, so a reader of the
/// file (or the pipe) sees them at once; nowhere under `serve --watch`
/// without `-o` (the dashboard shows them).
enum LiveOut {
    Stdout(std::io::Stdout),
    File(std::fs::File),
    Nowhere,
}

impl LiveOut {
    fn open(path: Option<&Path>) -> CliResult<LiveOut> {
        match path.filter(|p| p.as_os_str() != "-") {
            None => Ok(LiveOut::Stdout(std::io::stdout())),
            Some(p) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map(LiveOut::File)
                .map_err(|e| CliError::usage(anyhow::anyhow!("cannot open {}: {e}", p.display()))),
        }
    }

    fn write(&mut self, b: &[u8]) -> anyhow::Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        let r = match self {
            LiveOut::Stdout(s) => {
                let mut l = s.lock();
                l.write_all(b)?;
                l.flush()
            }
            LiveOut::File(f) => f.write_all(b),
            LiveOut::Nowhere => Ok(()),
        };
        Ok(r?)
    }
}

/// Records pushed but not yet scored, per chunk, in order.
struct Pending {
    received: Instant,
    left: usize,
    source: usize,
    mark: Mark,
}

/// The detector's state between batches.
struct Live<'a> {
    bundle: &'a Bundle,
    names: Vec<&'static str>,
    classes: Option<Vec<String>>,
    step: Step,
    show: Show,
    allow: Allowlist,
    incidents: Incidents,
    a: &'a Args,
    out: LiveOut,
    buf: Vec<u8>,
    flow: u64,
    /// `flow` at the last checkpoint: nothing new, nothing to save.
    saved_flow: u64,
    clock: Clock,
    pending: VecDeque<Pending>,
    /// Marks of chunks whose records were all scored, per source.
    marks: Vec<Vec<Mark>>,
    shared: Arc<Shared>,
    dispatcher: Option<flowhound_sink::Dispatcher>,
    /// The dashboard's live analysis under `serve --watch`.
    dashboard: Option<LiveFeed>,
}

impl Live<'_> {
    fn batch(&mut self, b: &Batch<'_>) -> CliResult {
        if let Some(allow) = self.dashboard.as_mut().and_then(LiveFeed::allowlist_update) {
            self.allow = allow;
        }
        let e = self.step.flagged(self.bundle, b).map_err(anyhow::Error::from)?;
        let (b, found) = (&e.batch(b), &e.found);
        self.buf.clear();
        let mut n = Numbers::default();
        let wr = b.raw_width();
        let quiet = matches!(self.out, LiveOut::Nowhere);
        for (i, ((r, v), f)) in b.iter().zip(found).enumerate() {
            let flow = self.flow;
            self.flow += 1;
            n.scored += 1;
            n.by_severity[v.severity as usize] += 1;
            n.late += u64::from(self.clock.observe(r.start.map(|t| t.micros())));
            let shown = self.show.decide(&self.allow, r, v, f.is_some());
            let entry = shown.entry;
            if let Some(f) = f {
                *n.by_class.entry(f.class.to_string()).or_default() += 1;
            }
            if let (Some(f), true) = (f, shown.grows_incident()) {
                self.incidents.push(flow, r, v, f, entry.is_some());
            }
            if let Some(d) = self.dashboard.as_mut() {
                d.scored(r, v);
                if let (Some(f), true) = (f, shown.flagged) {
                    let raw = &b.raw[i * wr..(i + 1) * wr];
                    d.flagged(&Flagged { flow, r, v, f, entry, raw }, &self.names, self.classes.as_deref());
                }
            }
            if quiet || !shown.written {
                continue;
            }
            n.written += 1;
            let classes = self.classes.as_deref();
            let m = flowhound_explain::json::flow_json(flow, r, v, f.as_ref(), entry, &self.names, classes);
            let _ = serde_json::to_writer(&mut self.buf, &serde_json::Value::Object(m));
            self.buf.push(b'\n');
        }
        self.out.write(&self.buf)?;
        // Every flow of this batch has its finding written: its latency ends here.
        let now = Instant::now();
        let mut left = b.recs.len();
        while left > 0 {
            let Some(p) = self.pending.front_mut() else { break };
            let k = p.left.min(left);
            n.observe(now.duration_since(p.received).as_secs_f64(), k as u64);
            p.left -= k;
            left -= k;
            if p.left == 0 {
                if let Some(p) = self.pending.pop_front() {
                    self.marks[p.source].push(p.mark);
                }
            }
        }
        self.settle_empty();
        // Classed incidents go out when they open and when their severity
        // grows (growing in count they are updated on the dashboard, not
        // re-alerted); the weak ones when they end.
        let c = events::settle(&mut self.incidents, &self.clock);
        n.alerts_sent += self.alert(&c.alerts);
        self.write_incidents(&c.alerts, "open", &mut n)?;
        self.ended(&c.ended, &mut n)?;
        if let Some(d) = self.dashboard.as_mut() {
            d.publish(&c.touched, &c.ended).map_err(anyhow::Error::from)?;
        }
        n.incidents_open = self.incidents.open_count();
        self.merge(n);
        Ok(())
    }

    /// Chunks without records at the front of the queue are done as soon as
    /// everything before them is.
    fn settle_empty(&mut self) {
        while self.pending.front().is_some_and(|p| p.left == 0) {
            if let Some(p) = self.pending.pop_front() {
                self.marks[p.source].push(p.mark);
            }
        }
    }

    /// Hands incidents to the sinks; returns how many (none without sinks).
    fn alert(&mut self, incidents: &[Incident]) -> u64 {
        match (self.dispatcher.as_mut(), incidents.is_empty()) {
            (Some(d), false) => {
                d.send(incidents);
                incidents.len() as u64
            }
            _ => 0,
        }
    }

    /// Incidents that ended: to the sinks (weak ones alert here), and to the
    /// output with --incidents.
    fn ended(&mut self, ended: &[Incident], n: &mut Numbers) -> CliResult {
        if ended.is_empty() {
            return Ok(());
        }
        n.alerts_sent += self.alert(&events::owed(ended));
        for i in ended {
            n.incidents_by_severity[i.peak_severity as usize] += 1;
        }
        self.write_incidents(ended, "closed", n)
    }

    /// With --incidents: one line per incident as it opens or grows worse
    /// (`"status": "open"`) and as it ends (`"closed"`), the same `incident`
    /// id each time, so a reader updates it in place.
    fn write_incidents(&mut self, list: &[Incident], status: &str, n: &mut Numbers) -> CliResult {
        if !self.a.findings.incidents || list.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for i in list {
            let mut v = flowhound_explain::json::incident_json(i);
            if let Some(o) = v.as_object_mut() {
                o.insert("status".into(), status.into());
            }
            let _ = serde_json::to_writer(&mut buf, &v);
            buf.push(b'\n');
        }
        n.written += list.len() as u64;
        self.out.write(&buf)?;
        Ok(())
    }

    fn merge(&self, d: Numbers) {
        let mut n = self.shared.numbers();
        n.scored += d.scored;
        for i in 0..4 {
            n.by_severity[i] += d.by_severity[i];
            n.incidents_by_severity[i] += d.incidents_by_severity[i];
        }
        for (c, v) in d.by_class {
            *n.by_class.entry(c).or_default() += v;
        }
        n.incidents_open = d.incidents_open;
        n.alerts_sent += d.alerts_sent;
        n.late += d.late;
        n.written += d.written;
        for (a, b) in n.latency.iter_mut().zip(d.latency) {
            *a += b;
        }
        n.latency_sum += d.latency_sum;
    }
}

/// Saves the sources' offsets with the window state after exactly the
/// records they cover (`batches` idle): the windows under a new generation
/// first, then the offsets naming it, then the old generation goes — a
/// crash at any point leaves a state file and the windows it names.
fn checkpoint(state: &mut State, state_file: &Path, names: &[String], live: &mut Live<'_>, batches: &Batches<'_>) {
    let changed = apply_marks(state, names, &mut live.marks);
    let old = state.windows;
    // Nothing new since the last checkpoint: no need to encode the windows.
    if !changed && old.is_some() && live.flow == live.saved_flow {
        return;
    }
    let Some(w) = batches.checkpoint() else { return };
    let g = old.map_or(1, |g| g + 1);
    let windows = Windows { flow: live.flow, watermark: live.clock.watermark(), state: w };
    if let Err(e) = windows.save(&windows_path(state_file, g)) {
        eprintln!("warning: cannot save the window state beside {}: {e:#}", state_file.display());
        return;
    }
    state.windows = Some(g);
    match state.save(state_file) {
        Ok(()) => {
            live.saved_flow = live.flow;
            if let Some(o) = old {
                let _ = std::fs::remove_file(windows_path(state_file, o));
            }
        }
        Err(e) => {
            state.windows = old;
            let _ = std::fs::remove_file(windows_path(state_file, g));
            eprintln!("warning: cannot save watch state {}: {e:#}", state_file.display());
        }
    }
}

fn state_path(dir: &Path, specs: &[Spec]) -> PathBuf {
    // One file per set of sources: two watches over different sources keep
    // apart. FNV-1a of the specs names it.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in specs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    dir.join(format!("watch-{h:016x}.json"))
}

fn apply_marks(state: &mut State, names: &[String], marks: &mut [Vec<Mark>]) -> bool {
    let mut changed = false;
    for (i, ms) in marks.iter_mut().enumerate() {
        for m in ms.drain(..) {
            let e = state.sources.entry(names[i].clone()).or_default();
            match m {
                Mark::None => continue,
                Mark::Offset { dev, ino, offset } => e.offset = Some((dev, ino, offset)),
                Mark::Done(k) => {
                    e.done.insert(k);
                }
            }
            changed = true;
        }
    }
    changed
}

pub fn run(a: Args) -> CliResult {
    let stop = Arc::new(AtomicBool::new(false));
    run_with(a, None, stop, |_| {})
}

/// Runs the watch loop until `stop` (SIGINT/SIGTERM set it too), idle exit
/// or the end of finite sources. `started` hears once the sources run (a
/// setup error returns before it). With a dashboard, findings go to its live
/// analysis, and to stdout only when `-o -` asks for it.
pub fn run_with(
    a: Args,
    dashboard: Option<LiveFeed>,
    stop: Arc<AtomicBool>,
    started: impl FnOnce(&[String]),
) -> CliResult {
    let timing = a.timing()?;
    let bundle = super::detect::load_model(&a.model, &a.score.threshold, a.score.fpr)?;
    let specs = live::Spec::parse_all(&a.sources).map_err(|e| CliError::usage(anyhow::anyhow!("--source: {e}")))?;
    let format = match &a.live.input_format {
        Some(n) => Some(flowhound_flow::Format::from_name(n).ok_or_else(|| {
            CliError::usage(anyhow::anyhow!(
                "--input-format {n:?}: expected one of {}",
                flowhound_flow::Format::NAMES.join(", ")
            ))
        })?),
        None => None,
    };
    let names: Vec<String> = specs.iter().map(ToString::to_string).collect();
    let dispatcher = a.sinks.open("watch", a.output.as_deref(), &a.model, || names.join(" "))?;
    let Findings { explainer, allow, mut incidents } = a.findings.build(&bundle)?;
    // Feedback on a live incident names its first flows; a week-long flood
    // must not keep every flow id.
    incidents.limit_members(10_000);
    let state_dir = a
        .live
        .state_dir
        .clone()
        .or_else(|| dirs::state_dir().or_else(dirs::data_local_dir).map(|d| d.join("flowhound").join("watch")))
        .unwrap_or_else(|| PathBuf::from(".flowhound-watch"));
    let state_file = state_path(&state_dir, &specs);
    let mut state = State::load(&state_file);
    let out = match (&dashboard, &a.output) {
        (Some(_), None) => LiveOut::Nowhere,
        _ => LiveOut::open(a.output.as_deref())?,
    };

    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(anyhow::Error::from)?;
    }
    let (tx, rx) = sync_channel::<Chunk>(a.live.queue);
    let depth = Arc::new(AtomicUsize::new(0));
    let opts = LiveOptions {
        format,
        poll: timing.poll,
        s3_poll: timing.s3_poll,
        netflow: flowhound_flow::netflow::CollectorParams {
            template_timeout: timing.template_timeout,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut stats = Vec::new();
    let mut problems = Vec::new();
    // Sources stop on their own flag: the signal flag also ends the detector,
    // which must keep draining while they finish.
    let source_stop = Arc::new(AtomicBool::new(false));
    for (i, spec) in specs.iter().enumerate() {
        let st = Arc::new(SourceStats::default());
        let feed = Feed { tx: tx.clone(), depth: Arc::clone(&depth), stop: Arc::clone(&source_stop) };
        let resume = state.sources.get(&names[i]).cloned().unwrap_or_default();
        if let Err(e) = live::spawn(i, spec, &opts, resume, feed, Arc::clone(&st)) {
            problems.push(e);
        }
        stats.push(st);
    }
    drop(tx);
    if !problems.is_empty() {
        source_stop.store(true, Ordering::Relaxed);
        return Err(CliError::usage(anyhow::anyhow!(problems.join("; "))));
    }
    let shared = Arc::new(Shared {
        names: names.clone(),
        sources: stats,
        depth: Arc::clone(&depth),
        numbers: Default::default(),
    });
    if let Some(addr) = a.metrics {
        serve_metrics(addr, Arc::clone(&shared))?;
    }
    if !a.quiet {
        eprintln!("watch: {} source(s): {}", names.len(), names.join(", "));
    }
    started(&names);

    let mut live = Live {
        bundle: &bundle,
        names: bundle.ensemble.model_names(),
        classes: bundle.ensemble.supervised().map(|s| s.classes.clone()),
        step: Step::new(explainer),
        show: a.score.show(&a.findings),
        allow,
        incidents,
        a: &a,
        out,
        buf: Vec::new(),
        flow: 0,
        saved_flow: u64::MAX,
        clock: Clock::new(timing.lateness),
        pending: VecDeque::new(),
        marks: vec![Vec::new(); specs.len()],
        shared: Arc::clone(&shared),
        dispatcher,
        dashboard,
    };
    let mut batches = Batches::new(&bundle, LIVE_BATCH).usage()?;
    if let Some(g) = state.windows {
        let path = windows_path(&state_file, g);
        let restored = Windows::load(&path).and_then(|w| {
            batches.restore(&w.state)?;
            Ok(w)
        });
        match restored {
            Ok(w) => {
                live.flow = w.flow;
                live.clock.restore(w.watermark);
                if !a.quiet {
                    eprintln!("watch: window state restored ({} flows scored before)", w.flow);
                }
            }
            Err(e) => eprintln!("warning: {}: {e:#}; the windows start empty", path.display()),
        }
    }
    let started = Instant::now();
    let mut last_status = (Instant::now(), 0u64);
    let mut next_status = Instant::now() + timing.status;
    let mut last_record = Instant::now();
    let mut last_save = Instant::now();
    let mut stopping_since: Option<Instant> = None;
    let mut filling: Option<Instant> = None;
    let all_finite = specs.iter().all(Spec::finite);
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(chunk) => {
                depth.fetch_sub(1, Ordering::Relaxed);
                last_record = Instant::now();
                // Zero-record chunks still carry their mark (a file that
                // held only a header): it is applied once what is ahead of
                // it has been scored.
                live.pending.push_back(Pending {
                    received: chunk.received,
                    left: chunk.records.len(),
                    source: chunk.source,
                    mark: chunk.mark,
                });
                if chunk.records.is_empty() {
                    live.settle_empty();
                }
                let before = batches.pending();
                batches.push(&chunk.records, &mut |b: &Batch<'_>| live.batch(b))?;
                if batches.pending() == 0 {
                    filling = None;
                } else if before == 0 {
                    // The oldest record of the batch being filled waits from here.
                    filling = Some(Instant::now());
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                batches.flush(&mut |b: &Batch<'_>| live.batch(b))?;
                break;
            }
        }
        // Full batches move through the pipeline as records arrive. A batch
        // slow to fill, or batches left in flight when the traffic pauses,
        // are drained once `--flush` has passed.
        let waited = |t: Instant| t.elapsed() >= timing.flush;
        if filling.is_some_and(waited) || (batches.in_flight() && waited(last_record)) {
            batches.flush(&mut |b: &Batch<'_>| live.batch(b))?;
            filling = None;
        }
        let stopping = stop.load(Ordering::Relaxed)
            || timing.idle_exit.is_some_and(|d| last_record.elapsed() >= d && !batches.in_flight())
            || (all_finite
                && shared.sources.iter().all(|s| s.done.load(Ordering::Relaxed))
                && depth.load(Ordering::Relaxed) == 0);
        if stopping {
            source_stop.store(true, Ordering::Relaxed);
            let since = *stopping_since.get_or_insert_with(Instant::now);
            // Sources blocked on stdin cannot be woken: drain for a while.
            if since.elapsed() >= Duration::from_secs(2) && depth.load(Ordering::Relaxed) == 0 {
                batches.flush(&mut |b: &Batch<'_>| live.batch(b))?;
                break;
            }
        }
        if !timing.status.is_zero() && Instant::now() >= next_status && !a.quiet {
            eprintln!("{}", shared.status(started, &mut last_status));
            next_status = Instant::now() + timing.status;
        }
        if last_save.elapsed() >= timing.checkpoint {
            // Everything received is scored first, so the window state covers
            // exactly the records the offsets do.
            if batches.in_flight() {
                batches.flush(&mut |b: &Batch<'_>| live.batch(b))?;
                filling = None;
            }
            checkpoint(&mut state, &state_file, &names, &mut live, &batches);
            last_save = Instant::now();
        }
    }
    // Drain: every open incident ends now, and goes out.
    let mut n = Numbers::default();
    let ended = events::drain(&mut live.incidents);
    live.ended(&ended, &mut n)?;
    if let Some(mut d) = live.dashboard.take() {
        d.publish(&[], &ended).map_err(anyhow::Error::from)?;
        d.finish(None);
    }
    n.incidents_open = 0;
    live.merge(n);
    batches.flush(&mut |b: &Batch<'_>| live.batch(b))?;
    checkpoint(&mut state, &state_file, &names, &mut live, &batches);
    let mut failed = None;
    if let Some(d) = live.dispatcher.take() {
        let (flows, anomalies, by_class) = {
            let n = shared.numbers();
            (n.scored, [n.by_severity[1], n.by_severity[2], n.by_severity[3]], n.by_class.clone())
        };
        let rejected = shared.sources.iter().map(|s| s.rejected.load(Ordering::Relaxed)).sum();
        let summary = d.finish(&flowhound_sink::RunStats { flows, rejected, anomalies, anomalies_by_class: by_class });
        if !a.quiet {
            eprint!("{}", summary.render());
        }
        if summary.dropped() > 0 {
            failed = Some(summary.dropped());
        }
    }
    if !a.quiet {
        eprintln!("{}", shared.status(started, &mut last_status));
    }
    match failed {
        Some(k) => Err(CliError::from(anyhow::anyhow!("{k} alert(s) could not be delivered nor spooled"))),
        None => Ok(()),
    }
}
