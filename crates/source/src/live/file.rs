//! `file:PATH`: follows a growing log like `tail -F` (rotation, truncation,
//! resume at a saved offset when the file is the same).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{identity, Ctx, LineFeed, Mark, Resume};

impl Ctx {
    /// Follows one file (see the module docs).
    pub(super) fn follow(self, path: &Path, resume: Resume) {
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
}
