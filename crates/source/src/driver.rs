//! The block driver: read → cut at newlines → parse sub-chunks in parallel →
//! map chunks in parallel → reduce in order.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use flowhound_flow::labels::LabelTable;
use flowhound_flow::{AnyReader, FlowReader, FlowRecord, Format, LineKind, Reject, RejectReason};
use rayon::prelude::*;

use crate::input::Input;

/// A line longer than this is skipped (and counted) instead of buffered: a
/// hostile file with no newlines must not take all memory. The check runs when
/// a buffer holds no newline, so a line up to one block longer may still be read
/// whole (and rejected by its parser); memory stays below this plus one block.
pub const MAX_LINE: usize = 16 << 20;

/// How a scan reads its inputs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Force a format instead of detecting it per file.
    pub format: Option<Format>,
    /// Ground truth for the (single) input, by line number.
    pub labels: Option<Arc<LabelTable>>,
    /// Bytes per block; each block is parsed on all cores.
    pub block_size: usize,
    /// Read every input first and hand the records on oldest first (stable:
    /// records of equal time, and those without one — last — keep their
    /// order). For input not in time order, whose time windows would mix
    /// periods; holds every record in memory.
    pub sort_by_time: bool,
}

impl ScanOptions {
    /// The format to read `start` (the first bytes of an input) with: the one
    /// forced by the options, or the one detected from its first 64 KiB.
    pub fn format_of(&self, start: &[u8]) -> Result<Format, flowhound_flow::FlowError> {
        match &self.format {
            Some(f) => Ok(f.clone()),
            None => flowhound_flow::detect(&start[..start.len().min(64 << 10)]),
        }
    }
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions { format: None, labels: None, block_size: 4 << 20, sort_by_time: false }
    }
}

/// A rejected line, as reported to [`ScanEvents::reject`].
#[derive(Debug)]
pub struct LineReject<'a> {
    pub file: &'a str,
    /// 1-based line number in the (decompressed) input.
    pub line: u64,
    pub reject: &'a Reject,
    /// The line as read, cut to 512 bytes.
    pub text: &'a [u8],
}

/// Callbacks while scanning; every method has a no-op default.
pub trait ScanEvents {
    fn reject(&mut self, _r: &LineReject<'_>) {}
    /// Raw (on-disk, possibly compressed) bytes consumed since the last call.
    fn progress(&mut self, _raw_bytes: u64) {}
    fn file_done(&mut self, _f: &FileReport) {}
}

impl ScanEvents for () {}

/// What one input gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileReport {
    pub name: String,
    pub format: Option<&'static str>,
    pub lines: u64,
    pub records: u64,
    pub rejected: u64,
    pub no_data: u64,
    pub skip_data: u64,
    pub first_reject: Option<(u64, Reject)>,
    /// Set when the input could not be read completely or at all (unreadable,
    /// unknown format, truncated gzip) or when no line of it parsed.
    pub error: Option<String>,
}

/// Totals of a scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanReport {
    pub files: Vec<FileReport>,
    pub records: u64,
    pub rejected: u64,
    pub rejects_by_reason: BTreeMap<RejectReason, u64>,
    pub no_data: u64,
    pub skip_data: u64,
}

impl ScanReport {
    pub fn failed_files(&self) -> impl Iterator<Item = &FileReport> {
        self.files.iter().filter(|f| f.error.is_some())
    }

    /// Adds a later scan's files and counts (scans of one input at a time).
    pub fn merge(&mut self, o: ScanReport) {
        self.files.extend(o.files);
        self.records += o.records;
        self.rejected += o.rejected;
        for (k, v) in o.rejects_by_reason {
            *self.rejects_by_reason.entry(k).or_default() += v;
        }
        self.no_data += o.no_data;
        self.skip_data += o.skip_data;
    }
}

/// Records per `map` call when the records were sorted first.
const SORTED_CHUNK: usize = 8192;

