//! The block driver on tricky inputs: gzip (multi-member, truncated), lines
//! longer than the limit, headers in the middle of a stream, labels by line,
//! and parallel parsing that must equal sequential parsing.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flowhound_flow::labels::LabelTable;
use flowhound_flow::write::VpcWriter;
use flowhound_flow::{FlowRecord, RejectReason};
use flowhound_source::{resolve, scan, Input, ScanOptions, ScanReport};
use flowhound_synth::GenParams;

fn all(inputs: &[Input], opts: &ScanOptions) -> (Vec<FlowRecord>, ScanReport) {
    let mut out = Vec::new();
    let report = scan(inputs, opts, &mut (), |r: &[FlowRecord]| r.to_vec(), |v| out.extend(v));
    (out, report)
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("compress");
    e.finish().expect("compress")
}

fn generated(n: u64) -> (Vec<u8>, Vec<FlowRecord>) {
    let mut recs = Vec::new();
    flowhound_synth::generate(&GenParams { flows: n, ..Default::default() }, |b| {
        recs.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .expect("generate");
    let w = VpcWriter::default();
    let mut text = Vec::new();
    w.header(&mut text);
    for r in &recs {
        w.write(r, &mut text);
    }
    (text, recs)
}

fn write(dir: &Path, name: &str, data: &[u8]) -> Input {
    let p = dir.join(name);
    std::fs::write(&p, data).expect("write");
    Input::Path(p)
}

/// Two inputs read newest first come out oldest first with `sort_by_time`,
/// ties and records without a time in their input order (the latter last);
/// the report is the same as an unsorted scan's.
#[test]
fn sorting_by_time_hands_records_on_oldest_first() {
    let dir = tempfile::tempdir().expect("tmp");
    let (text, recs) = generated(20_000);
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let (head, rows) = (lines[0], &lines[1..]);
    let half = rows.len() / 2;
    let file = |name: &str, part: &[&[u8]], extra: &[u8]| {
        let mut v = head.to_vec();
        part.iter().for_each(|l| v.extend_from_slice(l));
        v.extend_from_slice(extra);
        write(dir.path(), name, &v)
    };
    // A line without times (`-` start and end), in the generator's layout.
    let timeless = b"5 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 40 - - ACCEPT OK vpc-1 subnet-1 i-1 3 IPv4 \
                     us-east-1 use1-az1 ingress\n";
    let late = file("late.log", &rows[half..], timeless);
    let early = file("early.log", &rows[..half], b"");
    let inputs = [late, early];
    let sorted = ScanOptions { sort_by_time: true, block_size: 4096, ..Default::default() };
    let (a, ra) = all(&inputs, &sorted);
    let (b, rb) = all(&inputs, &ScanOptions { block_size: 4096, ..Default::default() });
    assert_eq!(ra, rb);
    assert_eq!((ra.records, ra.rejected), (recs.len() as u64 + 1, 0), "{ra:?}");
    assert_eq!(a.len(), b.len());
    let times: Vec<i64> = a.iter().filter_map(|r| r.start.map(|t| t.micros())).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not oldest first");
    assert_eq!(a.last().map(|r| r.start), Some(None), "the record without a time comes last");
    // Within one second (VPC's resolution) records keep their input order:
    // the late file's records of a second come before the early file's.
    let key = |r: &FlowRecord| (r.start, r.src, r.dst, r.src_port, r.bytes.total);
    let mut want: Vec<_> = recs.iter().map(key).collect();
    let mut got: Vec<_> = a.iter().take(recs.len()).map(key).collect();
    // A late record and an early one of the same second: the late one first.
    let t_split = recs[half].start;
    let late_first = a.iter().position(|r| r.start == t_split).map(|i| key(&a[i]));
    assert_eq!(late_first, recs[half..].iter().find(|r| r.start == t_split).map(key));
    want.sort();
    got.sort();
    assert!(got == want, "sorting lost or changed records");
}

#[test]
fn parallel_blocks_equal_one_sequential_pass() {
    let dir = tempfile::tempdir().expect("tmp");
    let (text, _) = generated(30_000);
    let input = write(dir.path(), "flows.log", &text);
    // One huge block (parsed as few pieces) vs tiny blocks (many blocks, many pieces).
    let (a, ra) = all(std::slice::from_ref(&input), &ScanOptions { block_size: 64 << 20, ..Default::default() });
    let (b, rb) = all(std::slice::from_ref(&input), &ScanOptions { block_size: 4096, ..Default::default() });
    assert_eq!(ra.records, 30_000);
    assert_eq!(a.len(), b.len());
    assert!(a == b, "records differ between block sizes");
    assert_eq!((ra.rejected, rb.rejected), (0, 0));
}

#[test]
fn gzip_multi_member_and_plain_read_the_same() {
    let dir = tempfile::tempdir().expect("tmp");
    let (text, _) = generated(5_000);
    let cut = text.len() / 2 + memchr_pos(&text[text.len() / 2..]);
    let mut two = gz(&text[..cut]);
    two.extend(gz(&text[cut..]));
    let plain = write(dir.path(), "a.log", &text);
    let multi = write(dir.path(), "a.log.gz", &two);
    let (a, _) = all(&[plain], &ScanOptions::default());
    let (b, rb) = all(&[multi], &ScanOptions::default());
    assert_eq!(rb.files[0].format, Some("vpc"));
    assert!(a == b && a.len() == 5_000);
}

fn memchr_pos(s: &[u8]) -> usize {
    s.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1)
}

#[test]
fn truncated_gzip_keeps_what_was_good_and_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let (text, _) = generated(20_000);
    let z = gz(&text);
    let input = write(dir.path(), "cut.log.gz", &z[..z.len() * 2 / 3]);
    let (recs, report) = all(&[input], &ScanOptions::default());
    let f = &report.files[0];
    assert!(f.error.as_deref().is_some_and(|e| e.contains("read error")), "{:?}", f.error);
    // Most of the file is recovered; at most the one cut line is rejected.
    assert!(recs.len() > 10_000 && recs.len() < 20_000, "{}", recs.len());
    assert!(report.rejected <= 1);
}

