//! `dir:PATH`: every file that appears below PATH, once it has stopped
//! growing; what was read is remembered across restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Ctx, Mark, Resume};
use crate::input::Input;

impl Ctx {
    pub(super) fn dir(self, root: &Path, resume: Resume) {
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
}
