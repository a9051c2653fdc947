//! See flowhound_flow::fuzz::pcap (kept there so fuzz/regressions/pcap replays through it in `cargo test`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowhound_flow::fuzz::pcap(data));
