//! NetFlow v5 load for `watch`'s collector: generated traffic (the same
//! generator as `flowhound generate`), re-timed to now, sent as export
//! packets of 30 records at a fixed rate for a fixed time, on loopback.
//!
//!     cargo run --release --example netflow_load -- 127.0.0.1:2055 100000 60
//!
//! Arguments: destination, flows per second, seconds. Prints what it sent;
//! `watch --metrics` tells what arrived, what was dropped and the latency.
//!
//! With a fourth argument, FILE, nothing is sent: the flows that would be
//! sent are written there as flowhound JSON lines instead — traffic of the
//! same shape to train the benchmark's model on. A day of a small network
//! squeezed into 100k flows/s is a flood to a model trained on its real
//! pace; trained on this shape, the load is normal traffic and the
//! benchmark measures the detector as it runs, not an alert storm.

use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowhound_flow::netflow::{encode_v5, Collector, CollectorParams, V5_MAX_RECORDS};
use flowhound_flow::{FlowRecord, Timestamp};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(to), Some(rate), Some(secs)) = (
        args.first(),
        args.get(1).and_then(|r| r.parse::<u64>().ok()),
        args.get(2).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: netflow_load ADDR:PORT FLOWS_PER_SEC SECONDS");
        std::process::exit(2);
    };
    let mut pool: Vec<FlowRecord> = Vec::new();
    let params = flowhound_synth::GenParams { flows: 300_000, ..Default::default() };
    let gen = flowhound_synth::generate(&params, |recs| {
        pool.extend(recs.iter().filter(|r| r.src.is_some_and(|a| a.is_ipv4())).cloned());
        Ok::<(), ()>(())
    });
    if gen.is_err() || pool.is_empty() {
        eprintln!("the generator gave no IPv4 flows");
        std::process::exit(1);
    }
    let dump = args.get(3).cloned();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("a local UDP socket");
    let now_ms = || SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let boot = now_ms() - 3_600_000;
    let first = pool[0].start.map_or(0, |t| t.micros());
    let retime = |r: &mut FlowRecord, t_ms: i64| {
        // Keep the generated day's rhythm, moved to the present.
        let offset = r.start.map_or(0, |t| t.micros() - first) % 60_000_000;
        let dur = r.duration_us.unwrap_or(0) as i64;
        r.start = Timestamp::from_micros(t_ms * 1000 - 60_000_000 + offset);
        r.end = r.start.and_then(|s| Timestamp::from_micros(s.micros() + dur.min(50_000_000)));
    };
    if let Some(path) = dump {
        let t0 = now_ms();
        let n = rate * secs;
        let mut out = Vec::new();
        // Through the encoder and the collector, as the load arrives: the
        // model must learn NetFlow v5's fields (no action, no direction, no
        // cloud ids), not the generator's richer records.
        let mut collector = Collector::new(&CollectorParams::default()).expect("a collector");
        let from: std::net::SocketAddr = "127.0.0.1:9".parse().expect("an address");
        let (mut batch, mut decoded, mut seq) = (Vec::with_capacity(V5_MAX_RECORDS), Vec::new(), 0u32);
        for k in 0..n {
            let mut r = pool[k as usize % pool.len()].clone();
            let t_ms = t0 + (k * 1000 / rate.max(1)) as i64;
            retime(&mut r, t_ms);
            batch.push(r);
            if batch.len() == V5_MAX_RECORDS || k + 1 == n {
                let (pkt, m) = encode_v5(&batch, seq, boot, t_ms);
                seq = seq.wrapping_add(m as u32);
                decoded.clear();
                collector.packet(from, &pkt, &mut decoded);
                for d in &decoded {
                    flowhound_flow::write::write_json(d, &mut out);
                }
                batch.clear();
            }
        }
        std::fs::write(&path, out).expect("write the dump");
        println!("wrote {n} flows to {path}");
        return;
    }
    let started = Instant::now();
    let (mut sent, mut packets, mut seq, mut i) = (0u64, 0u64, 0u32, 0usize);
    let tick = Duration::from_millis(5);
    let mut batch: Vec<FlowRecord> = Vec::with_capacity(V5_MAX_RECORDS);
    while started.elapsed() < Duration::from_secs(secs) {
        // Flows due by now at the fixed rate.
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        let t_ms = now_ms();
        while sent < due {
            batch.clear();
            for _ in 0..V5_MAX_RECORDS.min((due - sent) as usize).max(1) {
                let mut r = pool[i % pool.len()].clone();
                i += 1;
                retime(&mut r, t_ms);
                batch.push(r);
            }
            let (pkt, n) = encode_v5(&batch, seq, boot, t_ms);
            if sock.send_to(&pkt, to).is_ok() {
                packets += 1;
            }
            seq = seq.wrapping_add(n as u32);
            sent += n as u64;
        }
        std::thread::sleep(tick);
    }
    let took = started.elapsed().as_secs_f64();
    println!("sent {sent} flows in {packets} packets over {took:.1} s: {:.0} flows/s", sent as f64 / took);
}
