//! Each context feature pinned on small hand-made flow sequences.

use std::net::IpAddr;

use flowhound_features::{Context, Key, Windows};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A flow at `t_secs` to port 443: 10 bytes, one packet, accepted.
fn key(t_secs: f64, src: &str, dst: &str) -> Key {
    Key {
        t: (t_secs * 1e6) as i64,
        src: ip(src),
        dst: ip(dst),
        dst_port: Some(443),
        bytes: 10,
        packets: 1,
        rejected: false,
        icmp: false,
    }
}

/// A context with the default windows and the features of the last flow.
struct Ctx {
    c: Context,
    names: Vec<String>,
    last: Vec<f32>,
}

impl Ctx {
    fn new() -> Self {
        let w = Windows { secs: vec![60, 3600], baseline_secs: 900 };
        let names = Context::features(&w).into_iter().map(|f| f.name).collect();
        Ctx { c: Context::new(w), names, last: Vec::new() }
    }

    fn push(&mut self, k: &Key) {
        self.last.clear();
        self.c.update(k, &mut self.last);
    }

    fn flow(&mut self, t_secs: f64, src: &str, dst: &str, port: u16, bytes: u64, rejected: bool) {
        self.push(&Key { dst_port: Some(port), bytes, rejected, ..key(t_secs, src, dst) });
    }

    fn get(&self, name: &str) -> f32 {
        let i = self.names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no feature {name}"));
        self.last[i]
    }
}

#[test]
fn fifty_ports_in_ten_seconds() {
    let mut c = Ctx::new();
    for p in 0..50 {
        c.flow(1000.0 + f64::from(p) * 0.2, "10.0.3.7", "10.0.1.9", 1000 + p, 60, true);
    }
    assert_eq!(c.get("src_distinct_dst_ports_60s"), 50.0);
    assert_eq!(c.get("src_distinct_dst_60s"), 1.0);
    assert_eq!(c.get("src_flows_60s"), 50.0);
    assert_eq!(c.get("src_reject_share_60s"), 1.0);
    assert_eq!(c.get("dst_flows_60s"), 50.0);
    assert_eq!(c.get("dst_distinct_src_60s"), 1.0);
    assert_eq!(c.get("src_new_dst_60s"), 1.0, "one new destination, however many ports");
}

#[test]
fn windows_forget_what_is_older_than_them() {
    let mut c = Ctx::new();
    for i in 0..10 {
        c.flow(f64::from(i), "10.0.0.1", &format!("10.0.1.{i}"), 443, 100, false);
    }
    assert_eq!(c.get("src_flows_60s"), 10.0);
    // 65 s later: the minute has forgotten the first ten, the hour has not.
    c.flow(70.0, "10.0.0.1", "10.0.1.99", 443, 100, false);
    assert_eq!(c.get("src_flows_60s"), 1.0);
    assert_eq!(c.get("src_flows_1h"), 11.0);
    assert_eq!(c.get("src_distinct_dst_1h"), 11.0);
    assert_eq!(c.get("src_bytes_out_1h"), 1100.0);
    // Exactly the window length ago is out.
    c.flow(130.0, "10.0.0.1", "10.0.1.99", 443, 100, false);
    assert_eq!(c.get("src_flows_60s"), 1.0);
}

/// Windows are 12 buckets: history between 11/12 W and W is kept. Whatever
/// the phase, a flow 54 s old is inside the 60 s window and one 60 s old is not.
#[test]
fn window_edges_are_bucket_granular_within_a_twelfth() {
    for phase in [0.0, 1.3, 2.5, 4.99] {
        let mut c = Ctx::new();
        c.flow(1000.0 + phase, "10.0.0.9", "10.0.1.1", 80, 1, false);
        c.flow(1054.0 + phase, "10.0.0.9", "10.0.1.2", 80, 1, false);
        assert_eq!(c.get("src_flows_60s"), 2.0, "phase {phase}");
        assert_eq!(c.get("src_distinct_dst_60s"), 2.0, "phase {phase}");
        let mut c = Ctx::new();
        c.flow(1000.0 + phase, "10.0.0.9", "10.0.1.1", 80, 1, false);
        c.flow(1060.0 + phase, "10.0.0.9", "10.0.1.2", 80, 1, false);
        assert_eq!(c.get("src_flows_60s"), 1.0, "phase {phase}");
        assert_eq!(c.get("src_distinct_dst_60s"), 1.0, "phase {phase}");
        assert_eq!(c.get("src_flows_1h"), 2.0);
    }
}