/// Scans `inputs` in order. `map` runs on each chunk of records in parallel,
/// exactly once per chunk (so it may accumulate into per-thread state); its
/// results reach `reduce` in input order. With `sort_by_time`, after every
/// input was read: then on this thread, in time order.
pub fn scan<T, M, R>(
    inputs: &[Input],
    opts: &ScanOptions,
    events: &mut dyn ScanEvents,
    map: M,
    mut reduce: R,
) -> ScanReport
where
    T: Send,
    M: Fn(&[FlowRecord]) -> T + Sync,
    R: FnMut(T),
{
    if opts.sort_by_time {
        let mut all: Vec<FlowRecord> = Vec::new();
        let report = scan_in_order(inputs, opts, events, &|r: &[FlowRecord]| r.to_vec(), &mut |v| all.extend(v));
        all.sort_by_key(|r| r.start.map_or(i64::MAX, |t| t.micros()));
        // The chunks a parser would have handed on; `map` runs on this thread.
        for chunk in all.chunks(SORTED_CHUNK) {
            reduce(map(chunk));
        }
        return report;
    }
    scan_in_order(inputs, opts, events, &map, &mut reduce)
}

/// [`scan`] for consumers that need every record in input order on one
/// thread (window features, scoring, training): records are parsed in
/// parallel and handed to `each` whole, chunk by chunk, in order.
pub fn scan_records(
    inputs: &[Input],
    opts: &ScanOptions,
    events: &mut dyn ScanEvents,
    each: impl FnMut(Vec<FlowRecord>),
) -> ScanReport {
    scan(inputs, opts, events, |recs: &[FlowRecord]| recs.to_vec(), each)
}

/// [`scan`] without sorting.
fn scan_in_order<T, M, R>(
    inputs: &[Input],
    opts: &ScanOptions,
    events: &mut dyn ScanEvents,
    map: &M,
    reduce: &mut R,
) -> ScanReport
where
    T: Send,
    M: Fn(&[FlowRecord]) -> T + Sync,
    R: FnMut(T),
{
    let mut report = ScanReport::default();
    for input in inputs {
        let mut f = FileReport { name: input.name(), ..Default::default() };
        scan_one(input, opts, events, map, reduce, &mut f, &mut report);
        if f.error.is_none() && f.records == 0 && f.rejected > 0 {
            let (line, r) = f.first_reject.clone().unwrap_or((0, Reject::new(RejectReason::BadSyntax, "?")));
            let format = f.format.unwrap_or("the detected format");
            f.error = Some(format!("no line parsed as {format}; first problem at line {line}: {r}"));
        }
        report.records += f.records;
        report.rejected += f.rejected;
        report.no_data += f.no_data;
        report.skip_data += f.skip_data;
        events.file_done(&f);
        report.files.push(f);
    }
    report
}

/// A block of whole lines from the reader thread.
struct Block {
    data: Vec<u8>,
    /// A line over [`MAX_LINE`] was skipped just before this block's data.
    skipped_overlong: bool,
    /// The input ended with a read error after this block (e.g. truncated gzip).
    error: Option<io::Error>,
}

