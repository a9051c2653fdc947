//! Live sources for `watch`: each runs on its own thread and hands chunks of
//! parsed records to the detector through one bounded channel.
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

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowhound_flow::netflow::{Collector, CollectorParams};
use flowhound_flow::{AnyReader, FlowReader, FlowRecord, Format};

use crate::input::{DayRange, Input};

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
            let sock = bind_udp(addr).map_err(|e| format!("{name}: cannot listen: {e}"))?;
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

/// A UDP socket with a large receive buffer: bursts from exporters wait in
/// the kernel instead of being dropped while the collector thread works.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // The kernel caps this at net.core.rmem_max; asking is free.
    let _ = s.set_recv_buffer_size(32 << 20);
    s.bind(&addr.into())?;
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(s)
}

/// Lines in, records out, for sources that deliver bytes piecemeal: keeps
/// the partial last line, detects the format from the first whole lines (or
/// uses the forced one), and counts rejected lines.
#[derive(Debug)]
pub struct LineFeed {
    forced: Option<Format>,
    reader: Option<AnyReader>,
    carry: Vec<u8>,
    pub rejected: u64,
    /// The first problem, for the log.
    pub first_problem: Option<String>,
}

impl LineFeed {
    pub fn new(forced: Option<Format>) -> Self {
        LineFeed { forced, reader: None, carry: Vec::new(), rejected: 0, first_problem: None }
    }

    /// Bytes held back as an incomplete last line.
    pub fn pending(&self) -> usize {
        self.carry.len()
    }

    /// Adds bytes; parses every complete line.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<FlowRecord>) {
        self.carry.extend_from_slice(data);
        let Some(end) = memchr::memrchr(b'\n', &self.carry) else {
            if self.carry.len() > crate::MAX_LINE {
                self.reject_text("a line longer than 16 MiB was skipped");
                self.carry.clear();
            }
            return;
        };
        let rest = self.carry.split_off(end + 1);
        let whole = std::mem::replace(&mut self.carry, rest);
        self.lines(&whole, out);
    }

    /// The input ended: a last line without a newline counts too.
    pub fn finish(&mut self, out: &mut Vec<FlowRecord>) {
        let rest = std::mem::take(&mut self.carry);
        if !rest.is_empty() {
            self.lines(&rest, out);
        }
    }

    /// Reads the start of a file whose records were already processed (a
    /// resumed follow): learns its format and header, keeps no record.
    pub fn prime(&mut self, start: &[u8]) {
        let mut sink = Vec::new();
        let end = memchr::memrchr(b'\n', start).map_or(0, |i| i + 1);
        let rejected = self.rejected;
        self.lines(&start[..end], &mut sink);
        self.rejected = rejected;
    }

    fn reject_text(&mut self, what: &str) {
        self.rejected += 1;
        if self.first_problem.is_none() {
            self.first_problem = Some(what.to_string());
        }
    }

    fn lines(&mut self, data: &[u8], out: &mut Vec<FlowRecord>) {
        let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
        if self.reader.is_none() {
            let format = match &self.forced {
                Some(f) => Ok(f.clone()),
                None => flowhound_flow::detect(&data[..data.len().min(64 << 10)]),
            };
            match format {
                Ok(f) => self.reader = Some(f.reader()),
                Err(e) => {
                    let n = data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64;
                    self.rejected += n;
                    self.first_problem.get_or_insert_with(|| format!("unknown format: {e}"));
                    return;
                }
            }
        }
        let Some(reader) = self.reader.as_mut() else { return };
        for line in data.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if let Err(r) = reader.read_line(line, out) {
                self.rejected += 1;
                if self.first_problem.is_none() {
                    self.first_problem = Some(r.to_string());
                }
            }
        }
    }
}

struct Ctx {
    index: usize,
    opts: LiveOptions,
    feed: Feed,
    stats: Arc<SourceStats>,
}

impl Ctx {
    fn chunk(&self, records: Vec<FlowRecord>, received: Instant, mark: Mark) -> Chunk {
        Chunk { source: self.index, records, received, mark }
    }

    /// Sends records (in chunks of the configured size) with backpressure;
    /// the mark goes with the last. False when the detector is gone.
    fn send_all(&self, mut recs: Vec<FlowRecord>, received: Instant, mark: Mark) -> bool {
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

    fn sleep(&self) {
        std::thread::sleep(self.opts.poll);
    }

    fn done(&self) {
        self.stats.done.store(true, Ordering::Relaxed);
    }

    fn note_rejects(&self, lf: &mut LineFeed, name: &str, before: u64) {
        if lf.rejected > before {
            self.stats.rejected.fetch_add(lf.rejected - before, Ordering::Relaxed);
            if let Some(p) = lf.first_problem.take() {
                eprintln!("watch: {name}: {} line(s) rejected; first: {p}", lf.rejected - before);
            }
        }
    }

    fn stdin(self) {
        let mut lf = LineFeed::new(self.opts.format.clone());
        let mut buf = vec![0u8; 1 << 16];
        let mut stdin = io::stdin().lock();
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("watch: stdin: {e}");
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
            let received = Instant::now();
            let mut out = Vec::new();
            let before = lf.rejected;
            lf.feed(&buf[..n], &mut out);
            self.note_rejects(&mut lf, "stdin", before);
            if !self.send_all(out, received, Mark::None) || self.feed.stopped() {
                return self.done();
            }
        }
        let mut out = Vec::new();
        let before = lf.rejected;
        lf.finish(&mut out);
        self.note_rejects(&mut lf, "stdin", before);
        self.send_all(out, Instant::now(), Mark::None);
        self.done();
    }