#[test]
fn many_sources_on_one_destination() {
    let mut c = Ctx::new();
    for i in 0..300u32 {
        let src = format!("198.51.{}.{}", i / 250, i % 250 + 1);
        c.flow(500.0 + f64::from(i) * 0.1, &src, "10.0.1.5", 443, 60, false);
    }
    assert_eq!(c.get("dst_distinct_src_60s"), 300.0);
    assert_eq!(c.get("dst_packets_60s"), 300.0);
    assert_eq!(c.get("dst_bytes_in_60s"), 18_000.0);
    assert_eq!(c.get("src_flows_60s"), 1.0, "each source sent one flow");
}

#[test]
fn burst_ratio_is_one_when_steady_and_high_when_sudden() {
    let mut c = Ctx::new();
    // One flow every 6 s for 20 minutes: steady.
    for i in 0..200 {
        c.flow(f64::from(i) * 6.0, "10.0.0.2", "10.0.0.3", 5432, 10, false);
    }
    let steady = c.get("src_burst_60s_15m");
    assert!((steady - 1.0).abs() < 0.1, "{steady}");
    // Then 300 flows in 30 s.
    for i in 0..300 {
        c.flow(1200.0 + f64::from(i) * 0.1, "10.0.0.2", "10.0.0.3", 5432, 10, false);
    }
    let burst = c.get("src_burst_60s_15m");
    assert!(burst > 3.0, "{burst}");
}

#[test]
fn new_destinations_are_new_only_once() {
    let mut c = Ctx::new();
    for i in 0..5 {
        c.flow(f64::from(i), "10.0.0.4", "8.8.8.8", 53, 10, false);
    }
    assert_eq!(c.get("src_new_dst_60s"), 1.0);
    c.flow(6.0, "10.0.0.4", "1.1.1.1", 53, 10, false);
    assert_eq!(c.get("src_new_dst_60s"), 2.0);
}

#[test]
fn out_of_order_records_count_at_their_hosts_newest_time() {
    let mut c = Ctx::new();
    c.flow(100.0, "10.0.0.5", "10.0.0.6", 80, 1, false);
    c.flow(20.0, "10.0.0.5", "10.0.0.7", 80, 1, false);
    assert_eq!(c.get("src_flows_60s"), 2.0, "the late record is not lost");
}

#[test]
fn quiet_hosts_are_evicted() {
    let mut c = Ctx::new();
    for i in 0..1000 {
        c.push(&key(f64::from(i), &format!("10.1.{}.{}", i / 250, i % 250 + 1), "10.9.9.9"));
    }
    assert_eq!(c.c.active_hosts(), 1001);
    // Hours later, one host keeps talking for longer than a sweep interval.
    for i in 0..70_000 {
        c.push(&key(10_000.0 + f64::from(i) * 0.01, "10.2.0.1", "10.9.9.9"));
    }
    assert!(c.c.active_hosts() <= 3, "{} hosts kept", c.c.active_hosts());
}

