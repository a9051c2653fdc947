//! What is in this traffic (`flowhound inspect`): counts, rejects, time
//! span and order, protocols, top talkers and ports, accept/reject, internal
//! vs external, labels — as tables or JSON.

use std::fmt::Write as _;

use flowhound_flow::net::Networks;
use flowhound_flow::summary::Summary;
use flowhound_flow::RejectReason;
use flowhound_source::ScanReport;
use serde_json::{json, Map, Value};

thread_local! {
    static PARTIAL: std::cell::RefCell<Summary> = std::cell::RefCell::new(Summary::default());
}

/// Summarizes the inputs. Each thread adds into its own summary, merged once
/// at the end: a summary per chunk meant ~800 hash-map merges per million
/// records, each rebuilding its maps from empty. Sums and maxima commute, so the
/// result does not depend on which thread saw which chunk.
pub fn summarize(
    inputs: &[flowhound_source::Input],
    opts: &flowhound_source::ScanOptions,
    events: &mut dyn flowhound_source::ScanEvents,
    nets: &Networks,
) -> (Summary, ScanReport, Order) {
    let take = || PARTIAL.with(|p| std::mem::take(&mut *p.borrow_mut()));
    // Leftovers of an earlier scan in this process must not leak into this one.
    rayon::broadcast(|_| take());
    take();
    let mut order = Order::default();
    let report = flowhound_source::scan(
        inputs,
        opts,
        events,
        |recs| {
            PARTIAL.with(|p| {
                let mut s = p.borrow_mut();
                for r in recs {
                    s.add(r, nets);
                }
            });
            // Start times go to the reduce step, which sees chunks in input order.
            recs.iter().filter_map(|r| r.start.map(|t| t.micros())).collect::<Vec<i64>>()
        },
        |starts| order.add(&starts),
    );
    let mut total = take();
    for part in rayon::broadcast(|_| take()) {
        total.merge(part);
    }
    (total, report, order)
}

/// How far the input is from time order: records that start more than
/// [`Order::LAG_SECS`] before the newest start seen before them. Time windows
/// (`features`, `detect`) mix periods on such input; `--sort-time` fixes it.
#[derive(Debug, Default)]
pub struct Order {
    newest: Option<i64>,
    pub timed: u64,
    pub behind: u64,
}

impl Order {
    /// One hour: the default longest window.
    pub const LAG_SECS: i64 = 3600;

    fn add(&mut self, starts: &[i64]) {
        for &t in starts {
            let newest = self.newest.map_or(t, |n| n.max(t));
            self.behind += u64::from(newest - t > Self::LAG_SECS * 1_000_000);
            self.timed += 1;
            self.newest = Some(newest);
        }
    }

    fn share(&self) -> f64 {
        if self.timed == 0 {
            0.0
        } else {
            self.behind as f64 / self.timed as f64
        }
    }
}

fn proto_label(p: Option<u8>) -> String {
    match p {
        Some(n) => flowhound_flow::record::protocol_name(n).map_or_else(|| n.to_string(), str::to_string),
        None => "unknown".into(),
    }
}

pub fn to_json(s: &Summary, r: &ScanReport, order: &Order, top: usize) -> Value {
    let talkers = |v: Vec<(std::net::IpAddr, flowhound_flow::summary::Talker)>| -> Value {
        v.into_iter().map(|(a, t)| json!({"address": a.to_string(), "bytes": t.bytes, "flows": t.flows})).collect()
    };
    let protocols: Map<String, Value> =
        s.protocols_sorted().into_iter().map(|(p, c)| (proto_label(p), json!(c))).collect();
    let by_reason: Map<String, Value> =
        r.rejects_by_reason.iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect();
    let decided = s.accepted + s.rejected_by_policy;
    let mut out = json!({
        "records": s.records,
        "rejected": r.rejected,
        "rejects_by_reason": by_reason,
        "no_data": r.no_data + r.skip_data,
        "first_seen": s.first_seen.map(|t| t.to_rfc3339()),
        "last_seen": s.last_seen.map(|t| t.to_rfc3339()),
        "time_order": {"timed_records": order.timed, "behind_1h": order.behind, "behind_share": order.share()},
        "bytes": s.bytes,
        "packets": s.packets,
        "protocols": protocols,
        "top_talkers": {"by_bytes": talkers(s.top_talkers_by_bytes(top)), "by_flows": talkers(s.top_talkers_by_flows(top))},
        "top_dst_ports": s.top_dst_ports(top).into_iter().map(|(p, c)| json!({"port": p, "flows": c})).collect::<Vec<_>>(),
        "actions": {
            "accept": s.accepted,
            "reject": s.rejected_by_policy,
            "reject_ratio": if decided > 0 { s.rejected_by_policy as f64 / decided as f64 } else { 0.0 },
        },
        "traffic": {
            "internal_to_internal": s.locality.internal_to_internal,
            "internal_to_external": s.locality.internal_to_external,
            "external_to_internal": s.locality.external_to_internal,
            "external_to_external": s.locality.external_to_external,
            "unknown": s.locality.unknown,
        },
        "files": r.files.iter().map(|f| json!({
            "name": f.name, "format": f.format, "lines": f.lines, "records": f.records, "rejected": f.rejected,
            "no_data": f.no_data, "skip_data": f.skip_data, "error": f.error,
        })).collect::<Vec<_>>(),
    });
    if s.benign + s.malicious > 0 {
        out["labels"] = json!({"benign": s.benign, "malicious": s.malicious, "categories": s.categories});
    }
    out
}