#[test]
fn overlong_line_is_skipped_and_counted() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut data = b"version srcaddr dstaddr\n2 10.0.0.1 10.0.0.2\n".to_vec();
    // Twice the limit: a line only slightly over it may still be read whole when
    // its newline arrives in the read that crosses the limit (memory stays
    // bounded by limit + one block either way).
    data.extend(std::iter::repeat_n(b'x', 2 * flowhound_source_max_line()));
    data.extend_from_slice(b"\n2 10.0.0.3 10.0.0.4\n");
    let input = write(dir.path(), "long.log", &data);
    let (recs, report) = all(&[input], &ScanOptions { block_size: 1 << 20, ..Default::default() });
    assert_eq!(recs.len(), 2);
    assert_eq!(report.rejected, 1);
    assert_eq!(
        report.rejects_by_reason.get(&RejectReason::BadSyntax),
        Some(&1),
        "{:?} {:?}",
        report.rejects_by_reason,
        report.files
    );
    assert_eq!(report.files[0].lines, 4);
}

fn flowhound_source_max_line() -> usize {
    flowhound_source::MAX_LINE
}

#[test]
fn concatenated_zeek_logs_switch_layout_mid_stream() {
    let a = "#separator \\x09\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n";
    let b = "#separator \\x09\n#fields\tid.resp_h\tid.orig_h\tts\tproto\n";
    let mut data = String::from(a);
    for i in 0..3000 {
        data.push_str(&format!("{}.5\t10.0.0.1\t{}\t10.0.0.2\t80\ttcp\n", 1_700_000_000 + i, 1024 + i));
    }
    data.push_str(b);
    for i in 0..3000 {
        data.push_str(&format!("10.9.9.9\t10.0.0.7\t{}.25\tudp\n", 1_700_010_000 + i));
    }
    let dir = tempfile::tempdir().expect("tmp");
    let input = write(dir.path(), "cat.log", data.as_bytes());
    let (recs, report) = all(&[input], &ScanOptions { block_size: 16 << 10, ..Default::default() });
    assert_eq!((report.records, report.rejected), (6000, 0));
    assert_eq!(recs[5999].dst.map(|a| a.to_string()).as_deref(), Some("10.9.9.9"));
    assert_eq!(recs[5999].protocol, Some(17));
}

#[test]
fn labels_join_by_line_number_across_blocks() {
    let dir = tempfile::tempdir().expect("tmp");
    let (text, recs) = generated(20_000);
    let mut labels = LabelTable::default();
    for (i, r) in recs.iter().enumerate() {
        if let Some(t) = &r.truth {
            labels.insert(i as u64 + 2, t.clone());
        }
    }
    let input = write(dir.path(), "flows.log", &text);
    let opts = ScanOptions { labels: Some(labels.into()), block_size: 32 << 10, ..Default::default() };
    let (back, _) = all(&[input], &opts);
    let truths = |v: &[FlowRecord]| v.iter().map(|r| r.truth.clone()).collect::<Vec<_>>();
    assert_eq!(truths(&back), truths(&recs));
    assert!(back.iter().filter(|r| r.truth.as_ref().is_some_and(|t| t.malicious)).count() == 1000);
}

