#![no_main]
#[path = "common.rs"]
mod common;
use flowhound_flow::Format;
// The first byte picks the dialect, the rest is the file.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let format = [Format::ZeekTsv, Format::ZeekCsv, Format::Unsw, Format::Cic, Format::Csv][usize::from(pick) % 5].clone();
    common::run(rest, format);
});
