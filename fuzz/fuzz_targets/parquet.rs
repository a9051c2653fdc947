//! See flowhound_flow::fuzz::parquet (kept there so fuzz/regressions/parquet replays through it in `cargo test`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| flowhound_flow::fuzz::parquet(data));
