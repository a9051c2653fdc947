//! Resolving command-line inputs and opening them.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}", .0.join("; "))]
    Inputs(Vec<String>),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

/// One thing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Path(PathBuf),
    Stdin,
    /// An S3 object, with its size from the listing.
    S3 {
        bucket: String,
        key: String,
        size: u64,
    },
}

/// Days to read by the date in a key or path (`…/2024/04/19/…`, the VPC Flow
/// Logs S3 layout); both ends inclusive, keys without a date always pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayRange {
    pub since: Option<chrono::NaiveDate>,
    pub until: Option<chrono::NaiveDate>,
}

impl DayRange {
    /// The first `YYYY/MM/DD` run of path segments in `key`, as a date.
    pub fn date_of(key: &str) -> Option<chrono::NaiveDate> {
        let parts: Vec<&str> = key.split('/').collect();
        parts.windows(3).find_map(|w| {
            let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
            if !(digits(w[0], 4) && digits(w[1], 2) && digits(w[2], 2)) {
                return None;
            }
            chrono::NaiveDate::from_ymd_opt(w[0].parse().ok()?, w[1].parse().ok()?, w[2].parse().ok()?)
        })
    }

    pub fn contains_key(&self, key: &str) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        match Self::date_of(key) {
            Some(d) => self.since.is_none_or(|s| d >= s) && self.until.is_none_or(|u| d <= u),
            None => true,
        }
    }
}

impl Input {
    pub fn name(&self) -> String {
        match self {
            Input::Path(p) => p.display().to_string(),
            Input::Stdin => "<stdin>".to_string(),
            Input::S3 { bucket, key, .. } => format!("s3://{bucket}/{key}"),
        }
    }

    /// Size on disk, for progress (compressed size for .gz); 0 for stdin.
    pub fn size(&self) -> u64 {
        match self {
            Input::Path(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Input::Stdin => 0,
            Input::S3 { size, .. } => *size,
        }
    }

    /// Opens the input, decompressing gzip transparently. `counter` receives
    /// the number of raw (compressed) bytes consumed, for progress.
    pub(crate) fn open(&self, counter: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>, SourceError> {
        self.open_as(counter).map(|(rd, _)| rd)
    }

    /// [`Input::open`], and the container the records came out of when it
    /// was not text (`pcap`, `pcapng`, `parquet`): the name to report the
    /// input's format by, rather than the JSON lines they are turned into.
    pub(crate) fn open_as(
        &self,
        counter: Arc<AtomicU64>,
    ) -> Result<(Box<dyn Read + Send>, Option<&'static str>), SourceError> {
        let io_err = |source| SourceError::Io { path: self.name(), source };
        let raw: Box<dyn Read + Send> = match self {
            Input::Path(p) => Box::new(File::open(p).map_err(io_err)?),
            Input::Stdin => Box::new(io::stdin()),
            Input::S3 { bucket, key, .. } => crate::s3::open(bucket, key).map_err(|e| io_err(io::Error::other(e)))?,
        };
        let raw = Box::new(Counting { inner: raw, n: counter });
        let mut buf = BufReader::with_capacity(1 << 16, raw);
        let magic = buf.fill_buf().map_err(io_err)?;
        let mut rd: Box<dyn BufRead + Send> = if magic.starts_with(&[0x1f, 0x8b]) {
            // Multi-member: `cat a.gz b.gz` and S3 multipart objects are several
            // gzip members back to back; a plain GzDecoder stops after the first.
            Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(buf)))
        } else {
            Box::new(buf)
        };
        // VPC Flow Logs' Parquet (gzip-compressed inside, or a gzipped file of it).
        // A gzip stream broken at its start is left for the read to report.
        if rd.fill_buf().is_ok_and(|m| m.starts_with(flowhound_flow::parquet::MAGIC)) {
            let mut data = Vec::new();
            rd.read_to_end(&mut data).map_err(io_err)?;
            return Ok((Box::new(flowhound_flow::parquet::ParquetText::new(data).map_err(io_err)?), Some("parquet")));
        }
        // A packet capture (pcap, pcapng; gzipped too) becomes its flows.
        if rd.fill_buf().is_ok_and(flowhound_flow::pcap::is_capture) {
            let mut data = Vec::new();
            rd.read_to_end(&mut data).map_err(io_err)?;
            let kind = if data.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) { "pcapng" } else { "pcap" };
            return Ok((Box::new(flowhound_flow::pcap::CaptureText::new(&data, Default::default())), Some(kind)));
        }
        Ok((rd, None))
    }
}

/// Counts raw bytes read, for progress on compressed inputs.
struct Counting {
    inner: Box<dyn Read + Send>,
    n: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

/// Expands arguments into inputs: `-` is stdin, a directory is every regular
/// file below it (sorted, hidden files skipped), a pattern with `*?[` that is
/// not an existing path is a glob. Every argument that matches nothing is
/// reported, not just the first.
pub fn resolve(args: &[String]) -> Result<Vec<Input>, SourceError> {
    resolve_in(args, &DayRange::default())
}

/// [`resolve`], keeping only files and objects whose path holds a date in
/// `days` (or no date); `s3://bucket/prefix` lists the objects below it.
pub fn resolve_in(args: &[String], days: &DayRange) -> Result<Vec<Input>, SourceError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for a in args {
        if a == "-" {
            out.push(Input::Stdin);
            continue;
        }
        if let Some((bucket, _)) = crate::s3::split(a) {
            match crate::s3::list(a, days) {
                Ok(objs) if objs.is_empty() => problems.push(format!("{a}: no objects (in the days asked for)")),
                Ok(objs) => out.extend(objs.into_iter().map(|o| Input::S3 {
                    bucket: bucket.to_string(),
                    key: o.key,
                    size: o.size,
                })),
                Err(e) => problems.push(e),
            }
            continue;
        }
        if a.starts_with("s3://") {
            problems.push(format!("{a}: expected s3://BUCKET/PREFIX"));
            continue;
        }
        let before = out.len();
        let p = PathBuf::from(a);
        if p.is_dir() {
            let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&p)
                .follow_links(true)
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !is_hidden(e.path()))
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .map(|e| e.into_path())
                .collect();
            files.sort();
            if files.is_empty() {
                problems.push(format!("{a}: directory holds no files"));
            }
            out.extend(files.into_iter().map(Input::Path));
        } else if p.exists() {
            out.push(Input::Path(p));
        } else if is_glob(a) {
            match glob::glob(a) {
                Ok(paths) => {
                    let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
                    files.sort();
                    if files.is_empty() {
                        problems.push(format!("{a}: pattern matches no files"));
                    }
                    out.extend(files.into_iter().map(Input::Path));
                }
                Err(e) => problems.push(format!("{a}: bad pattern: {e}")),
            }
        } else {
            problems.push(format!("{a}: no such file or directory"));
        }
        let found = out.split_off(before);
        let n = found.len();
        out.extend(found.into_iter().filter(|x| match x {
            Input::Path(p) => days.contains_key(&p.to_string_lossy()),
            _ => true,
        }));
        if n > 0 && out.len() == before {
            problems.push(format!("{a}: no files in the days asked for"));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(SourceError::Inputs(problems))
    }
}
