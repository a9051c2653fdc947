//! See flowhound_flow::fuzz::netflow (kept there so fuzz/regressions/netflow replays through it in `cargo test`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowhound_flow::fuzz::netflow(data));