/// Reads until `buf` holds `want` bytes or the input ends (`Ok(true)`).
/// Reads straight into the buffer's spare capacity: no intermediate copy.
fn fill(rd: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    while buf.len() < want {
        let need = (want - buf.len()) as u64;
        match rd.take(need).read_to_end(buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Reader thread: decompresses and cuts blocks at the last newline, so the
/// parsing side never sees half a line. Buffers come back through `spare`:
/// allocating a fresh multi-MiB block each time costs page faults and zeroing
/// (measured 7% of an inspect profile).
fn read_blocks(mut rd: Box<dyn Read + Send>, block_size: usize, tx: SyncSender<Block>, spare: Receiver<Vec<u8>>) {
    let mut carry: Vec<u8> = Vec::new();
    let mut skipping = false;
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(&carry);
        carry.clear();
        buf.reserve(block_size);
        let target = buf.len() + block_size;
        let (eof, error) = match fill(&mut *rd, &mut buf, target) {
            Ok(eof) => (eof, None),
            Err(e) => (true, Some(e)),
        };
        let mut skipped_overlong = false;
        if skipping {
            match memchr::memchr(b'\n', &buf) {
                Some(i) => {
                    buf.drain(..=i);
                    skipping = false;
                    skipped_overlong = true;
                }
                None => {
                    buf.clear();
                    if eof {
                        let _ = tx.send(Block { data: buf, skipped_overlong: true, error });
                        return;
                    }
                    continue;
                }
            }
        }
        if !eof {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => {
                    carry.extend_from_slice(&buf[i + 1..]);
                    buf.truncate(i + 1);
                }
                None if buf.len() >= MAX_LINE => {
                    skipping = true;
                    continue;
                }
                None => {
                    carry = buf;
                    continue;
                }
            }
        }
        if tx.send(Block { data: buf, skipped_overlong, error }).is_err() || eof {
            return;
        }
    }
}

/// The parse result of one sub-chunk.
struct Parsed {
    records: Vec<FlowRecord>,
    /// How many records the chunk gave (`records` is emptied after `map`).
    n_records: u64,
    /// Local 0-based line index of each record (only when labels are joined).
    rec_lines: Vec<u32>,
    rejects: Vec<(u32, Reject, Vec<u8>)>,
    lines: u32,
    no_data: u64,
    skip_data: u64,
    saw_header: bool,
    reader: AnyReader,
}

/// Lines of `data` (without `\n` / `\r\n`), each with the offset just past it;
/// a final line without a newline counts.
fn lines_at(data: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    ends.filter_map(move |end| {
        if start > data.len() || (end == data.len() && start == end) {
            start = data.len() + 1;
            return None;
        }
        let l = &data[start..end];
        start = end + 1;
        Some((l.strip_suffix(b"\r").unwrap_or(l), start.min(data.len())))
    })
}

fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    lines_at(data).map(|(l, _)| l)
}

fn parse_chunk(
    mut reader: AnyReader,
    data: &[u8],
    want_lines: bool,
    stop_after_record: bool,
    records: Vec<FlowRecord>,
) -> (Parsed, usize) {
    let mut p = Parsed {
        records,
        n_records: 0,
        rec_lines: Vec::new(),
        rejects: Vec::new(),
        lines: 0,
        no_data: 0,
        skip_data: 0,
        saw_header: false,
        reader: reader.clone(),
    };
    let mut consumed = 0;
    for (line, end) in lines_at(data) {
        let i = p.lines;
        p.lines += 1;
        consumed = end;
        match reader.read_line(line, &mut p.records) {
            Ok(LineKind::Record) => {
                if want_lines {
                    p.rec_lines.push(i);
                }
                if stop_after_record {
                    break;
                }
            }
            Ok(LineKind::Header) => p.saw_header = true,
            Ok(LineKind::NoData) => p.no_data += 1,
            Ok(LineKind::SkipData) => p.skip_data += 1,
            Ok(LineKind::Comment | LineKind::Blank) => {}
            Err(r) => p.rejects.push((i, r, line[..line.len().min(512)].to_vec())),
        }
    }
    if !stop_after_record {
        consumed = data.len();
    }
    p.n_records = p.records.len() as u64;
    p.reader = reader;
    (p, consumed)
}

/// Splits `data` into about `n` pieces at newline boundaries.
fn split_at_lines(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let step = (data.len() / n.max(1)).max(1);
    let mut start = 0;
    while start < data.len() {
        let target = (start + step).min(data.len());
        let end = if target >= data.len() {
            data.len()
        } else {
            memchr::memchr(b'\n', &data[target..]).map_or(data.len(), |i| target + i + 1)
        };
        out.push(&data[start..end]);
        start = end;
    }
    out
}

