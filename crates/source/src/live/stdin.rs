//! `-`: standard input, until it ends.

use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Ctx, LineFeed, Mark};

impl Ctx {
    pub(super) fn stdin(self) {
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
}