/// A host dropped by a sweep and brought back by a late record (time going
/// back, as when a directory of captures is read out of order) starts with
/// empty windows: what its earlier life left in the pair and port tables is
/// not counted (nor uncounted: no counter goes below zero).
#[test]
fn a_host_back_from_eviction_ignores_its_earlier_life() {
    let mut c = Ctx::new();
    c.push(&key(1000.0, "10.0.0.1", "10.0.0.2"));
    // Another host talks hours later for longer than a sweep interval.
    for i in 0..70_000 {
        c.push(&key(20_000.0 + f64::from(i) * 0.01, "10.0.9.9", "10.0.9.8"));
    }
    assert_eq!(c.c.active_hosts(), 2, "the first pair was dropped");
    // The late record lands in the same bucket as the first life's flow.
    c.push(&key(1000.0, "10.0.0.1", "10.0.0.2"));
    assert_eq!(c.get("src_flows_60s"), 1.0);
    assert_eq!(c.get("src_distinct_dst_60s"), 1.0);
    assert_eq!(c.get("src_distinct_dst_ports_60s"), 1.0);
    assert_eq!(c.get("src_new_dst_1h"), 1.0);
    assert_eq!(c.get("dst_distinct_src_60s"), 1.0);
    // And it keeps counting exactly from there.
    c.push(&key(1001.0, "10.0.0.1", "10.0.0.2"));
    assert_eq!(c.get("src_flows_60s"), 2.0);
    assert_eq!(c.get("src_distinct_dst_60s"), 1.0);
    assert_eq!(c.get("dst_distinct_src_60s"), 1.0);
    assert_eq!(c.get("src_new_dst_1h"), 1.0);
}

/// The pair and port tables forget what no window can hold: memory follows
/// the traffic of the last hours, not all time.
#[test]
fn last_seen_tables_are_pruned() {
    let mut c = Ctx::new();
    // 20 hours at 10 flows/s, every flow a new pair: 720,000 pairs.
    for i in 0..720_000u32 {
        let src = IpAddr::from([10, 0, (i % 1000 / 250) as u8, (i % 250) as u8]);
        let dst = IpAddr::from([198, 18, (i >> 8) as u8, i as u8]);
        c.push(&Key { src, dst, ..key(f64::from(i) * 0.1, "0.0.0.0", "0.0.0.0") });
    }
    // What the windows need: the pairs of the last two hours (72,000) in each
    // side's pair table, with room to double between prunes; the ports: 1000
    // sources × one port.
    let n = c.c.table_entries();
    assert!((2 * 36_000..=2 * (2 * 72_000 + 2 * 4096) + 1000).contains(&n), "{n} entries");
}

/// Byte and packet counts near `u64::MAX` (a hostile or corrupt record) wrap
/// in the window sums instead of panicking, and the flow counts stay exact.
#[test]
fn hostile_counts_do_not_panic() {
    let mut c = Ctx::new();
    for i in 0..3 {
        c.push(&Key { bytes: u64::MAX, packets: u64::MAX, ..key(f64::from(i), "10.0.0.1", "10.0.0.2") });
    }
    assert_eq!(c.get("src_flows_60s"), 3.0);
    assert_eq!(c.get("dst_flows_1h"), 3.0);
    assert!(c.get("src_bytes_out_60s").is_finite());
}

/// IPv6 and mixed-family pairs are counted like IPv4 ones (they take the
/// tables' unpacked path).
#[test]
fn ipv6_and_mixed_pairs_count_like_ipv4() {
    let mut c = Ctx::new();
    for i in 0..5u16 {
        c.flow(100.0 + f64::from(i), "2001:db8::7", &format!("2001:db8:1::{i}"), 443 + i, 10, false);
    }
    for i in 0..3u16 {
        c.flow(110.0 + f64::from(i), "2001:db8::7", &format!("192.0.2.{i}"), 443, 10, false);
    }
    // Again: nothing new.
    c.flow(115.0, "2001:db8::7", "2001:db8:1::0", 443, 10, false);
    assert_eq!(c.get("src_flows_60s"), 9.0);
    assert_eq!(c.get("src_distinct_dst_60s"), 8.0);
    assert_eq!(c.get("src_distinct_dst_ports_60s"), 5.0);
    assert_eq!(c.get("src_new_dst_60s"), 8.0);
    assert_eq!(c.get("dst_flows_60s"), 2.0);
    assert_eq!(c.get("dst_distinct_src_60s"), 1.0);
    // A v4 source to a v6 destination shares nothing with the v6 source.
    c.flow(116.0, "192.0.2.1", "2001:db8:1::0", 443, 10, false);
    assert_eq!(c.get("src_new_dst_60s"), 1.0);
    assert_eq!(c.get("dst_distinct_src_60s"), 2.0);
    assert_eq!(c.get("dst_flows_60s"), 3.0);
}

