//! Output destinations: stdout, or a file written atomically (temp file in the
//! same directory, renamed on success), gzip-compressed when the name ends in
//! `.gz`. Only regular files are replaced that way: a device, FIFO or socket
//! (`/dev/null`, a named pipe) is written into directly, and a symlink's target
//! is replaced, not the link. Renaming over `/dev/null` once turned it into a
//! regular file on the development machine and broke every build after it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

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
pub struct OutFile {
    /// Taken when finished.
    sink: Option<Sink>,
    path: Option<PathBuf>,
    /// A broken pipe on stdout (`| head`) ends output quietly.
    closed: bool,
}

impl OutFile {
    /// `None` or `-` is stdout.
    pub fn create(path: Option<&Path>) -> io::Result<Self> {
        let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
            return Ok(OutFile {
                sink: Some(Sink::Stdout(BufWriter::with_capacity(1 << 20, io::stdout()))),
                path: None,
                closed: false,
            });
        };
        // `metadata` follows symlinks: what matters is what the path leads to.
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.is_dir() {
                return Err(io::Error::other(format!("{} is a directory", path.display())));
            }
            if !meta.is_file() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| context(e, format!("cannot open {}", path.display())))?;
                return Ok(OutFile {
                    sink: Some(Sink::Special(BufWriter::with_capacity(1 << 20, f))),
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
        let tmp =
            builder.tempfile_in(dir).map_err(|e| context(e, format!("cannot create a file in {}", dir.display())))?;
        let buf = BufWriter::with_capacity(1 << 20, tmp);
        let sink = if path.extension().is_some_and(|e| e == "gz") {
            Sink::Gz(Box::new(GzEncoder::new(buf, flate2::Compression::fast())))
        } else {
            Sink::File(buf)
        };
        Ok(OutFile { sink: Some(sink), path: Some(path.to_path_buf()), closed: false })
    }

    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = match &mut self.sink {
            Some(Sink::Stdout(w)) => w.write_all(data),
            Some(Sink::Special(w)) => w.write_all(data),
            Some(Sink::File(w)) => w.write_all(data),
            Some(Sink::Gz(w)) => w.write_all(data),
            None => Err(io::Error::other("written after it was finished")),
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe && self.path.is_none() => {
                self.closed = true;
                Ok(())
            }
            r => r.map_err(|e| context(e, format!("writing {}", self.name()))),
        }
    }

    pub fn name(&self) -> String {
        self.path.as_ref().map_or_else(|| "<stdout>".to_string(), |p| p.display().to_string())
    }

    /// Flushes and, for files, moves the finished file into place.
    pub fn finish(mut self) -> io::Result<()> {
        self.commit()
    }

    /// [`finish`](Self::finish) in place; later writes fail.
    pub fn commit(&mut self) -> io::Result<()> {
        let name = self.name();
        let Some(sink) = self.sink.take() else { return Ok(()) };
        let tmp = match sink {
            Sink::Stdout(mut w) => {
                return match w.flush() {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    r => r.map_err(|e| context(e, "writing <stdout>".into())),
                };
            }
            Sink::Special(mut w) => return w.flush().map_err(|e| context(e, format!("writing {name}"))),
            Sink::File(w) => w.into_inner().map_err(|e| e.into_error()),
            Sink::Gz(w) => w.finish().and_then(|b| b.into_inner().map_err(|e| e.into_error())),
        }
        .map_err(|e| context(e, format!("writing {name}")))?;
        let path = self.path.clone().unwrap_or_default();
        tmp.as_file().sync_all().map_err(|e| context(e, format!("writing {name}")))?;
        let f: File = tmp.persist(&path).map_err(|e| context(e.error, format!("moving the output into {name}")))?;
        drop(f);
        Ok(())
    }
}

impl Write for OutFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        OutFile::write_all(self, buf)
    }

    /// Written out when finished: a batch run's file is whole or absent.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `e` with what was being done, keeping its kind (a broken pipe stays one).
fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
