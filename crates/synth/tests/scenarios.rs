//! The generator's promises: exact counts, time order, determinism, and each
//! scenario having the shape that defines its threat class.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use flowhound_flow::{Action, FlowRecord};
use flowhound_synth::{generate, GenParams, Scenario};

fn gen(flows: u64, ratio: f64, seed: u64) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    generate(&GenParams { flows, anomaly_ratio: ratio, seed, ..Default::default() }, |b| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .expect("generate");
    out
}

fn of(recs: &[FlowRecord], s: Scenario) -> Vec<&FlowRecord> {
    recs.iter().filter(|r| r.truth.as_ref().and_then(|t| t.category.as_deref()) == Some(s.name())).collect()
}

#[test]
fn exact_counts_order_and_determinism() {
    let a = gen(50_000, 0.08, 1);
    assert_eq!(a.len(), 50_000);
    assert_eq!(a.iter().filter(|r| r.truth.as_ref().is_some_and(|t| t.malicious)).count(), 4000);
    assert!(a.windows(2).all(|w| w[0].start <= w[1].start), "records are in time order");
    assert!(a == gen(50_000, 0.08, 1), "same seed, same records");
    assert!(a != gen(50_000, 0.08, 2));
    // 4000 attack records over 11 scenarios: 363 or 364 each.
    let n = Scenario::ALL.len();
    for s in Scenario::ALL {
        let got = of(&a, s).len();
        assert!(got == 4000 / n || got == 4000 / n + 1, "{} gets an equal share: {got}", s.name());
    }
    assert_eq!(gen(1000, 0.0, 5).iter().filter(|r| r.truth.as_ref().is_some_and(|t| t.malicious)).count(), 0);
}

fn sources(v: &[&FlowRecord]) -> HashSet<IpAddr> {
    v.iter().filter_map(|r| r.src).collect()
}

#[test]
fn scenarios_have_their_defining_shape() {
    let recs = gen(200_000, 0.05, 7);
    let normal: Vec<&FlowRecord> = recs.iter().filter(|r| r.truth.as_ref().is_some_and(|t| !t.malicious)).collect();
    let normal_addrs: HashSet<IpAddr> = normal.iter().flat_map(|r| [r.src, r.dst]).flatten().collect();

    // Vertical scan: one source, one target, hundreds of distinct ports.
    let v = of(&recs, Scenario::PortScanVertical);
    let mut by_pair: HashMap<(IpAddr, IpAddr), HashSet<u16>> = HashMap::new();
    for r in v.iter().filter(|r| r.tcp_flags == Some(2)) {
        by_pair.entry((r.src.expect("src"), r.dst.expect("dst"))).or_default().extend(r.dst_port);
    }
    assert!(by_pair.values().any(|p| p.len() >= 300), "a source probes ≥300 ports of one host");

    // Horizontal scan: one source, one port, many hosts.
    let h = of(&recs, Scenario::PortScanHorizontal);
    let mut by_src_port: HashMap<(IpAddr, u16), HashSet<IpAddr>> = HashMap::new();
    for r in h.iter().filter(|r| r.tcp_flags == Some(2)) {
        by_src_port.entry((r.src.expect("src"), r.dst_port.expect("port"))).or_default().extend(r.dst);
    }
    assert!(by_src_port.values().any(|d| d.len() >= 10), "one port swept across ≥10 hosts");

    // DoS: one source; DDoS: hundreds of sources on one target.
    let dos = of(&recs, Scenario::Dos);
    assert!(dos.len() > 500 && sources(&dos).len() <= 2, "{} sources", sources(&dos).len());
    let ddos = of(&recs, Scenario::Ddos);
    assert!(sources(&ddos).len() >= 100, "{} sources", sources(&ddos).len());

    // Exfiltration: internal source, huge bytes, a destination normal traffic never saw.
    let ex = of(&recs, Scenario::Exfiltration);
    let big = ex.iter().filter(|r| r.bytes.total.unwrap_or(0) >= 20_000_000).count();
    assert!(big >= 10, "{big} flows over 20 MB");
    let normal_max = normal.iter().filter_map(|r| r.bytes.total).max().unwrap_or(0);
    assert!(ex.iter().filter_map(|r| r.bytes.total).max().unwrap_or(0) > normal_max);
    assert!(ex
        .iter()
        .filter(|r| r.bytes.total.unwrap_or(0) >= 20_000_000)
        .all(|r| r.dst.is_some_and(|d| !normal_addrs.contains(&d))));

    // Connection burst: one internal host, many flows in little time.
    let b = of(&recs, Scenario::ConnectionBurst);
    let mut per_src: HashMap<IpAddr, usize> = HashMap::new();
    for r in &b {
        *per_src.entry(r.src.expect("src")).or_default() += 1;
    }
    assert!(per_src.values().any(|n| *n >= 250));

    // Unknown IP: accepted traffic from addresses absent from all normal traffic.
    let u = of(&recs, Scenario::UnknownIp);
    assert!(u.iter().any(|r| r.action == Some(Action::Accept)));
    let outsiders: HashSet<IpAddr> =
        u.iter().flat_map(|r| [r.src, r.dst]).flatten().filter(|a| !is_private(a)).collect();
    assert!(!outsiders.is_empty() && outsiders.iter().all(|a| !normal_addrs.contains(a)));

    // Abnormal protocol: UDP to TCP services, ICMP, or protocols normal traffic never uses.
    let normal_protos: HashSet<Option<u8>> = normal.iter().map(|r| r.protocol).collect();
    assert_eq!(normal_protos, HashSet::from([Some(6), Some(17)]));
    let ap = of(&recs, Scenario::AbnormalProtocol);
    assert!(ap.iter().all(|r| r.protocol != Some(6)), "never plain TCP");
}

fn is_private(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_private() || v.octets()[0] == 169,
        IpAddr::V6(_) => false,
    }
}
