//! flowhound-source: where flow bytes come from, and the driver that turns them
//! into records fast.
//!
//! Inputs are files, directories (recursively), globs, or `-` for stdin; gzip
//! (multi-member too) is detected from its magic bytes. The [`scan`] driver reads
//! blocks of a few MiB, cuts them at line ends, parses sub-chunks on all cores,
//! and hands each chunk's records to a `map` function (also in parallel) whose
//! results reach `reduce` in input order — so `inspect` aggregates and `convert`
//! serializes on both cores while output stays deterministic.

mod driver;
mod input;
pub mod live;
pub mod s3;

pub use driver::{scan, scan_records, FileReport, LineReject, ScanEvents, ScanOptions, ScanReport, MAX_LINE};
pub use input::{resolve, resolve_in, DayRange, Input, SourceError};

/// The shared datasets folder: `$FLOWHOUND_DATASETS`, else `shared/datasets`
/// beside the repository (`repo` is the repository root). `None`, with a note
/// on stderr, when it is absent: tests and evaluations that need real data
/// skip instead of failing on a fresh clone.
pub fn datasets_dir(repo: &std::path::Path) -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("FLOWHOUND_DATASETS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo.join("../shared/datasets"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("note: {} not found; skipping what needs real datasets (set FLOWHOUND_DATASETS)", dir.display());
        None
    }
}

/// Up to `max_bytes` of the start of each input, parsed: enough for a writer
/// to choose its columns (cloud context, labels, a dataset's extras) before the
/// real scan starts. Inputs that cannot be read or recognised give nothing here;
/// the scan itself reports them.
pub fn sample(inputs: &[Input], opts: &ScanOptions, max_bytes: usize) -> Vec<flowhound_flow::FlowRecord> {
    use flowhound_flow::FlowReader;
    use std::io::Read;
    let mut out = Vec::new();
    for input in inputs.iter().filter(|i| **i != Input::Stdin) {
        let Ok(rd) = input.open(Default::default()) else {
            continue;
        };
        let mut buf = Vec::with_capacity(max_bytes);
        if rd.take(max_bytes as u64).read_to_end(&mut buf).is_err() {
            continue;
        }
        if buf.len() == max_bytes {
            if let Some(i) = memchr::memrchr(b'\n', &buf) {
                buf.truncate(i + 1);
            }
        }
        let data = buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buf);
        let Ok(format) = opts.format_of(data) else { continue };
        let mut reader = format.reader();
        for line in data.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let _ = reader.read_line(line, &mut out);
        }
    }
    out
}
