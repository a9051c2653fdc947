//! The normalized flow record every later stage consumes.
//!
//! Every field a format may lack is an `Option`: a VPC custom format may carry no
//! ports, UNSW-NB15 carries no addresses or times. Absent is never encoded as zero,
//! because zero bytes and "unknown bytes" mean different things to a detector.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use compact_str::CompactString;

/// Microseconds since the Unix epoch, UTC.
///
/// Zeek and CICFlowMeter carry microseconds; VPC carries seconds. One integer unit
/// keeps arithmetic exact and comparisons cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// Latest time we accept (year 9999): anything beyond is a corrupt value, not a flow.
const MAX_MICROS: i64 = 253_402_300_799_000_000;
/// Earliest time we accept (year 1900): negative epochs only appear in corrupt data,
/// but 1900 keeps room for odd but honest clocks.
const MIN_MICROS: i64 = -2_208_988_800_000_000;

impl Timestamp {
    /// From whole seconds; `None` when out of the years 1900..=9999.
    pub fn from_secs(secs: i64) -> Option<Self> {
        secs.checked_mul(1_000_000).and_then(Self::from_micros)
    }

    /// From microseconds; `None` when out of the years 1900..=9999.
    pub fn from_micros(us: i64) -> Option<Self> {
        (MIN_MICROS..=MAX_MICROS).contains(&us).then_some(Self(us))
    }

    /// From fractional seconds (Zeek `ts`), rounded to the microsecond.
    pub fn from_secs_f64(secs: f64) -> Option<Self> {
        if !secs.is_finite() {
            return None;
        }
        let us = (secs * 1e6).round();
        if us < MIN_MICROS as f64 || us > MAX_MICROS as f64 {
            return None;
        }
        Some(Self(us as i64))
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// Whole seconds, rounded toward negative infinity.
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// RFC 3339 in UTC: `2019-08-26T19:47:55Z`, with a fraction only when there is one.
    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(27);
        self.write_rfc3339(&mut s);
        s
    }

    pub fn write_rfc3339(self, out: &mut String) {
        use std::fmt::Write;
        let secs = self.secs();
        let frac = self.0.rem_euclid(1_000_000);
        let (y, m, d) = crate::time::civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let _ = write!(out, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60);
        if frac != 0 {
            if frac % 1000 == 0 {
                let _ = write!(out, ".{:03}", frac / 1000);
            } else {
                let _ = write!(out, ".{frac:06}");
            }
        }
        out.push('Z');
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Packets or bytes of a flow, per direction where the source has them.
///
/// Zeek (orig/resp) and CICFlowMeter (fwd/bwd) count each direction; VPC counts
/// one direction per record and so only has a total. When both directions are
/// known, `total` is their sum, so consumers can always read `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Source → destination (Zeek orig, CIC fwd).
    pub fwd: Option<u64>,
    /// Destination → source (Zeek resp, CIC bwd).
    pub bwd: Option<u64>,
    pub total: Option<u64>,
}

impl Counts {
    pub fn total(n: u64) -> Self {
        Counts { fwd: None, bwd: None, total: Some(n) }
    }

    /// From whatever parts are known; the total is derived when it is missing
    /// and both directions are present.
    pub fn from_parts(fwd: Option<u64>, bwd: Option<u64>, total: Option<u64>) -> Self {
        let total = total.or(match (fwd, bwd) {
            (Some(f), Some(b)) => Some(f.saturating_add(b)),
            _ => None,
        });
        Counts { fwd, bwd, total }
    }
}

/// What the security group or network ACL decided (VPC `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Accept,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "ACCEPT",
            Action::Reject => "REJECT",
        }
    }

    pub fn parse(s: &[u8]) -> Option<Self> {
        if s.eq_ignore_ascii_case(b"ACCEPT") {
            Some(Action::Accept)
        } else if s.eq_ignore_ascii_case(b"REJECT") {
            Some(Action::Reject)
        } else {
            None
        }
    }
}

/// Direction relative to the observed interface or network (VPC `flow-direction`,
/// Zeek `local_orig`/`local_resp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    pub fn parse(s: &[u8]) -> Option<Self> {
        if s.eq_ignore_ascii_case(b"ingress") {
            Some(Direction::Ingress)
        } else if s.eq_ignore_ascii_case(b"egress") {
            Some(Direction::Egress)
        } else {
            None
        }
    }
}

