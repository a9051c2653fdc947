//! Parser throughput: VPC v2 (the default format), a v5 extended custom
//! layout, and Zeek TSV, one line at a time through the `FlowReader` trait.
//!
//! `cargo bench -p flowhound-flow --bench parse`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowhound_flow::{FlowReader, FlowRecord, Format};

/// Deterministic, varied lines (xorshift): realistic addresses, ports, sizes.
fn lines(n: usize, extended: bool) -> Vec<u8> {
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::new();
    if extended {
        out.extend_from_slice(b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type region az-id flow-direction\n");
    }
    for i in 0..n {
        let r = next();
        let t = 1_793_577_600 + (i as u64 / 10);
        let line = format!(
            "{} 123456789012 eni-{:017x} 10.0.{}.{} {}.{}.{}.{} {} {} {} {} {} {} {} {} OK",
            if extended { 5 } else { 2 },
            r % 40,
            (r >> 8) % 4,
            (r >> 16) % 250 + 1,
            (r >> 24) % 223 + 1,
            (r >> 32) % 256,
            (r >> 40) % 256,
            (r >> 48) % 254 + 1,
            32768 + (r >> 20) % 28000,
            [443, 80, 22, 5432, 53][(r % 5) as usize],
            if r % 7 == 0 { 17 } else { 6 },
            1 + (r >> 12) % 200,
            40 + (r >> 4) % 150_000,
            t,
            t + (r >> 36) % 60,
            if r % 50 == 0 { "REJECT" } else { "ACCEPT" },
        );
        out.extend_from_slice(line.as_bytes());
        if extended {
            let ext = format!(
                " vpc-0a1b2c3d4e5f60718 subnet-0{}{:015x} i-{:017x} {} IPv4 us-east-1 use1-az{} {}",
                (r >> 8) % 4,
                r % 40,
                r % 40,
                [2, 3, 18, 19][(r % 4) as usize],
                1 + r % 2,
                if r % 2 == 0 { "ingress" } else { "egress" }
            );
            out.extend_from_slice(ext.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

fn zeek(n: usize) -> Vec<u8> {
    let mut out = b"#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n".to_vec();
    for i in 0..n {
        let line = format!(
            "1713484795.{:06}\tC{i:x}\t167.94.138.{}\t{}\t64.225.56.201\t{}\ttcp\t-\t0.000064\t0\t0\tREJ\tF\tT\t0\tSr\t1\t60\t1\t40\t-\n",
            i % 1_000_000,
            i % 250,
            1024 + i % 60000,
            i % 65536
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn parse_all(data: &[u8], format: &Format, out: &mut Vec<FlowRecord>) -> usize {
    let mut r = format.reader();
    out.clear();
    for line in data.split(|b| *b == b'\n') {
        let _ = r.read_line(line, out);
    }
    out.len()
}

fn bench(c: &mut Criterion) {
    let n = 50_000;
    let mut g = c.benchmark_group("parse");
    for (name, data, format) in [
        ("vpc_v2", lines(n, false), Format::Vpc),
        ("vpc_extended", lines(n, true), Format::Vpc),
        ("zeek_tsv", zeek(n), Format::ZeekTsv),
    ] {
        let mut out = Vec::with_capacity(n);
        assert_eq!(parse_all(&data, &format, &mut out), n, "{name}: every line parses");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(name, |b| b.iter(|| parse_all(&data, &format, &mut out)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
