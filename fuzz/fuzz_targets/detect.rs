#![no_main]
#[path = "common.rs"]
mod common;
// Detection, then the detected reader, exactly as the CLI does.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(format) = flowhound_flow::detect(data) {
        common::run(data, format);
    }
});