/// Seeded random traffic with times that jump back and forth (late records,
/// captures out of order, gaps longer than every window) across several
/// sweeps: no bookkeeping check fires (debug builds assert that a value is
/// only forgotten where it was counted) and every row is consistent.
#[test]
fn random_out_of_order_traffic_keeps_the_books() {
    let mut c = Ctx::new();
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let host = |r: u64| -> IpAddr {
        if r.is_multiple_of(5) {
            format!("2001:db8::{:x}", r % 97).parse().expect("ip")
        } else {
            IpAddr::from([10, 0, 0, (r % 211) as u8])
        }
    };
    let mut t: i64 = 1_000_000_000_000;
    for _ in 0..300_000 {
        let r = next();
        let step = (r >> 10) as i64;
        t += match r % 1000 {
            0 => -(step % 10_800_000_000), // back up to 3 h
            1 => step % 7_200_000_000,     // forward up to 2 h
            _ => step % 50_000,            // 25 ms on average
        };
        let late = if r % 7 == 0 { ((r >> 20) % 600_000_000) as i64 } else { 0 };
        let k = Key {
            t: t - late,
            src: host(r >> 8),
            dst: host(r >> 24),
            dst_port: (r % 11 != 0).then_some(((r >> 40) % 40) as u16),
            bytes: (r >> 30) % 10_000,
            packets: 1 + (r >> 50) % 10,
            rejected: r % 3 == 0,
            icmp: r % 5 == 0,
        };
        c.push(&k);
        for w in ["60s", "1h"] {
            let flows = c.get(&format!("src_flows_{w}"));
            assert!((1.0..400_000.0).contains(&flows), "{w}: {flows}");
            for f in ["src_distinct_dst", "src_distinct_dst_ports", "src_new_dst"] {
                let v = c.get(&format!("{f}_{w}"));
                assert!((0.0..=flows).contains(&v), "{f}_{w} {v} > flows {flows}");
            }
            let dflows = c.get(&format!("dst_flows_{w}"));
            let v = c.get(&format!("dst_distinct_src_{w}"));
            assert!((1.0..=dflows).contains(&v), "dst_distinct_src_{w} {v} vs {dflows}");
        }
        assert!(c.get("src_flows_60s") <= c.get("src_flows_1h"));
    }
}

/// Flows older than a newer flow of one of their hosts by more than the
/// longest window are counted as late; a lag within the window is not.
#[test]
fn flows_far_behind_their_hosts_are_counted_late() {
    let mut c = Ctx::new();
    c.push(&key(10_000.0, "10.0.0.1", "10.0.1.1"));
    // Minutes behind: normal log lag.
    c.push(&key(9_000.0, "10.0.0.1", "10.0.1.2"));
    assert_eq!(c.c.late_flows(), 0);
    // Just over an hour behind the source's newest flow.
    c.push(&key(10_000.0 - 3_601.0, "10.0.0.1", "10.0.1.3"));
    assert_eq!(c.c.late_flows(), 1);
    // Behind the destination's clock only.
    c.push(&key(5_000.0, "10.0.0.9", "10.0.1.1"));
    assert_eq!(c.c.late_flows(), 2);
    // New hosts at an old time are not late: nothing newer was seen of them.
    c.push(&key(1_000.0, "10.0.0.50", "10.0.1.50"));
    assert_eq!(c.c.late_flows(), 2);
}