#[test]
fn reject_line_numbers_are_exact_across_blocks() {
    let dir = tempfile::tempdir().expect("tmp");
    let (text, _) = generated(10_000);
    let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let bad: &[u8] = b"2 123456789012 eni-x 10.0.0.1 10.0.0.999 1 2 6 1 1 1 1 ACCEPT OK";
    for at in [500usize, 4_321, 9_999] {
        lines[at - 1] = bad; // line numbers are 1-based
    }
    let data = lines.join(&b'\n');
    let input = write(dir.path(), "bad.log", &data);
    struct Lines(Vec<u64>);
    impl flowhound_source::ScanEvents for Lines {
        fn reject(&mut self, r: &flowhound_source::LineReject<'_>) {
            self.0.push(r.line);
        }
    }
    let mut ev = Lines(Vec::new());
    scan(&[input], &ScanOptions { block_size: 8 << 10, ..Default::default() }, &mut ev, |_| (), |_| ());
    assert_eq!(ev.0, vec![500, 4_321, 9_999]);
}

#[test]
fn nothing_parsable_is_a_file_error_naming_the_first_problem() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = write(dir.path(), "junk.log", b"2 a b c\n2 d e f\n");
    let (_, report) = all(&[input], &ScanOptions::default());
    let e = report.files[0].error.as_deref().unwrap_or_default();
    assert!(e.contains("line 1") && e.contains("field_count"), "{e}");
}

#[test]
fn unknown_format_is_a_file_error_and_other_files_still_count() {
    let dir = tempfile::tempdir().expect("tmp");
    let junk = write(dir.path(), "a.bin", b"\x00\x01\x02 hello\n");
    let good = write(dir.path(), "b.log", b"2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 40 1 2 ACCEPT OK\n");
    let (recs, report) = all(&[junk, good], &ScanOptions::default());
    assert_eq!(recs.len(), 1);
    let e = report.files[0].error.as_deref().unwrap_or_default();
    assert!(e.contains("binary data") && e.contains("00 01 02"), "{e}");
    assert!(report.files[1].error.is_none());
    // Text of no known shape: the format can be named.
    let odd = write(
        dir.path(),
        "c.log",
        b"hello world
",
    );
    let (_, report) = all(&[odd], &ScanOptions::default());
    assert!(report.files[0].error.as_deref().is_some_and(|e| e.contains("--input-format")));
}

#[test]
fn resolve_expands_directories_and_globs_and_lists_every_missing_input() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    for n in ["b.log", "a.log", "sub/c.log", ".hidden"] {
        std::fs::write(dir.path().join(n), b"x").expect("write");
    }
    let d = dir.path().display().to_string();
    let got = resolve(std::slice::from_ref(&d)).expect("dir");
    let names: Vec<String> = got.iter().map(|i| i.name().rsplit('/').next().unwrap_or_default().to_string()).collect();
    assert_eq!(names, vec!["a.log", "b.log", "c.log"]);
    let got = resolve(&[format!("{d}/*.log")]).expect("glob");
    assert_eq!(got.len(), 2);
    let err = resolve(&[format!("{d}/nope1"), format!("{d}/nope*"), "-".into()]).expect_err("missing").to_string();
    assert!(err.contains("nope1") && err.contains("nope*"), "{err}");
}

/// `map` may keep per-thread sums (inspect does): it must see every record
/// exactly once, even when a header mid-block makes the driver redo a block.
#[test]
fn map_sees_each_record_once_with_headers_mid_block() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().expect("tmp");
    let (text, _) = generated(8_000);
    let three = [text.as_slice(), text.as_slice(), text.as_slice()].concat();
    let input = write(dir.path(), "cat.log", &three);
    for block in [16 << 10, 1 << 20, 64 << 20] {
        let seen = AtomicU64::new(0);
        let report = scan(
            std::slice::from_ref(&input),
            &ScanOptions { block_size: block, ..Default::default() },
            &mut (),
            |r: &[FlowRecord]| {
                seen.fetch_add(r.len() as u64, Ordering::Relaxed);
            },
            |()| {},
        );
        assert_eq!(report.records, 24_000, "block {block}");
        assert_eq!(seen.load(Ordering::Relaxed), 24_000, "block {block}: map saw records twice");
    }
}
