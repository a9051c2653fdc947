//! Live sources for `watch`: each runs on its own thread and hands chunks of
//! parsed records to the detector through one bounded channel. One file per
//! source (`file.rs`, `dir.rs`, `s3.rs`, `stdin.rs`, `netflow.rs`,
//! `pcap.rs`); what they share is here.
//!
//! | spec | what it does |
//! |---|---|
//! | `file:PATH` | follows a growing log like `tail -F`: rotation (a new file at the path) is noticed and the old file read to its end first; truncation restarts at 0; a restart resumes at the saved offset when the file is the same (device and inode) |
//! | `dir:PATH` | reads every file that appears below PATH once it has stopped growing (gzip, Parquet and captures too); what was read is remembered across restarts |
//! | `s3://BUCKET/PREFIX` | lists the prefix every poll and reads new objects; what was read is remembered |
//! | `-` | standard input, until it ends |
//! | `netflow:ADDR:PORT` | a UDP collector for NetFlow v5, v9 and IPFIX |
//! | `pcap:FILE` | a capture's flows, once |
//!
//! Backpressure: file, directory, S3 and stdin sources wait when the channel
//! is full (nothing is lost, the writer's file just grows); a UDP collector
//! cannot make its exporters wait, so a chunk that finds the channel full is
//! dropped and counted. Every chunk carries the time it was received, for
//! the end-to-end latency, and, for followed files, the offset it ends at:
//! the detector saves that offset only after scoring the chunk, so a restart
//! neither loses nor repeats a line.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowhound_flow::netflow::{Collector, CollectorParams};
use flowhound_flow::{FlowRecord, Format};

use crate::input::Input;

mod dir;
mod file;
mod lines;
mod netflow;
mod pcap;
mod s3;
mod stdin;

pub use lines::LineFeed;

/// One `--source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    File(PathBuf),
    Dir(PathBuf),
    S3(String),
    Stdin,
    Netflow(SocketAddr),
    Pcap(PathBuf),
}

impl Spec {
    /// Parses every spec, listing every bad one.
    pub fn parse_all(specs: &[String]) -> Result<Vec<Spec>, String> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for s in specs {
            match Spec::parse(s) {
                Ok(x) => out.push(x),
                Err(e) => bad.push(e),
            }
        }
        if out.is_empty() && bad.is_empty() {
            bad.push("give at least one --source".to_string());
        }
        let stdin = out.iter().filter(|s| **s == Spec::Stdin).count();
        if stdin > 1 {
            bad.push("`-` (stdin) can be given once".to_string());
        }
        if bad.is_empty() {
            Ok(out)
        } else {
            Err(bad.join("; "))
        }
    }

    pub fn parse(s: &str) -> Result<Spec, String> {
        let nonempty = |p: &str, what: &str| {
            if p.is_empty() {
                Err(format!("{s:?}: {what} needs a path"))
            } else {
                Ok(PathBuf::from(p))
            }
        };
        if s == "-" {
            return Ok(Spec::Stdin);
        }
        if s.starts_with("s3://") {
            return match crate::s3::split(s) {
                Some(_) => Ok(Spec::S3(s.to_string())),
                None => Err(format!("{s:?}: expected s3://BUCKET/PREFIX")),
            };
        }
        match s.split_once(':') {
            Some(("file", p)) => nonempty(p, "file:").map(Spec::File),
            Some(("dir", p)) => nonempty(p, "dir:").map(Spec::Dir),
            Some(("pcap", p)) => nonempty(p, "pcap:").map(Spec::Pcap),
            Some(("netflow", a)) => {
                let a = if a.starts_with(':') { format!("0.0.0.0{a}") } else { a.to_string() };
                a.parse()
                    .map(Spec::Netflow)
                    .map_err(|_| format!("{s:?}: expected netflow:ADDR:PORT, e.g. netflow:0.0.0.0:2055"))
            }
            _ => Err(format!(
                "{s:?}: expected file:PATH, dir:PATH, s3://BUCKET/PREFIX, -, netflow:ADDR:PORT or pcap:FILE"
            )),
        }
    }

    /// Whether the source ends by itself (stdin, a capture).
    pub fn finite(&self) -> bool {
        matches!(self, Spec::Stdin | Spec::Pcap(_))
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spec::File(p) => write!(f, "file:{}", p.display()),
            Spec::Dir(p) => write!(f, "dir:{}", p.display()),
            Spec::S3(u) => f.write_str(u),
            Spec::Stdin => f.write_str("-"),
            Spec::Netflow(a) => write!(f, "netflow:{a}"),
            Spec::Pcap(p) => write!(f, "pcap:{}", p.display()),
        }
    }
}

