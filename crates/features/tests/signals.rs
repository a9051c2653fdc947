//! The features do what they are for: on real data (the zeek-conn scanner)
//! and on generated attacks, the feature designed for an attack separates it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use flowhound_features::ExtractorParams;
use flowhound_flow::FlowRecord;
use flowhound_source::{resolve, scan, ScanOptions};
use flowhound_synth::{GenParams, Scenario};

fn datasets() -> Option<PathBuf> {
    flowhound_source::datasets_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Rows of every record, in time order, with the default settings.
fn rows(recs: &mut [FlowRecord]) -> (Vec<Vec<f32>>, flowhound_features::Schema) {
    recs.sort_by_key(|r| r.start);
    let mut x = ExtractorParams::default().build(None).expect("default params are valid");
    let schema = x.schema().clone();
    let rows = recs
        .iter()
        .map(|r| {
            let mut v = Vec::with_capacity(schema.len());
            x.extract(r, &mut v);
            v
        })
        .collect();
    (rows, schema)
}

fn quantile(mut v: Vec<f32>, q: f64) -> f32 {
    v.sort_by(f32::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn zeek_slow_scanner_stands_out_at_one_hour() {
    let Some(dir) = datasets() else { return };
    let inputs = resolve(&[dir.join("zeek-conn/conn.2024-04-19_*.log").display().to_string()]).expect("zeek logs");
    let mut recs = Vec::new();
    scan(&inputs, &ScanOptions::default(), &mut (), |r: &[FlowRecord]| r.to_vec(), |v| recs.extend(v));
    let (rows, schema) = rows(&mut recs);
    let j = schema.index("src_distinct_dst_ports_1h").expect("feature");
    let m = schema.index("src_distinct_dst_ports_60s").expect("feature");
    let mut max_1h: HashMap<IpAddr, f32> = HashMap::new();
    let mut max_60s: HashMap<IpAddr, f32> = HashMap::new();
    for (r, row) in recs.iter().zip(&rows) {
        let src = r.src.expect("zeek has addresses");
        let e = max_1h.entry(src).or_default();
        *e = e.max(row[j]);
        let e = max_60s.entry(src).or_default();
        *e = e.max(row[m]);
    }
    let scanner: IpAddr = "165.154.254.36".parse().expect("ip");
    let s = max_1h[&scanner];
    let others: Vec<f32> = max_1h.iter().filter(|(a, _)| **a != scanner).map(|(_, v)| *v).collect();
    let p95 = quantile(others, 0.95);
    eprintln!("scanner: {s} distinct ports in 1 h (60 s: {}); others p95: {p95}", max_60s[&scanner]);
    assert!(s >= 3.0 * p95.max(1.0), "scanner {s} vs p95 {p95}");
    // The slow pace is why the hour matters: in a minute it looks ordinary.
    assert!(max_60s[&scanner] * 3.0 <= s, "a slow scanner: {} a minute, {s} an hour", max_60s[&scanner]);
}

#[test]
fn generated_attacks_separate_on_their_features() {
    let mut recs = Vec::new();
    flowhound_synth::generate(
        &GenParams { flows: 200_000, anomaly_ratio: 0.05, seed: 11, ..Default::default() },
        |b| {
            recs.extend_from_slice(b);
            Ok::<(), ()>(())
        },
    )
    .expect("generate");
    let (rows, schema) = rows(&mut recs);
    let col = |name: &str, pick: &dyn Fn(&FlowRecord) -> bool| -> Vec<f32> {
        let j = schema.index(name).unwrap_or_else(|| panic!("{name}"));
        recs.iter().zip(&rows).filter(|(r, _)| pick(r)).map(|(_, row)| row[j]).collect()
    };
    let benign = |r: &FlowRecord| r.truth.as_ref().is_some_and(|t| !t.malicious);
    let is = |s: Scenario| move |r: &FlowRecord| r.truth.as_ref().and_then(|t| t.category.as_deref()) == Some(s.name());
    // (scenario, feature, required margin of the scenario's median over benign p99)
    let cases: [(Scenario, &str, f32); 4] = [
        (Scenario::PortScanVertical, "src_distinct_dst_ports_60s", 3.0),
        (Scenario::Ddos, "dst_distinct_src_60s", 3.0),
        (Scenario::Dos, "src_flows_60s", 3.0),
        (Scenario::Exfiltration, "bytes", 10.0),
    ];
    for (s, feature, margin) in cases {
        let attack = quantile(col(feature, &is(s)), 0.5);
        let normal = quantile(col(feature, &benign), 0.99);
        eprintln!("{:<20} {feature:<28} attack median {attack:>12.0}  benign p99 {normal:>12.0}", s.name());
        assert!(attack >= margin * normal.max(1.0), "{}: {attack} vs benign p99 {normal}", s.name());
    }
    // Never-seen external addresses, as in use: learn them from the first
    // half's benign flows (training), then score the second half with that
    // set fixed. Benign clients mostly recur. The generated unknown-IP
    // attacks reach the web servers and the bastion, which meet new
    // external addresses all through training (Internet background
    // radiation): there a new inbound address is normal (0). It stays the
    // signal outbound from them and for hosts that never meet strangers.
    let half = recs.len() / 2;
    let mut train = ExtractorParams::default().build(None).expect("valid");
    let mut scratch = Vec::new();
    for r in recs[..half].iter().filter(|r| benign(r)) {
        scratch.clear();
        train.extract(r, &mut scratch);
    }
    let mut detect = ExtractorParams::default().build(Some(train.known_external().clone())).expect("valid");
    let j = schema.index("external_unseen").expect("feature");
    let (mut hits, mut n, mut fp, mut nb, mut web, mut web_normal) = (0, 0, 0, 0, 0, 0);
    // The hosts that met strangers all through training: the public ones.
    let public: Vec<std::net::IpAddr> =
        train.known_external().open_sorted().into_iter().filter(|(_, inbound)| *inbound).map(|(h, _)| h).collect();
    assert!(!public.is_empty(), "the web servers and the bastion meet new clients all day");
    let probe = |src, dst, r: &flowhound_flow::FlowRecord| flowhound_flow::FlowRecord {
        src: Some(src),
        dst: Some(dst),
        src_port: Some(40_000),
        dst_port: Some(443),
        direction: None,
        ..r.clone()
    };
    for r in &recs[half..] {
        scratch.clear();
        detect.extract(r, &mut scratch);
        if is(Scenario::UnknownIp)(r) {
            // An internal server calling a stranger (and the stranger's
            // answers): the signal.
            n += 1;
            hits += usize::from(scratch[j] == 1.0);
            // The same stranger calling a public host: a new client, normal.
            let Some(stranger) = [r.src, r.dst].into_iter().flatten().find(|a| !a.is_ipv4() || !is_private(*a)) else {
                continue;
            };
            scratch.clear();
            detect.extract(&probe(stranger, public[web % public.len()], r), &mut scratch);
            web += 1;
            web_normal += usize::from(scratch[j] == 0.0);
        } else if benign(r) {
            nb += 1;
            fp += usize::from(scratch[j] == 1.0);
        }
    }
    let (u_attack, u_benign) = (hits as f32 / n as f32, fp as f32 / nb as f32);
    eprintln!("external_unseen: unknown_ip {u_attack:.3} of {n}, benign {u_benign:.3} of {nb}");
    // 0.944 of 570 with seed 11 since the eleven-scenario generator (was
    // ≥ 0.95 with eight): the rest reach hosts that met enough strangers
    // in the scored half to count them as normal.
    assert!(n > 0 && u_attack >= 0.9, "{u_attack}");
    assert!(web > 0 && web_normal == web, "{web_normal} of {web} new clients of public hosts normal");
    assert!(u_benign < 0.2, "{u_benign}");
}

fn is_private(a: std::net::IpAddr) -> bool {
    matches!(a, std::net::IpAddr::V4(v) if v.is_private())
}

#[test]
fn a_host_meeting_strangers_all_the_time_learns_it_while_detecting_and_keeps_it_across_a_restart() {
    let flow = |i: u32, src: &str, dst: &str, sport: u16, dport: u16| flowhound_flow::FlowRecord {
        start: flowhound_flow::Timestamp::from_micros(1_700_000_000_000_000 + i64::from(i) * 1_000_000),
        src: src.parse().ok(),
        dst: dst.parse().ok(),
        src_port: Some(sport),
        dst_port: Some(dport),
        protocol: Some(6),
        ..Default::default()
    };
    let p = ExtractorParams::default();
    let j = p.schema().index("external_unseen").expect("feature");
    let mut x = p.build(Some(Default::default())).expect("valid");
    let mut row = Vec::new();
    let mut unseen = |x: &mut flowhound_features::Extractor, r: &flowhound_flow::FlowRecord| {
        row.clear();
        x.extract(r, &mut row);
        row[j]
    };
    // 100 new clients of a server never seen in training, one a second.
    let marks: Vec<f32> = (0..100)
        .map(|i| unseen(&mut x, &flow(i, &format!("198.51.{}.{}", i / 200, i % 200 + 1), "10.0.0.5", 40_000, 443)))
        .collect();
    assert!(marks[..49].iter().all(|v| *v == 1.0), "the first strangers are the signal");
    assert!(marks[50..].iter().all(|v| *v == 0.0), "then new clients are this server's normal");
    // Its own calls to strangers stay the signal.
    assert_eq!(unseen(&mut x, &flow(200, "10.0.0.5", "203.0.113.77", 40_001, 443)), 1.0);
    // A restart from a checkpoint continues where it was.
    let saved = x.checkpoint();
    let mut y = p.build(Some(Default::default())).expect("valid");
    assert_eq!(
        unseen(&mut y, &flow(300, "192.0.2.9", "10.0.0.5", 40_000, 443)),
        1.0,
        "a fresh extractor knows nothing"
    );
    let mut y = p.build(Some(Default::default())).expect("valid");
    y.restore(&saved).expect("restores");
    assert_eq!(unseen(&mut y, &flow(300, "192.0.2.9", "10.0.0.5", 40_000, 443)), 0.0);
    let mut cut = saved.clone();
    cut[saved.len() - 20] ^= 1;
    assert!(y.restore(&cut).is_err(), "a damaged checkpoint is refused");
}