    fn pcap(self, path: &Path, data: &[u8]) {
        let (recs, stats) = flowhound_flow::pcap::flows(data, Default::default());
        if let Some(e) = &stats.error {
            eprintln!("watch: {}: {e}", path.display());
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.units.fetch_add(stats.packets, Ordering::Relaxed);
        self.send_all(recs, Instant::now(), Mark::None);
        self.done();
    }

    fn netflow(self, sock: UdpSocket, mut c: Collector) {
        let mut buf = vec![0u8; 65_536];
        let mut pending: Vec<FlowRecord> = Vec::with_capacity(self.opts.chunk);
        let mut since = Instant::now();
        let mut first_rx: Option<Instant> = None;
        let mut seen = c.stats.clone();
        while !self.feed.stopped() {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    first_rx.get_or_insert_with(Instant::now);
                    c.packet(from, &buf[..n], &mut pending);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("watch: netflow: {e}");
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            let s = &c.stats;
            self.stats.units.fetch_add(s.packets - seen.packets, Ordering::Relaxed);
            self.stats.errors.fetch_add(s.errors - seen.errors, Ordering::Relaxed);
            self.stats.lost.fetch_add(s.lost - seen.lost, Ordering::Relaxed);
            seen = s.clone();
            let due = since.elapsed() >= Duration::from_millis(50);
            if !pending.is_empty() && (pending.len() >= self.opts.chunk || due) {
                let recs = std::mem::replace(&mut pending, Vec::with_capacity(self.opts.chunk));
                let n = recs.len() as u64;
                self.stats.records.fetch_add(n, Ordering::Relaxed);
                let received = first_rx.take().unwrap_or_else(Instant::now);
                if self.feed.try_send(self.chunk(recs, received, Mark::None)).is_err() {
                    // The detector is behind: drop here, counted, rather
                    // than let the kernel drop uncounted or memory grow.
                    self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                }
                since = Instant::now();
            } else if pending.is_empty() {
                since = Instant::now();
            }
        }
        self.done();
    }

    /// Follows one file (see the module docs).
    fn follow(self, path: &Path, resume: Resume) {
        let name = path.display().to_string();
        let mut cur: Option<(File, u64, u64)> = None; // (file, dev, ino)
        let mut offset = 0u64;
        let mut lf = LineFeed::new(self.opts.format.clone());
        let mut resume = resume.offset;
        let mut buf = vec![0u8; 1 << 20];
        let mut warned_missing = false;
        while !self.feed.stopped() {
            if cur.is_none() {
                match File::open(path).and_then(|f| Ok((identity(&f.metadata()?), f))) {
                    Ok(((dev, ino), mut f)) => {
                        warned_missing = false;
                        offset = 0;
                        lf = LineFeed::new(self.opts.format.clone());
                        if let Some((d, i, o)) = resume.take() {
                            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                            if (d, i) == (dev, ino) && o <= len {
                                // Same file: learn its header, skip what was done.
                                let mut start = Vec::new();
                                let _ = (&mut f).take(o.min(64 << 10)).read_to_end(&mut start);
                                lf.prime(&start);
                                offset = o;
                            }
                        }
                        if f.seek(SeekFrom::Start(offset)).is_err() {
                            offset = 0;
                        }
                        cur = Some((f, dev, ino));
                    }
                    Err(e) => {
                        if !warned_missing {
                            eprintln!("watch: {name}: {e}; waiting for it");
                            warned_missing = true;
                        }
                        self.sleep();
                        continue;
                    }
                }
            }
            let Some((f, dev, ino)) = cur.as_mut() else { continue };
            let (dev, ino) = (*dev, *ino);
            let n = match f.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("watch: {name}: {e}");
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    cur = None;
                    self.sleep();
                    continue;
                }
            };
            if n > 0 {
                let received = Instant::now();
                offset += n as u64;
                let mut out = Vec::new();
                let before = lf.rejected;
                lf.feed(&buf[..n], &mut out);
                self.note_rejects(&mut lf, &name, before);
                let mark = Mark::Offset { dev, ino, offset: offset - lf.pending() as u64 };
                if !self.send_all(out, received, mark) {
                    return self.done();
                }
                continue;
            }
            // At the end: has the file been truncated, or replaced?
            let now = std::fs::metadata(path).ok();
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offset {
                eprintln!("watch: {name}: truncated; reading from the start");
                let _ = f.seek(SeekFrom::Start(0));
                offset = 0;
                lf = LineFeed::new(self.opts.format.clone());
                continue;
            }
            match now {
                Some(m) if identity(&m) != (dev, ino) => {
                    // Rotated: the old file is read to its end (just done);
                    // a last line without newline there is complete now.
                    let mut out = Vec::new();
                    lf.finish(&mut out);
                    let mark = Mark::Offset { dev, ino, offset };
                    if !self.send_all(out, Instant::now(), mark) {
                        return self.done();
                    }
                    cur = None;
                }
                _ => self.sleep(),
            }
        }
        self.done();
    }

    /// Reads one whole file or object into records.
    fn read_whole(&self, input: &Input, name: &str) -> Vec<FlowRecord> {
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

    fn dir(self, root: &Path, resume: Resume) {
        let mut done = resume.done;
        // Path → (size, first seen at that size): read once it stops growing.
        let mut growing: BTreeMap<String, (u64, Instant)> = BTreeMap::new();
        let settle = self.opts.poll.max(Duration::from_millis(500));
        while !self.feed.stopped() {
            let mut files: Vec<(String, u64)> = walkdir::WalkDir::new(root)
                .follow_links(true)
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .filter_map(|e| Some((e.path().to_string_lossy().into_owned(), e.metadata().ok()?.len())))
                .filter(|(p, _)| !done.contains(p))
                .collect();
            files.sort();
            for (p, size) in files {
                let stable = match growing.get(&p) {
                    Some((s, since)) if *s == size => since.elapsed() >= settle,
                    _ => {
                        growing.insert(p.clone(), (size, Instant::now()));
                        false
                    }
                };
                if !stable {
                    continue;
                }
                growing.remove(&p);
                let received = Instant::now();
                let recs = self.read_whole(&Input::Path(PathBuf::from(&p)), &p);
                done.insert(p.clone());
                if !self.send_all(recs, received, Mark::Done(p)) {
                    return self.done();
                }
                if self.feed.stopped() {
                    break;
                }
            }
            self.sleep();
        }
        self.done();
    }

    fn s3(self, url: &str, resume: Resume) {
        let Some((bucket, _)) = crate::s3::split(url) else { return self.done() };
        let bucket = bucket.to_string();
        let mut done = resume.done;
        let mut next = Instant::now();
        while !self.feed.stopped() {
            if Instant::now() < next {
                std::thread::sleep(self.opts.poll.min(Duration::from_millis(200)));
                continue;
            }
            next = Instant::now() + self.opts.s3_poll;
            let objs = match crate::s3::list(url, &DayRange::default()) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("watch: {e}");
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let fresh: Vec<_> = objs.into_iter().filter(|o| !done.contains(&o.key)).collect();
            for o in fresh {
                let input = Input::S3 { bucket: bucket.clone(), key: o.key.clone(), size: o.size };
                let received = Instant::now();
                let recs = self.read_whole(&input, &input.name());
                done.insert(o.key.clone());
                if !self.send_all(recs, received, Mark::Done(o.key)) || self.feed.stopped() {
                    return self.done();
                }
            }
        }
        self.done();
    }
}

