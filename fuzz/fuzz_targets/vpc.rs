//! See flowhound_flow::fuzz::vpc (kept there so fuzz/regressions/vpc replays through it in `cargo test`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowhound_flow::fuzz::vpc(data));