/// A checkpoint taken mid-stream and restored into a fresh context gives,
/// flow for flow, the features of the context that never stopped — IPv4 and
/// IPv6 hosts, sweeps, a host dropped and back, late records included — and
/// a damaged or foreign checkpoint is refused without touching the state.
#[test]
fn a_restored_checkpoint_continues_exactly() {
    let w = Windows { secs: vec![60, 3600], baseline_secs: 900 };
    let mut flows: Vec<Key> = Vec::new();
    let mut s: u64 = 7;
    for i in 0..150_000u64 {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let h = (s >> 33) as u32;
        let src = if h.is_multiple_of(7) {
            format!("2001:db8::{:x}", h % 300)
        } else {
            format!("10.0.{}.{}", h % 40, (h >> 8) % 250)
        };
        let dst = format!("10.1.{}.{}", (h >> 4) % 20, (h >> 12) % 60);
        // Mostly forward in time over ~5 h, with some records a few minutes late.
        let late = if h.is_multiple_of(50) { 300.0 } else { 0.0 };
        let t = 1_700_000_000.0 + i as f64 * 0.12 - late;
        flows.push(Key {
            dst_port: Some((h % 2000) as u16),
            bytes: u64::from(h % 5000),
            rejected: h.is_multiple_of(11),
            ..key(t, &src, &dst)
        });
    }
    let mut whole = Context::new(w.clone());
    let mut first = Context::new(w.clone());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let cut = 90_000;
    for k in &flows[..cut] {
        whole.update(k, &mut a);
        first.update(k, &mut b);
    }
    let saved = first.checkpoint();
    drop(first);
    let mut resumed = Context::new(w.clone());
    resumed.restore(&saved).expect("restore");
    assert_eq!(resumed.active_hosts(), whole.active_hosts());
    a.clear();
    b.clear();
    for k in &flows[cut..] {
        whole.update(k, &mut a);
        resumed.update(k, &mut b);
    }
    assert_eq!(a.len(), b.len());
    let differ = a.iter().zip(&b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
    assert_eq!(differ, 0, "features after the restore differ in {differ} values");
    assert_eq!(resumed.late_flows(), whole.late_flows());

    // Refused: cut short, a flipped length, other windows. The state stays.
    let before = resumed.active_hosts();
    assert!(resumed.restore(&saved[..saved.len() / 2]).is_err());
    let mut bad = saved.clone();
    bad[40] ^= 0xff;
    assert!(resumed.restore(&bad).expect_err("damaged").contains("checksum"));
    let mut other = Context::new(Windows { secs: vec![60, 7200], baseline_secs: 900 });
    let e = other.restore(&saved).expect_err("other windows");
    assert!(e.contains("windows"), "{e}");
    assert!(resumed.restore(b"not a checkpoint at all").is_err());
    resumed.restore(&saved).expect("the good one still reads");
    assert!(before > 0 && resumed.active_hosts() > 0);
}

#[test]
fn icmp_flows_are_counted_apart_from_the_rest() {
    // 53 DNS flows and 1 ICMP flow to one resolver within a minute: an
    // "ICMP flood" reason once quoted all 54 as ICMP.
    let mut c = Ctx::new();
    for i in 0..53 {
        c.push(&Key { dst_port: Some(53), ..key(500.0 + f64::from(i) * 0.5, "10.0.0.5", "67.207.67.2") });
    }
    c.push(&Key { dst_port: None, icmp: true, ..key(530.0, "10.0.0.5", "67.207.67.2") });
    assert_eq!(c.get("dst_flows_60s"), 54.0);
    assert_eq!(c.get("dst_icmp_flows_60s"), 1.0);
    assert_eq!(c.get("dst_icmp_flows_1h"), 1.0);
    // A minute later the ICMP flow has left the short window.
    c.push(&Key { dst_port: Some(53), ..key(600.0, "10.0.0.5", "67.207.67.2") });
    assert_eq!(c.get("dst_icmp_flows_60s"), 0.0);
    assert_eq!(c.get("dst_icmp_flows_1h"), 1.0);
}