#[cfg(unix)]
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
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

    #[test]
    fn a_line_feed_keeps_partial_lines_and_counts_rejects() {
        let mut lf = LineFeed::new(None);
        let mut out = Vec::new();
        let text = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n\
                    2 1 eni-1 10.0.0.1 10.0.0.2 4000 22 6 3 180 1700000000 1700000060 ACCEPT OK\n\
                    2 1 eni-1 10.0.0.1 not-an-ip 4000 22 6 3 180 1700000000 1700000060 ACCEPT OK\n\
                    2 1 eni-1 10.0.0.1 10.0.0.3 4000 22 6 3 180 1700000000 1700000060 ACC";
        let (a, b) = text.split_at(150);
        lf.feed(a.as_bytes(), &mut out);
        assert!(out.is_empty() && lf.pending() > 0);
        lf.feed(b.as_bytes(), &mut out);
        assert_eq!((out.len(), lf.rejected), (1, 1));
        lf.feed(b"EPT OK\n", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].dst, "10.0.0.3".parse().ok());
        // A resumed follow learns the header without emitting its records.
        let mut resumed = LineFeed::new(None);
        resumed.prime(text.as_bytes());
        let mut out = Vec::new();
        resumed.feed(b"2 1 eni-1 10.0.0.9 10.0.0.2 4000 22 6 3 180 1700000000 1700000060 ACCEPT OK\n", &mut out);
        assert_eq!((out.len(), resumed.rejected), (1, 0));
    }
}
