//! See flowhound_flow::fuzz::tabular (kept there so fuzz/regressions/tabular replays through it in `cargo test`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowhound_flow::fuzz::tabular(data));
