//! `publish` against a real JetStream server on a loopback port: every
//! record stored once on its source's partition and once on its
//! destination's when that is another, in input order per partition, reading back as the record parsed from the file; publishing
//! again stores nothing twice. Skips with a note when `nats-server` is not
//! installed (CI installs it).

#[path = "support/nats.rs"]
mod nats;

use std::collections::BTreeMap;

use flowhound_source::{Input, ScanOptions};
use flowhound_stream::{decode, partition, publish, record_id, PublishParams, Target};

/// A JetStream server on a free loopback port, storing in `dir`.
fn server(dir: &std::path::Path) -> Option<(nats::Server, u16)> {
    let port = nats::free_port();
    nats::start(port, &["-sd".into(), dir.display().to_string()]).map(|s| (s, port))
}

#[test]
fn records_are_stored_once_on_their_sources_partition_in_order() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some((_server, port)) = server(&tmp.path().join("js")) else { return };
    let mut recs = Vec::new();
    let g = flowhound_synth::GenParams { flows: 3_000, seed: 9, ..Default::default() };
    flowhound_synth::generate(&g, |b| {
        recs.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .expect("generate");
    let (text, _) = flowhound_synth::vpc_with_labels(&recs);
    let log = tmp.path().join("day.log");
    std::fs::write(&log, &text).expect("write");
    // The records as `detect` reads them (the generator's own carry more
    // than the VPC format keeps).
    let mut parsed = Vec::new();
    let input = Input::Path(log.clone());
    flowhound_source::scan_records(std::slice::from_ref(&input), &ScanOptions::default(), &mut (), |r| {
        parsed.extend(r)
    });
    assert_eq!(parsed.len(), recs.len());

    let target = Target::parse(&format!("nats://127.0.0.1:{port}/DAY")).expect("target");
    let params = PublishParams { partitions: 4, ..PublishParams::new(target.clone()) };
    let first = publish(&params, std::slice::from_ref(&input), &ScanOptions::default(), &mut ()).expect("publish");
    assert_eq!((first.records, first.duplicates), (parsed.len() as u64, 0));
    // A record goes to its source's partition, and to its destination's when that is another.
    let expected: u64 = parsed.iter().map(|r| 1 + u64::from(partition(r.src, 4) != partition(r.dst, 4))).sum();
    assert_eq!(first.per_partition.iter().sum::<u64>(), expected);
    assert!(expected > first.records, "some records cross partitions");
    assert!(first.per_partition.iter().all(|n| *n > 0), "{:?}", first.per_partition);

    // Read the stream back, message by message.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let stored = rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&target.server).await.expect("connect"));
        let mut stream = js.get_stream("DAY").await.expect("stream");
        let n = stream.info().await.expect("info").state.messages;
        let mut out = Vec::new();
        for seq in 1..=n {
            let m = stream.get_raw_message(seq).await.expect("message");
            let id = m.headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.to_string()).expect("id");
            out.push((m.subject.to_string(), id, decode(&m.payload).expect("decode")));
        }
        out
    });
    assert_eq!(stored.len() as u64, expected, "every record stored once per partition owning an address");
    let name = input.name();
    let mut last_in_subject: BTreeMap<String, u64> = BTreeMap::new();
    let mut copies = vec![0u32; parsed.len()];
    for (subject, id, r) in &stored {
        let (base, to_dst) = match id.strip_suffix(">dst") {
            Some(b) => (b, true),
            None => (id.as_str(), false),
        };
        let pos: u64 = base.strip_prefix(&format!("{name}#")).and_then(|p| p.parse().ok()).expect("input#position id");
        assert_eq!(base, record_id(&name, pos));
        assert_eq!(r, &parsed[pos as usize], "record {pos} reads back as parsed");
        let owner = if to_dst { r.dst } else { r.src };
        assert_eq!(subject, &target.subject(partition(owner, 4)), "record {pos} on its owner's partition");
        copies[pos as usize] += 1;
        let last = last_in_subject.insert(subject.clone(), pos);
        assert!(last.is_none_or(|l| l < pos), "{subject}: input order kept ({last:?} then {pos})");
    }
    assert!(copies.iter().all(|c| *c >= 1), "every record is stored");

    // The same input again: every id is known, nothing is stored twice.
    let again = publish(&params, std::slice::from_ref(&input), &ScanOptions::default(), &mut ()).expect("again");
    assert_eq!((again.records, again.duplicates), (parsed.len() as u64, parsed.len() as u64));
    let n = rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&target.server).await.expect("connect"));
        js.get_stream("DAY").await.expect("stream").info().await.expect("info").state.messages
    });
    assert_eq!(n, expected);

    // The stream keeps its partition count: another one is refused.
    let other = PublishParams { partitions: 8, ..params.clone() };
    let e = publish(&other, std::slice::from_ref(&input), &ScanOptions::default(), &mut ()).expect_err("8 ≠ 4");
    assert!(e.to_string().contains("made with 4 partitions"), "{e}");

    // A server that is not there is an error that says NATS, not a hang.
    let gone = PublishParams::new(Target::parse("nats://127.0.0.1:1/DAY").expect("target"));
    let e = publish(&gone, std::slice::from_ref(&input), &ScanOptions::default(), &mut ()).expect_err("no server");
    assert!(e.to_string().starts_with("NATS:"), "{e}");
}
