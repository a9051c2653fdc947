//! Features of one flow on its own.

use flowhound_flow::net::Networks;
use flowhound_flow::record::tcp;
use flowhound_flow::{Action, Direction, FlowRecord};

use crate::schema::{Feature, Kind};

/// Names and kinds of the per-flow features, in row order.
pub fn features(extras: &[String]) -> Vec<Feature> {
    use Kind::*;
    let mut v = vec![
        Feature::new("duration_s", Count),
        Feature::new("bytes", Count),
        Feature::new("packets", Count),
        Feature::new("bytes_fwd", Count),
        Feature::new("bytes_bwd", Count),
        Feature::new("packets_fwd", Count),
        Feature::new("packets_bwd", Count),
        Feature::new("bytes_per_s", Count),
        Feature::new("packets_per_s", Count),
        Feature::new("bytes_per_packet", Count),
        Feature::new("dport", Numeric),
        Feature::new("dst_port_well_known", Binary),
        Feature::new("dst_port_registered", Binary),
        Feature::new("dst_port_ephemeral", Binary),
        Feature::new("src_port_well_known", Binary),
        Feature::new("proto", Categorical),
        Feature::new("rejected", Binary),
        Feature::new("flag_syn", Binary),
        Feature::new("flag_ack", Binary),
        Feature::new("flag_fin", Binary),
        Feature::new("flag_rst", Binary),
        Feature::new("flag_psh", Binary),
        Feature::new("flag_urg", Binary),
        Feature::new("egress", Binary),
        Feature::new("src_internal", Binary),
        Feature::new("dst_internal", Binary),
        Feature::new("hour_sin", Numeric),
        Feature::new("hour_cos", Numeric),
        Feature::new("state", Categorical),
        Feature::new("service", Categorical),
    ];
    v.extend(extras.iter().map(|e| Feature::new(format!("x_{e}"), Numeric)));
    v
}

fn opt(v: Option<u64>) -> f32 {
    v.map_or(f32::NAN, |x| x as f32)
}

fn bit(v: Option<bool>) -> f32 {
    v.map_or(f32::NAN, |b| if b { 1.0 } else { 0.0 })
}

/// A stable code for a category string, exact in an f32 (24 bits). FNV-1a:
/// codes must not change between runs or builds, which rules out std's hasher.
pub fn category_code(s: &str) -> f32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x00ff_ffff) as f32
}

/// A categorical feature's value as a person reads it, for explanations:
/// the protocol's name for `proto`; for `state` and `service` (whose values
/// are [`category_code`]s) the name training saw for the code, else the
/// record's own text. `None` for other features, a missing value, or a code
/// with neither.
pub fn category_label<'a>(
    feature: &str,
    value: f32,
    names: &'a std::collections::BTreeMap<u32, String>,
    record: Option<&'a FlowRecord>,
) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    if value.is_nan() {
        return None;
    }
    let text = |r: &'a FlowRecord| match feature {
        "state" => r.state.as_deref(),
        _ => r.service.as_deref(),
    };
    match feature {
        "proto" => {
            // Protocol numbers are exact small integers in the row.
            let p = value as u8;
            Some(flowhound_flow::record::protocol_name(p).map_or_else(|| Cow::Owned(p.to_string()), Cow::Borrowed))
        }
        "state" | "service" => names
            .get(&(value as u32))
            .map(|n| Cow::Borrowed(n.as_str()))
            .or_else(|| record.and_then(text).filter(|t| category_code(t) == value).map(Cow::Borrowed)),
        _ => None,
    }
}

/// Hour of day on the unit circle, to the minute, from a table: two trig
/// calls per flow measured 3% of extraction.
fn hour_angle(secs: i64) -> (f32, f32) {
    static TABLE: std::sync::OnceLock<Vec<(f32, f32)>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..1440)
            .map(|m| {
                let (s, c) = (f64::from(m) / 1440.0 * std::f64::consts::TAU).sin_cos();
                (s as f32, c as f32)
            })
            .collect()
    });
    table[(secs.rem_euclid(86_400) / 60) as usize]
}

/// Appends the per-flow features of `r` to `out`.
pub fn extract(r: &FlowRecord, nets: &Networks, extras: &[String], out: &mut Vec<f32>) {
    let secs = r.duration_us.map(|d| d as f64 / 1e6);
    let bytes = r.bytes.total;
    let packets = r.packets.total;
    // Rates over at least one millisecond: sub-millisecond flows would give
    // rates that say more about clock resolution than about the flow.
    let rate = |v: Option<u64>| -> f32 {
        match (v, secs) {
            (Some(v), Some(s)) => (v as f64 / s.max(1e-3)) as f32,
            _ => f32::NAN,
        }
    };
    out.push(secs.map_or(f32::NAN, |s| s as f32));
    out.push(opt(bytes));
    out.push(opt(packets));
    out.push(opt(r.bytes.fwd));
    out.push(opt(r.bytes.bwd));
    out.push(opt(r.packets.fwd));
    out.push(opt(r.packets.bwd));
    out.push(rate(bytes));
    out.push(rate(packets));
    out.push(match (bytes, packets) {
        (Some(b), Some(p)) if p > 0 => b as f32 / p as f32,
        _ => f32::NAN,
    });
    let dp = r.dst_port;
    out.push(dp.map_or(f32::NAN, f32::from));
    out.push(bit(dp.map(|p| p < 1024)));
    out.push(bit(dp.map(|p| (1024..49152).contains(&p))));
    out.push(bit(dp.map(|p| p >= 49152)));
    out.push(bit(r.src_port.map(|p| p < 1024)));
    out.push(r.protocol.map_or(f32::NAN, f32::from));
    out.push(bit(r.action.map(|a| a == Action::Reject)));
    let f = |mask: u8| bit(r.tcp_flags.map(|t| t & mask != 0));
    for mask in [tcp::SYN, tcp::ACK, tcp::FIN, tcp::RST, tcp::PSH, tcp::URG] {
        out.push(f(mask));
    }
    out.push(bit(r.direction.map(|d| d == Direction::Egress)));
    out.push(bit(r.src.map(|a| nets.is_internal(a))));
    out.push(bit(r.dst.map(|a| nets.is_internal(a))));
    match r.start {
        Some(t) => {
            let (sin, cos) = hour_angle(t.secs());
            out.push(sin);
            out.push(cos);
        }
        None => out.extend([f32::NAN, f32::NAN]),
    }
    out.push(r.state.as_deref().map_or(f32::NAN, category_code));
    out.push(r.service.as_deref().map_or(f32::NAN, category_code));
    for e in extras {
        out.push(r.extra.get(e).map_or(f32::NAN, |v| v as f32));
    }
}
