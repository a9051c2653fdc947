//! `netflow:ADDR:PORT`: a UDP collector for NetFlow v5, v9 and IPFIX. Exporters
//! cannot be made to wait: a chunk that finds the channel full is dropped
//! and counted.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use flowhound_flow::netflow::Collector;
use flowhound_flow::FlowRecord;

use super::{Ctx, Mark};

/// A UDP socket with a large receive buffer: bursts from exporters wait in
/// the kernel instead of being dropped while the collector thread works.
pub(super) fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // The kernel caps this at net.core.rmem_max; asking is free.
    let _ = s.set_recv_buffer_size(32 << 20);
    s.bind(&addr.into())?;
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(s)
}

impl Ctx {
    pub(super) fn netflow(self, sock: UdpSocket, mut c: Collector) {
        let mut buf = vec![0u8; 65_536];
        let mut pending: Vec<FlowRecord> = Vec::with_capacity(self.opts.chunk);
        let mut since = Instant::now();
        let mut first_rx: Option<Instant> = None;
        let mut seen = c.stats.clone();
        while !self.feed.stopped() {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    first_rx.get_or_insert_with(Instant::now);
                    c.packet(from, &buf[..n], &mut pending);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("watch: netflow: {e}");
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            let s = &c.stats;
            self.stats.units.fetch_add(s.packets - seen.packets, Ordering::Relaxed);
            self.stats.errors.fetch_add(s.errors - seen.errors, Ordering::Relaxed);
            self.stats.lost.fetch_add(s.lost - seen.lost, Ordering::Relaxed);
            seen = s.clone();
            let due = since.elapsed() >= Duration::from_millis(50);
            if !pending.is_empty() && (pending.len() >= self.opts.chunk || due) {
                let recs = std::mem::replace(&mut pending, Vec::with_capacity(self.opts.chunk));
                let n = recs.len() as u64;
                self.stats.records.fetch_add(n, Ordering::Relaxed);
                let received = first_rx.take().unwrap_or_else(Instant::now);
                if self.feed.try_send(self.chunk(recs, received, Mark::None)).is_err() {
                    // The detector is behind: drop here, counted, rather
                    // than let the kernel drop uncounted or memory grow.
                    self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                }
                since = Instant::now();
            } else if pending.is_empty() {
                since = Instant::now();
            }
        }
        self.done();
    }
}