#[allow(clippy::too_many_arguments)] // reason: internal plumbing of one function's state
fn scan_one<T, M, R>(
    input: &Input,
    opts: &ScanOptions,
    events: &mut dyn ScanEvents,
    map: &M,
    reduce: &mut R,
    f: &mut FileReport,
    report: &mut ScanReport,
) where
    T: Send,
    M: Fn(&[FlowRecord]) -> T + Sync,
    R: FnMut(T),
{
    let counter = Arc::new(AtomicU64::new(0));
    let (rd, container) = match input.open_as(counter.clone()) {
        Ok((rd, container)) => {
            f.format = container;
            (rd, container)
        }
        Err(e) => {
            f.error = Some(e.to_string());
            return;
        }
    };
    let (tx, rx): (SyncSender<Block>, Receiver<Block>) = sync_channel(2);
    let (spare_tx, spare_rx) = sync_channel::<Vec<u8>>(4);
    let block_size = opts.block_size.max(1 << 12);
    // Record vectors, reused block after block for the same reason as buffers.
    let mut pool: Vec<Vec<FlowRecord>> = Vec::new();
    std::thread::scope(|s| {
        s.spawn(move || read_blocks(rd, block_size, tx, spare_rx));
        let mut reader: Option<AnyReader> = None;
        let mut warmed = false;
        let mut line_no: u64 = 0;
        let mut reported = 0u64;
        let threads = rayon::current_num_threads();
        for block in rx.iter() {
            let now = counter.load(Ordering::Relaxed);
            events.progress(now - reported);
            reported = now;
            if block.skipped_overlong {
                line_no += 1;
                let r =
                    Reject::new(RejectReason::BadSyntax, format!("line longer than {} MiB skipped", MAX_LINE >> 20));
                record_reject(f, report, events, line_no, &r, b"");
            }
            let mut data: &[u8] = &block.data;
            if reader.is_none() {
                data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
                if data.iter().all(u8::is_ascii_whitespace) {
                    line_no += lines(data).count() as u64;
                    if let Some(e) = block.error {
                        // Failed before any content (a corrupt capture header, a
                        // gzip stream broken at its start): that is the news, not
                        // "the input is empty".
                        f.error = Some(if line_no == 0 {
                            e.to_string()
                        } else {
                            format!("read error after line {line_no}: {e}")
                        });
                        return;
                    }
                    continue;
                }
                let format = match opts.format_of(data) {
                    Ok(fmt) => fmt,
                    Err(e) => {
                        f.error = Some(e.to_string());
                        return; // dropping rx stops the reader thread
                    }
                };
                f.format = Some(container.unwrap_or(format.name()));
                reader = Some(format.reader());
            }
            let labels = opts.labels.as_deref();
            let want_lines = labels.is_some();
            // Phase 1: parse. Phase 2 (`map`) only starts once the block's parse
            // is final: a header met mid-block forces a redo, and `map` must see
            // each record exactly once (inspect's per-thread sums count them).
            let mut parsed: Vec<Parsed> = Vec::new();
            let mut state = reader.take().unwrap_or_else(|| Format::Vpc.reader());
            if !warmed {
                // Header lines set state: parse sequentially up to the first record.
                let (p, used) = parse_chunk(state, data, want_lines, true, pool.pop().unwrap_or_default());
                warmed = p.records.len() + p.rejects.len() > 0 || used < data.len();
                state = p.reader.clone();
                data = &data[used..];
                parsed.push(p);
            }
            if !data.is_empty() {
                // 8 pieces per thread: fine enough that the last piece of a block
                // leaves a core idle only briefly (measured best of 1/2/4/8).
                let pieces = split_at_lines(data, if data.len() < (256 << 10) { 1 } else { threads * 8 });
                let vecs: Vec<Vec<FlowRecord>> = pieces.iter().map(|_| pool.pop().unwrap_or_default()).collect();
                let mut out: Vec<Parsed> = pieces
                    .par_iter()
                    .zip(vecs)
                    .map(|(piece, v)| parse_chunk(state.clone(), piece, want_lines, false, v).0)
                    .collect();
                let k = out.len();
                if out[..k.saturating_sub(1)].iter().any(|p| p.saw_header) {
                    // A header mid-block (concatenated files) changes how later
                    // lines read: redo this block in order. Rare, so simple.
                    pool.extend(out.drain(..).map(|mut p| {
                        p.records.clear();
                        p.records
                    }));
                    out.push(parse_chunk(state.clone(), data, want_lines, false, pool.pop().unwrap_or_default()).0);
                }
                state = out.last().map(|p| p.reader.clone()).unwrap_or(state);
                parsed.extend(out);
            }
            reader = Some(state);
            // In order: first lines, rejects, counters.
            let mut firsts = Vec::with_capacity(parsed.len());
            for p in &parsed {
                firsts.push(line_no);
                for (i, r, text) in &p.rejects {
                    record_reject(f, report, events, line_no + u64::from(*i) + 1, r, text);
                }
                line_no += u64::from(p.lines);
                f.no_data += p.no_data;
                f.skip_data += p.skip_data;
                f.records += p.n_records;
            }
            // Phase 2: labels and `map`, in parallel; results reduced in order.
            let results: Vec<T> = parsed
                .par_iter_mut()
                .zip(firsts.par_iter())
                .map(|(p, &first)| {
                    if let Some(labels) = labels {
                        for (rec, &l) in p.records.iter_mut().zip(&p.rec_lines) {
                            if let Some(t) = labels.get(first + u64::from(l) + 1) {
                                rec.truth = Some(t.clone());
                            }
                        }
                    }
                    let t = map(&p.records);
                    p.records.clear();
                    t
                })
                .collect();
            for t in results {
                reduce(t);
            }
            pool.extend(parsed.into_iter().map(|p| p.records));
            f.lines = line_no;
            if let Some(e) = block.error {
                f.error = Some(format!("read error after line {line_no}: {e}"));
            }
            let _ = spare_tx.try_send(block.data);
        }
        let now = counter.load(Ordering::Relaxed);
        events.progress(now - reported);
        if reader.is_none() && f.error.is_none() {
            // Exit code 3 promises this: an input without a single line to parse.
            f.lines = line_no;
            f.error = Some(if line_no == 0 {
                "the input is empty".to_string()
            } else {
                format!("the input holds only blank lines ({line_no})")
            });
        }
    });
}

fn record_reject(
    f: &mut FileReport,
    report: &mut ScanReport,
    events: &mut dyn ScanEvents,
    line: u64,
    r: &Reject,
    text: &[u8],
) {
    f.rejected += 1;
    *report.rejects_by_reason.entry(r.reason).or_default() += 1;
    if f.first_reject.is_none() {
        f.first_reject = Some((line, r.clone()));
    }
    events.reject(&LineReject { file: &f.name, line, reject: r, text });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_handle_endings() {
        let v: Vec<&[u8]> = lines(b"a\r\nb\n\nc").collect();
        assert_eq!(v, vec![&b"a"[..], b"b", b"", b"c"]);
        let v: Vec<&[u8]> = lines(b"a\n").collect();
        assert_eq!(v, vec![&b"a"[..]]);
        assert_eq!(lines(b"").count(), 0);
    }

    #[test]
    fn split_keeps_lines_whole() {
        let data = b"aaa\nbb\ncccc\nd\n";
        for n in 1..6 {
            let parts = split_at_lines(data, n);
            assert_eq!(parts.concat(), data.to_vec());
            assert!(parts.iter().all(|p| p.ends_with(b"\n")));
        }
    }
}
