//! Packet captures on hostile bytes: framed as a pcap (first input byte even)
//! or pcapng (odd) so the fuzzer reaches the block and header decoders, then
//! assembled into flows. Every flow is well formed; never a panic.
#![no_main]

use flowhound_flow::pcap::{flows, FlowTimeouts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let mut file = if pick % 2 == 0 {
        // Legacy header: magic, v2.4, zone, sigfigs, snaplen, link type from the input.
        let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0];
        h.extend_from_slice(&[u32::from(pick >> 1) as u8 % 230, 0, 0, 0]);
        h
    } else {
        vec![0x0a, 0x0d, 0x0d, 0x0a]
    };
    file.extend_from_slice(rest);
    let (recs, stats) = flows(&file, FlowTimeouts::default());
    assert_eq!(recs.len() as u64, stats.flows);
    for r in &recs {
        assert!(r.src.is_some() && r.dst.is_some() && r.start <= r.end);
        assert_eq!(r.packets.total, Some(r.packets.fwd.unwrap_or(0) + r.packets.bwd.unwrap_or(0)));
    }
});
