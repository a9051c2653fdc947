//! See flowhound_flow::fuzz::labels (kept there so fuzz/regressions/labels replays through it in `cargo test`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowhound_flow::fuzz::labels(data));
