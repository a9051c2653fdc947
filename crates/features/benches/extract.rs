//! Feature extraction throughput on one core, default windows (60 s, 1 h) and
//! burst baseline (15 min): 1M flows over one hour among 10k active hosts
//! (5k sources, 5k destinations, uniformly random pairs), and 1M generated
//! flows over 24 h and over one hour (~17k active hosts).
//!
//! Also `watch`'s window checkpoint of the uniform case: save and restore.
//!
//! `cargo bench -p flowhound-features --bench extract`

use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowhound_features::ExtractorParams;
use flowhound_flow::{Action, Counts, FlowRecord, Timestamp};

fn flows(n: usize, hosts: u32) -> Vec<FlowRecord> {
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let t0 = 1_793_577_600_000_000i64;
    (0..n)
        .map(|i| {
            let r = next();
            let src = (r % u64::from(hosts / 2)) as u32;
            let dst = ((r >> 20) % u64::from(hosts / 2)) as u32;
            FlowRecord {
                start: Timestamp::from_micros(t0 + (i as i64) * 3_600_000_000 / n as i64),
                end: Timestamp::from_micros(t0 + (i as i64) * 3_600_000_000 / n as i64 + 1_000_000),
                duration_us: Some(1_000_000),
                src: Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | src))),
                dst: Some(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 | dst))),
                src_port: Some(32768 + (r >> 40) as u16 % 28000),
                dst_port: Some([443, 80, 22, 53, 5432][(r % 5) as usize]),
                protocol: Some(6),
                packets: Counts::total(1 + (r >> 8) % 100),
                bytes: Counts::total(40 + (r >> 16) % 100_000),
                action: Some(if r % 50 == 0 { Action::Reject } else { Action::Accept }),
                tcp_flags: Some(0x13),
                ..Default::default()
            }
        })
        .collect()
}

fn run(recs: &[FlowRecord]) -> (f32, usize) {
    let mut x = ExtractorParams::default().build(None).expect("valid");
    let mut row = Vec::with_capacity(x.schema().len());
    let mut sum = 0.0f32;
    for r in recs {
        row.clear();
        x.extract(r, &mut row);
        sum += row[0];
    }
    (sum, x.active_hosts())
}

fn bench(c: &mut Criterion) {
    let n = 1_000_000;
    let mut g = c.benchmark_group("features");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    // Worst case for caches: every flow a uniformly random pair of 10k hosts,
    // so each source meets ~200 distinct peers an hour.
    let uniform = flows(n, 10_000);
    g.bench_function("uniform_1m_flows_10k_hosts", |b| {
        b.iter(|| {
            let (sum, hosts) = run(&uniform);
            assert_eq!(hosts, 10_000);
            sum
        })
    });
    // The generator's traffic: a VPC of ~30 servers and thousands of clients
    // with heavy-tailed popularity, 1M flows over 24 h, attacks included.
    let mut generated = Vec::with_capacity(n);
    flowhound_synth::generate(&flowhound_synth::GenParams { flows: n as u64, ..Default::default() }, |b| {
        generated.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .expect("generate");
    g.bench_function("generated_1m_flows", |b| b.iter(|| run(&generated).0));
    // The same traffic packed into one hour: ~14k sources and ~3k
    // destinations active within the hour, the "10k active hosts".
    let mut hour = Vec::with_capacity(n);
    let p = flowhound_synth::GenParams { flows: n as u64, hours: 1, ..Default::default() };
    flowhound_synth::generate(&p, |b| {
        hour.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .expect("generate");
    g.bench_function("generated_1m_flows_1h", |b| {
        b.iter(|| {
            let (sum, hosts) = run(&hour);
            assert!(hosts >= 10_000, "{hosts} active hosts");
            sum
        })
    });
    g.finish();

    // `watch`'s checkpoint of that state (every --checkpoint, 5 s by default):
    // after the uniform hour, the heaviest case above (10k hosts, ~1M pairs).
    let mut x = ExtractorParams::default().build(None).expect("valid");
    let mut row = Vec::new();
    for r in &uniform {
        row.clear();
        x.extract(r, &mut row);
    }
    let saved = x.checkpoint();
    eprintln!("checkpoint of {} active hosts: {} bytes", x.active_hosts(), saved.len());
    let mut g = c.benchmark_group("checkpoint");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(saved.len() as u64));
    g.bench_function("save_uniform_1h_10k_hosts", |b| b.iter(|| x.checkpoint().len()));
    let mut y = ExtractorParams::default().build(None).expect("valid");
    g.bench_function("restore_uniform_1h_10k_hosts", |b| {
        b.iter(|| {
            y.restore(&saved).expect("restore");
            y.active_hosts()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
