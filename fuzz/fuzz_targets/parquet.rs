//! VPC Flow Logs' Parquet reader on hostile bytes: framed as a Parquet file
//! (magic at both ends) so the fuzzer reaches the footer and page decoders.
//! Either an error or text lines; never a panic, never unbounded output.
#![no_main]

use std::io::Read;

use flowhound_flow::parquet::{ParquetText, MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(data);
    file.extend_from_slice(MAGIC);
    if let Ok(mut r) = ParquetText::new(file) {
        let mut out = Vec::new();
        let _ = r.by_ref().take(64 << 20).read_to_end(&mut out);
    }
});
