//! See flowhound_flow::fuzz::json (kept there so fuzz/regressions/json replays through it in `cargo test`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowhound_flow::fuzz::json(data));
