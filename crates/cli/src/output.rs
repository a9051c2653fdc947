//! Output destinations: stdout, or a file written atomically (temp file in the
//! same directory, renamed on success), gzip-compressed when the name ends in
//! `.gz`. Only regular files are replaced that way: a device, FIFO or socket
//! (`/dev/null`, a named pipe) is written into directly, and a symlink's target
//! is replaced, not the link. Renaming over `/dev/null` once turned it into a
//! regular file on the development machine and broke every build after it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use flate2::write::GzEncoder;

#[derive(Debug)]
enum Sink {
    Stdout(BufWriter<io::Stdout>),
    /// An existing non-regular file: written in place, never renamed over.
    Special(BufWriter<File>),
    File(BufWriter<tempfile::NamedTempFile>),
    Gz(Box<GzEncoder<BufWriter<tempfile::NamedTempFile>>>),
}

#[derive(Debug)]
pub struct Output {
    sink: Sink,
    path: Option<PathBuf>,
    /// A broken pipe on stdout (`| head`) ends output quietly.
    closed: bool,
}

impl Output {
    /// `None` or `-` is stdout.
    pub fn create(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
            return Ok(Output {
                sink: Sink::Stdout(BufWriter::with_capacity(1 << 20, io::stdout())),
                path: None,
                closed: false,
            });
        };
        // `metadata` follows symlinks: what matters is what the path leads to.
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.is_dir() {
                anyhow::bail!("{} is a directory", path.display());
            }
            if !meta.is_file() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                return Ok(Output {
                    sink: Sink::Special(BufWriter::with_capacity(1 << 20, f)),
                    path: Some(path.to_path_buf()),
                    closed: false,
                });
            }
        }
        // Replace a symlink's target, keeping the link.
        let resolved = std::fs::canonicalize(path).ok().filter(|_| path.is_symlink());
        let path = resolved.as_deref().unwrap_or(path);
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut builder = tempfile::Builder::new();
        builder.prefix(".flowhound-");
        // Temp files are private (0600) by default; a finished output is an
        // ordinary file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let tmp = builder.tempfile_in(dir).with_context(|| format!("cannot create a file in {}", dir.display()))?;
        let buf = BufWriter::with_capacity(1 << 20, tmp);
        let sink = if path.extension().is_some_and(|e| e == "gz") {
            Sink::Gz(Box::new(GzEncoder::new(buf, flate2::Compression::fast())))
        } else {
            Sink::File(buf)
        };
        Ok(Output { sink, path: Some(path.to_path_buf()), closed: false })
    }

    pub fn write_all(&mut self, data: &[u8]) -> anyhow::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = match &mut self.sink {
            Sink::Stdout(w) => w.write_all(data),
            Sink::Special(w) => w.write_all(data),
            Sink::File(w) => w.write_all(data),
            Sink::Gz(w) => w.write_all(data),
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe && self.path.is_none() => {
                self.closed = true;
                Ok(())
            }
            r => r.with_context(|| format!("writing {}", self.name())),
        }
    }

    pub fn name(&self) -> String {
        self.path.as_ref().map_or_else(|| "<stdout>".to_string(), |p| p.display().to_string())
    }

    /// Flushes and, for files, moves the finished file into place.
    pub fn finish(self) -> anyhow::Result<()> {
        let name = self.name();
        let tmp = match self.sink {
            Sink::Stdout(mut w) => {
                return match w.flush() {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    r => r.context("writing <stdout>"),
                };
            }
            Sink::Special(mut w) => return w.flush().with_context(|| format!("writing {name}")),
            Sink::File(w) => w.into_inner().map_err(|e| e.into_error()),
            Sink::Gz(w) => w.finish().and_then(|b| b.into_inner().map_err(|e| e.into_error())),
        }
        .with_context(|| format!("writing {name}"))?;
        let path = self.path.unwrap_or_default();
        tmp.as_file().sync_all().with_context(|| format!("writing {name}"))?;
        let f: File = tmp.persist(&path).with_context(|| format!("moving the output into {name}"))?;
        drop(f);
        Ok(())
    }
}
