#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(t) = flowhound_flow::labels::LabelTable::parse(data) {
        let _ = t.get(2);
    }
});