/// Counters of one source, shared with the detector's metrics.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub records: AtomicU64,
    pub rejected: AtomicU64,
    /// Records dropped because the detector was behind (UDP only).
    pub dropped: AtomicU64,
    /// Records the exporters' sequence numbers say never arrived (NetFlow).
    pub lost: AtomicU64,
    /// Files or objects read (dir, S3), or export packets (NetFlow).
    pub units: AtomicU64,
    /// Read errors, unreadable files, undecodable packets.
    pub errors: AtomicU64,
    pub done: AtomicBool,
}

/// Where a chunk ends, for the saved state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    None,
    /// A followed file: identity and the offset after the last whole line.
    Offset {
        dev: u64,
        ino: u64,
        offset: u64,
    },
    /// A directory file or S3 object that has been read completely.
    Done(String),
}

/// Records from one source.
#[derive(Debug)]
pub struct Chunk {
    pub source: usize,
    pub records: Vec<FlowRecord>,
    pub received: Instant,
    pub mark: Mark,
}

/// Settings shared by the sources.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub format: Option<Format>,
    /// How often files, directories and S3 prefixes are checked.
    pub poll: Duration,
    /// The S3 listing interval (listing costs requests).
    pub s3_poll: Duration,
    pub netflow: CollectorParams,
    /// Records per chunk (a UDP source also sends a chunk after 50 ms).
    pub chunk: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            format: None,
            poll: Duration::from_millis(200),
            s3_poll: Duration::from_secs(30),
            netflow: CollectorParams::default(),
            chunk: 4096,
        }
    }
}

/// The channel to the detector, with its depth for the metrics.
#[derive(Debug, Clone)]
pub struct Feed {
    pub tx: SyncSender<Chunk>,
    pub depth: Arc<AtomicUsize>,
    pub stop: Arc<AtomicBool>,
}

impl Feed {
    /// Waits for room (backpressure); false when the detector is gone.
    fn send(&self, c: Chunk) -> bool {
        self.depth.fetch_add(1, Ordering::Relaxed);
        let ok = self.tx.send(c).is_ok();
        if !ok {
            self.depth.fetch_sub(1, Ordering::Relaxed);
        }
        ok
    }

    /// Sends without waiting; a full channel gives the chunk back.
    fn try_send(&self, c: Chunk) -> Result<(), Chunk> {
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(c) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(c) | TrySendError::Disconnected(c)) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Err(c)
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What a source resumes from (saved by the detector).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resume {
    /// Followed file: (dev, ino, offset).
    pub offset: Option<(u64, u64, u64)>,
    /// Directory files / S3 keys already read.
    pub done: BTreeSet<String>,
}

/// Starts a source's thread. Errors that make the source useless from the
/// start (an address in use, an unreadable capture) are returned here.
pub fn spawn(
    index: usize,
    spec: &Spec,
    opts: &LiveOptions,
    resume: Resume,
    feed: Feed,
    stats: Arc<SourceStats>,
) -> Result<JoinHandle<()>, String> {
    let opts = opts.clone();
    let name = spec.to_string();
    let ctx = Ctx { index, opts, feed, stats };
    let handle = match spec.clone() {
        Spec::Netflow(addr) => {
            let sock = netflow::bind_udp(addr).map_err(|e| format!("{name}: cannot listen: {e}"))?;
            let collector = Collector::new(&ctx.opts.netflow).map_err(|e| format!("{name}: {e}"))?;
            std::thread::Builder::new().name(name.clone()).spawn(move || ctx.netflow(sock, collector))
        }
        Spec::Pcap(path) => {
            let data = std::fs::read(&path).map_err(|e| format!("{name}: {e}"))?;
            std::thread::Builder::new().name(name.clone()).spawn(move || ctx.pcap(&path, &data))
        }
        Spec::File(path) => std::thread::Builder::new().name(name.clone()).spawn(move || ctx.follow(&path, resume)),
        Spec::Dir(path) => {
            if !path.is_dir() {
                return Err(format!("{name}: not a directory"));
            }
            std::thread::Builder::new().name(name.clone()).spawn(move || ctx.dir(&path, resume))
        }
        Spec::S3(url) => std::thread::Builder::new().name(name.clone()).spawn(move || ctx.s3(&url, resume)),
        Spec::Stdin => std::thread::Builder::new().name(name.clone()).spawn(move || ctx.stdin()),
    };
    handle.map_err(|e| format!("{name}: cannot start a thread: {e}"))
}

/// What every source thread has: its index, the options, the channel and its counters.
struct Ctx {
    index: usize,
    opts: LiveOptions,
    feed: Feed,
    stats: Arc<SourceStats>,
}

impl Ctx {
    pub(super) fn chunk(&self, records: Vec<FlowRecord>, received: Instant, mark: Mark) -> Chunk {
        Chunk { source: self.index, records, received, mark }
    }

