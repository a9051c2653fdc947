//! `s3://BUCKET/PREFIX`: lists the prefix every poll and reads new objects;
//! what was read is remembered.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Ctx, Mark, Resume};
use crate::input::{DayRange, Input};

impl Ctx {
    pub(super) fn s3(self, url: &str, resume: Resume) {
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
