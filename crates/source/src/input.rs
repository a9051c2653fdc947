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
}

impl Input {
    pub fn name(&self) -> String {
        match self {
            Input::Path(p) => p.display().to_string(),
            Input::Stdin => "<stdin>".to_string(),
        }
    }

    /// Size on disk, for progress (compressed size for .gz); 0 for stdin.
    pub fn size(&self) -> u64 {
        match self {
            Input::Path(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Input::Stdin => 0,
        }
    }

    /// Opens the input, decompressing gzip transparently. `counter` receives
    /// the number of raw (compressed) bytes consumed, for progress.
    pub(crate) fn open(&self, counter: Arc<AtomicU64>) -> Result<Box<dyn Read + Send>, SourceError> {
        let io_err = |source| SourceError::Io { path: self.name(), source };
        let raw: Box<dyn Read + Send> = match self {
            Input::Path(p) => Box::new(File::open(p).map_err(io_err)?),
            Input::Stdin => Box::new(io::stdin()),
        };
        let raw = Box::new(Counting { inner: raw, n: counter });
        let mut buf = BufReader::with_capacity(1 << 16, raw);
        let magic = buf.fill_buf().map_err(io_err)?;
        if magic.starts_with(&[0x1f, 0x8b]) {
            // Multi-member: `cat a.gz b.gz` and S3 multipart objects are several
            // gzip members back to back; a plain GzDecoder stops after the first.
            Ok(Box::new(MultiGzDecoder::new(buf)))
        } else {
            Ok(Box::new(buf))
        }
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
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for a in args {
        if a == "-" {
            out.push(Input::Stdin);
            continue;
        }
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
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(SourceError::Inputs(problems))
    }
}