    /// Sends records (in chunks of the configured size) with backpressure;
    /// the mark goes with the last. False when the detector is gone.
    pub(super) fn send_all(&self, mut recs: Vec<FlowRecord>, received: Instant, mark: Mark) -> bool {
        self.stats.records.fetch_add(recs.len() as u64, Ordering::Relaxed);
        while recs.len() > self.opts.chunk {
            let rest = recs.split_off(self.opts.chunk);
            if !self.feed.send(self.chunk(recs, received, Mark::None)) {
                return false;
            }
            recs = rest;
        }
        if recs.is_empty() && mark == Mark::None {
            return true;
        }
        self.feed.send(self.chunk(recs, received, mark))
    }

    pub(super) fn sleep(&self) {
        std::thread::sleep(self.opts.poll);
    }

    pub(super) fn done(&self) {
        self.stats.done.store(true, Ordering::Relaxed);
    }

    pub(super) fn note_rejects(&self, lf: &mut LineFeed, name: &str, before: u64) {
        if lf.rejected > before {
            self.stats.rejected.fetch_add(lf.rejected - before, Ordering::Relaxed);
            if let Some(p) = lf.first_problem.take() {
                eprintln!("watch: {name}: {} line(s) rejected; first: {p}", lf.rejected - before);
            }
        }
    }

    /// Reads one whole file or object into records.
    pub(super) fn read_whole(&self, input: &Input, name: &str) -> Vec<FlowRecord> {
        let mut out = Vec::new();
        let mut lf = LineFeed::new(self.opts.format.clone());
        let res = input.open(Arc::new(AtomicU64::new(0))).map_err(|e| e.to_string()).and_then(|mut rd| {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match rd.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => lf.feed(&buf[..n], &mut out),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        });
        lf.finish(&mut out);
        self.note_rejects(&mut lf, name, 0);
        if let Err(e) = res {
            // Everything read before the problem is kept.
            eprintln!("watch: {name}: {e}");
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.units.fetch_add(1, Ordering::Relaxed);
        out
    }
}

#[cfg(unix)]
pub(super) fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
pub(super) fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    // No inode: creation time stands in for identity.
    let t = m.created().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    (0, t.map_or(0, |d| d.as_nanos() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_every_bad_one_is_listed() {
        let ok = Spec::parse_all(&[
            "file:/var/log/flows.log".into(),
            "dir:logs".into(),
            "s3://bucket/AWSLogs/".into(),
            "-".into(),
            "netflow::2055".into(),
            "netflow:127.0.0.1:9995".into(),
            "pcap:x.pcapng".into(),
        ])
        .expect("all valid");
        assert_eq!(ok[4], Spec::Netflow("0.0.0.0:2055".parse().expect("addr")));
        assert_eq!(ok.iter().map(ToString::to_string).collect::<Vec<_>>()[5], "netflow:127.0.0.1:9995");
        let e = Spec::parse_all(&["file:".into(), "netflow:nope".into(), "udp:1".into(), "-".into(), "-".into()])
            .expect_err("all bad");
        for want in ["file: needs a path", "netflow:ADDR:PORT", "udp:1", "stdin"] {
            assert!(e.contains(want), "{e}");
        }
    }
}
