//! See flowhound_flow::fuzz::parquet (kept there so fuzz/regressions/parquet replays through it in `cargo test`).
//!
//! libfuzzer-sys aborts on every panic, even one caught. `ParquetText` runs
//! the parquet crate's decoder under `catch_unwind` (parquet 60.1.0, the
//! newest, asserts on some hostile pages: fuzz/regressions/parquet holds
//! three), turning its panics into an error for that file, as the CLI needs.
//! So this target drops the hook: a panic caught inside is that file's
//! error; one that escapes `ParquetText` still aborts (libfuzzer-sys's own
//! `catch_unwind` around the input) and is a crash.
#![no_main]

static QUIET: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    flowhound_flow::fuzz::parquet(data)
});
