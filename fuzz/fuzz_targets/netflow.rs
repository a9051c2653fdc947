//! The NetFlow collector on hostile datagrams: the input is cut into
//! datagrams from a few exporters (so templates learned from one packet are
//! applied to the next), each decoded into records. Never a panic; the books
//! add up.
#![no_main]

use std::net::SocketAddr;

use flowhound_flow::netflow::{Collector, CollectorParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut c) = Collector::new(&CollectorParams::default()) else { return };
    let mut out = Vec::new();
    // Datagrams: a length byte, then that many bytes; the exporter by parity.
    let mut rest = data;
    let mut sent = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (usize::from(len) * 4).min(tail.len());
        let (dgram, next) = tail.split_at(n);
        let port = 2055 + u16::from(len % 2);
        let from: SocketAddr = ([127, 0, 0, 1], port).into();
        c.packet(from, dgram, &mut out);
        sent += 1;
        rest = next;
    }
    assert_eq!(c.stats.packets, sent);
    assert_eq!(c.stats.records, out.len() as u64);
});
