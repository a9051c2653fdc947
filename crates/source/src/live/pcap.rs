//! `pcap:FILE`: a capture's flows, once.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Ctx, Mark};

impl Ctx {
    pub(super) fn pcap(self, path: &Path, data: &[u8]) {
        let (recs, stats) = flowhound_flow::pcap::flows(data, Default::default());
        if let Some(e) = &stats.error {
            eprintln!("watch: {}: {e}", path.display());
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.units.fetch_add(stats.packets, Ordering::Relaxed);
        self.send_all(recs, Instant::now(), Mark::None);
        self.done();
    }
}
