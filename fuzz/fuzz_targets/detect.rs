//! See flowhound_flow::fuzz::detect (kept there so fuzz/regressions/detect replays through it in `cargo test`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowhound_flow::fuzz::detect(data));
