//! VPC Flow Logs' Parquet delivery (fixtures written by pyarrow, see
//! fixtures/make_parquet.py) reads as the same records as the text format.

use std::io::Write;
use std::path::PathBuf;

use flowhound_flow::FlowRecord;
use flowhound_source::{scan, Input, ScanOptions, ScanReport};

fn fixture(name: &str) -> Input {
    Input::Path(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name))
}

fn all(input: Input) -> (Vec<FlowRecord>, ScanReport) {
    let mut out = Vec::new();
    let report = scan(&[input], &ScanOptions::default(), &mut (), |r: &[FlowRecord]| r.to_vec(), |v| out.extend(v));
    (out, report)
}

#[test]
fn parquet_reads_as_the_text_format() {
    let (pq, rp) = all(fixture("vpc-flow.parquet"));
    let (text, rt) = all(fixture("vpc-flow.text.log"));
    assert_eq!(rp.files[0].error, None);
    assert_eq!(rp.files[0].format, Some("parquet"), "named by its container, not the text it becomes");
    assert_eq!((rt.records, rt.no_data, rt.rejected), (3, 1, 0));
    // The text has the first four rows; the Parquet file one more.
    assert_eq!((rp.records, rp.no_data, rp.rejected), (4, 1, 0));
    assert_eq!(pq[..3], text[..], "same records from both formats");
    // A value with a space and a newline stays one field of one line.
    let last = &pq[3];
    let cloud = last.cloud.as_ref().expect("cloud context");
    assert_eq!(cloud.interface_id.as_deref(), Some("eni-evil_name_x"));
    assert_eq!(last.dst_port, Some(23));
    assert_eq!(last.src.map(|a| a.to_string()).as_deref(), Some("198.51.100.8"));
}

#[test]
fn gzipped_parquet_and_truncated_parquet() {
    let dir = tempfile::tempdir().expect("tmp");
    let Input::Path(src) = fixture("vpc-flow.parquet") else { unreachable!() };
    let gz = dir.path().join("flows.parquet.gz");
    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&gz).expect("create"), flate2::Compression::fast());
    e.write_all(&std::fs::read(src).expect("read")).expect("gzip");
    e.finish().expect("gzip");
    let (recs, r) = all(Input::Path(gz));
    assert_eq!((recs.len(), r.files[0].error.as_deref()), (4, None));

    // No footer: a clear error for the file, no records, no panic.
    let (recs, r) = all(fixture("vpc-flow-truncated.parquet"));
    assert!(recs.is_empty());
    let err = r.files[0].error.as_deref().expect("an error");
    assert!(err.contains("Parquet"), "{err}");
}