/// TCP flag bits as in the TCP header (and VPC `tcp-flags`).
pub mod tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// AWS context of a VPC flow log record; most formats have none of it. Identifiers fit `CompactString`'s 24 inline bytes,
/// so building one does not allocate per field; the rarely used fields (ECS,
/// sublocation, AWS service names, reject reason) share one small vector so
/// the common case stays ~250 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloudContext {
    pub version: Option<u8>,
    pub account_id: Option<CompactString>,
    pub interface_id: Option<CompactString>,
    pub vpc_id: Option<CompactString>,
    pub subnet_id: Option<CompactString>,
    pub instance_id: Option<CompactString>,
    pub region: Option<CompactString>,
    pub az_id: Option<CompactString>,
    /// `IPv4`, `IPv6` or `EFA`.
    pub traffic_type: Option<CompactString>,
    pub pkt_src: Option<IpAddr>,
    pub pkt_dst: Option<IpAddr>,
    pub traffic_path: Option<u8>,
    /// Every other VPC field present, by field.
    pub other: Vec<(crate::vpc::VpcField, CompactString)>,
}

impl CloudContext {
    pub fn get_other(&self, f: crate::vpc::VpcField) -> Option<&str> {
        self.other.iter().find(|(k, _)| *k == f).map(|(_, v)| v.as_str())
    }
}

/// What the input says the flow really was (research datasets, generated traffic).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroundTruth {
    pub malicious: bool,
    /// Attack category as the dataset names it (`DoS`, `Portscan`, `C&C`, …);
    /// `None` for benign flows.
    pub category: Option<CompactString>,
}

/// A dataset's own numeric columns, kept by name (CIC's CICFlowMeter features,
/// UNSW's 40 columns). Names are shared by every record of one file, so a record
/// only owns its values. Missing and non-finite cells are kept as they are
/// (`NaN`, `inf`): deciding what they mean is the preprocessing's job.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    pub names: Option<Arc<[CompactString]>>,
    pub values: Vec<f64>,
}

impl Extra {
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        let names = self.names.as_ref()?;
        let i = names.iter().position(|n| n == name)?;
        self.values.get(i).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.names.iter().flat_map(|n| n.iter()).map(|n| n.as_str()).zip(self.values.iter().copied())
    }
}

impl PartialEq for Extra {
    fn eq(&self, other: &Self) -> bool {
        // NaN cells must compare equal for round-trip tests: compare bit patterns.
        self.values.len() == other.values.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|((an, av), (bn, bv))| an == bn && (av.to_bits() == bv.to_bits() || (av.is_nan() && bv.is_nan())))
    }
}

/// One network flow, normalized from any input format.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlowRecord {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// Microseconds; equals `end - start` when both are known, and is set on its own
    /// by formats that only carry a duration (UNSW-NB15).
    pub duration_us: Option<u64>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// IANA protocol number (6 TCP, 17 UDP, 1 ICMP, …).
    pub protocol: Option<u8>,
    pub packets: Counts,
    pub bytes: Counts,
    pub action: Option<Action>,
    /// Union of TCP flag bits seen over the flow (see [`tcp`]).
    pub tcp_flags: Option<u8>,
    /// Connection state as the source names it (Zeek `conn_state`, UNSW `state`).
    pub state: Option<CompactString>,
    pub direction: Option<Direction>,
    /// Application service (Zeek `service`, UNSW `service`).
    pub service: Option<CompactString>,
    /// Shared: records from one interface carry identical context, so readers
    /// hand out clones of one `Arc` instead of building it per record.
    pub cloud: Option<Arc<CloudContext>>,
    pub truth: Option<GroundTruth>,
    pub extra: Extra,
}

impl FlowRecord {
    /// Sets `duration_us` from `start`/`end` when both are known and ordered.
    pub fn derive_duration(&mut self) {
        if let (Some(s), Some(e)) = (self.start, self.end) {
            if e >= s {
                self.duration_us = Some((e.0 - s.0) as u64);
            }
        }
    }

    /// Sets `end` from `start + duration` when it is missing.
    pub fn derive_end(&mut self) {
        if let (Some(s), None, Some(d)) = (self.start, self.end, self.duration_us) {
            self.end = i64::try_from(d).ok().and_then(|d| s.0.checked_add(d)).and_then(Timestamp::from_micros);
        }
    }

    pub fn cloud_mut(&mut self) -> &mut CloudContext {
        Arc::make_mut(self.cloud.get_or_insert_with(Default::default))
    }
}

/// Short IANA keyword for the common protocol numbers, for tables and CSV output.
pub fn protocol_name(p: u8) -> Option<&'static str> {
    crate::proto::name(p)
}

/// Protocol number for an IANA keyword (`tcp`, `gre`, `icmpv6`, …), case-insensitive.
pub fn protocol_number(name: &str) -> Option<u8> {
    crate::proto::number(name.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn record_stays_small() {
        // Records are moved millions of times; keep an eye on their size.
        let n = std::mem::size_of::<super::FlowRecord>();
        assert!(n <= 320, "FlowRecord is {n} bytes");
    }
}