fn n(v: u64) -> String {
    // Thousands separators: these tables are read by people.
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn bytes(v: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut x = v as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

pub fn table(s: &Summary, r: &ScanReport, order: &Order, top: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Inputs");
    for f in &r.files {
        let _ = writeln!(
            o,
            "  {}  [{}]  {} records, {} rejected{}{}",
            f.name,
            f.format.unwrap_or("format unknown"),
            n(f.records),
            n(f.rejected),
            if f.no_data + f.skip_data > 0 {
                format!(", {} NODATA/SKIPDATA", n(f.no_data + f.skip_data))
            } else {
                String::new()
            },
            f.error.as_ref().map_or(String::new(), |e| format!("  ERROR: {e}"))
        );
    }
    let _ = writeln!(o, "\nRecords      {}", n(s.records));
    let _ = writeln!(o, "Rejected     {}", n(r.rejected));
    for reason in RejectReason::ALL {
        if let Some(c) = r.rejects_by_reason.get(&reason) {
            let _ = writeln!(o, "  {:<12} {}", reason.as_str(), n(*c));
        }
    }
    let _ = writeln!(o, "NODATA/SKIP  {}", n(r.no_data + r.skip_data));
    if let (Some(f), Some(l)) = (s.first_seen, s.last_seen) {
        let _ = writeln!(o, "Time span    {f} .. {l}  ({:.1} h)", (l.0 - f.0) as f64 / 3.6e9);
    }
    if order.timed > 0 {
        // A count, not a verdict: what matters to the time windows is lag per
        // host, which features/train/detect measure and warn about.
        let _ = writeln!(
            o,
            "Time order   {} records ({:.1} %) start over 1 h before an earlier one",
            n(order.behind),
            100.0 * order.share()
        );
    }
    let _ = writeln!(o, "Volume       {} in {} packets", bytes(s.bytes), n(s.packets));
    let decided = s.accepted + s.rejected_by_policy;
    if decided > 0 {
        let _ = writeln!(
            o,
            "Actions      ACCEPT {} ({})  REJECT {} ({})",
            n(s.accepted),
            pct(s.accepted, decided),
            n(s.rejected_by_policy),
            pct(s.rejected_by_policy, decided)
        );
    }
    let l = &s.locality;
    let _ = writeln!(
        o,
        "Traffic      int→int {}  int→ext {}  ext→int {}  ext→ext {}  unknown {}",
        n(l.internal_to_internal),
        n(l.internal_to_external),
        n(l.external_to_internal),
        n(l.external_to_external),
        n(l.unknown)
    );
    let _ = writeln!(o, "\nProtocols");
    for (p, c) in s.protocols_sorted().into_iter().take(top) {
        let _ = writeln!(o, "  {:<10} {:>12}  {:>6}", proto_label(p), n(c), pct(c, s.records));
    }
    let _ = writeln!(o, "\nTop talkers by bytes                      Top talkers by flows");
    let by_b = s.top_talkers_by_bytes(top);
    let by_f = s.top_talkers_by_flows(top);
    for i in 0..by_b.len().max(by_f.len()) {
        let left = by_b.get(i).map_or(String::new(), |(a, t)| format!("{a:<39} {:>10}", bytes(t.bytes)));
        let right = by_f.get(i).map_or(String::new(), |(a, t)| format!("{a:<39} {:>10}", n(t.flows)));
        let _ = writeln!(o, "  {left:<52} {right}");
    }
    let _ = writeln!(o, "\nTop destination ports");
    for (p, c) in s.top_dst_ports(top) {
        let _ = writeln!(o, "  {p:<7} {:>12}  {:>6}", n(c), pct(c, s.records));
    }
    if s.benign + s.malicious > 0 {
        let _ = writeln!(
            o,
            "\nLabels       benign {}  malicious {} ({})",
            n(s.benign),
            n(s.malicious),
            pct(s.malicious, s.records)
        );
        let mut cats: Vec<_> = s.categories.iter().collect();
        cats.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (c, k) in cats {
            let _ = writeln!(o, "  {:<28} {:>10}", c.as_str(), n(*k));
        }
    }
    o
}
