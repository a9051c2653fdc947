#![no_main]
#[path = "common.rs"]
mod common;
use flowhound_flow::Format;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    common::run(rest, if pick % 2 == 0 { Format::ZeekJson } else { Format::Jsonl });
});
