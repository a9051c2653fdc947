//! AWS VPC Flow Logs: the default v2 layout and any custom layout declared by a
//! header line, every field through version 8, and lines exported from
//! CloudWatch Logs (an ISO-8601 timestamp, then the record).

use crate::error::{Reject, RejectReason};
use crate::parse;
use crate::reader::{FlowReader, LineKind};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::record::{Action, CloudContext, Counts, Direction, FlowRecord};

macro_rules! vpc_fields {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// A field of the VPC Flow Logs record format, in AWS's documented order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum VpcField { $($variant),* }

        impl VpcField {
            /// Every field AWS documents (versions 2–8), in documentation order.
            pub const ALL: &'static [VpcField] = &[$(VpcField::$variant),*];

            /// The field's name as it appears in a header line.
            pub fn name(self) -> &'static str {
                match self { $(VpcField::$variant => $name),* }
            }
        }
    };
}

vpc_fields! {
    Version => "version",
    AccountId => "account-id",
    InterfaceId => "interface-id",
    SrcAddr => "srcaddr",
    DstAddr => "dstaddr",
    SrcPort => "srcport",
    DstPort => "dstport",
    Protocol => "protocol",
    Packets => "packets",
    Bytes => "bytes",
    Start => "start",
    End => "end",
    Action => "action",
    LogStatus => "log-status",
    VpcId => "vpc-id",
    SubnetId => "subnet-id",
    InstanceId => "instance-id",
    TcpFlags => "tcp-flags",
    Type => "type",
    PktSrcAddr => "pkt-srcaddr",
    PktDstAddr => "pkt-dstaddr",
    Region => "region",
    AzId => "az-id",
    SublocationType => "sublocation-type",
    SublocationId => "sublocation-id",
    PktSrcAwsService => "pkt-src-aws-service",
    PktDstAwsService => "pkt-dst-aws-service",
    FlowDirection => "flow-direction",
    TrafficPath => "traffic-path",
    EcsClusterArn => "ecs-cluster-arn",
    EcsClusterName => "ecs-cluster-name",
    EcsContainerInstanceArn => "ecs-container-instance-arn",
    EcsContainerInstanceId => "ecs-container-instance-id",
    EcsContainerId => "ecs-container-id",
    EcsSecondContainerId => "ecs-second-container-id",
    EcsServiceName => "ecs-service-name",
    EcsTaskDefinitionArn => "ecs-task-definition-arn",
    EcsTaskArn => "ecs-task-arn",
    EcsTaskId => "ecs-task-id",
    RejectReason => "reject-reason",
}

/// The default format: the version 2 fields, in order.
pub const DEFAULT_V2: &[VpcField] = &[
    VpcField::Version,
    VpcField::AccountId,
    VpcField::InterfaceId,
    VpcField::SrcAddr,
    VpcField::DstAddr,
    VpcField::SrcPort,
    VpcField::DstPort,
    VpcField::Protocol,
    VpcField::Packets,
    VpcField::Bytes,
    VpcField::Start,
    VpcField::End,
    VpcField::Action,
    VpcField::LogStatus,
];

/// What the extended layout adds to the v2 fields: the context a security
/// analysis uses (VPC/subnet, TCP flags, region, direction).
const EXTENDED_ADDS: &[VpcField] = &[
    VpcField::VpcId,
    VpcField::SubnetId,
    VpcField::InstanceId,
    VpcField::TcpFlags,
    VpcField::Type,
    VpcField::Region,
    VpcField::AzId,
    VpcField::FlowDirection,
];

/// The layout `convert --to vpc` and `generate` write by default: the v2
/// fields, then [`EXTENDED_ADDS`] (a version 5 custom format).
pub fn extended() -> Vec<VpcField> {
    [DEFAULT_V2, EXTENDED_ADDS].concat()
}

impl VpcField {
    /// The flow log version that introduced the field.
    pub fn version(self) -> u8 {
        use VpcField::*;
        match self {
            Version | AccountId | InterfaceId | SrcAddr | DstAddr | SrcPort | DstPort | Protocol | Packets | Bytes
            | Start | End | Action | LogStatus => 2,
            VpcId | SubnetId | InstanceId | TcpFlags | Type | PktSrcAddr | PktDstAddr => 3,
            Region | AzId | SublocationType | SublocationId => 4,
            PktSrcAwsService | PktDstAwsService | FlowDirection | TrafficPath => 5,
            EcsClusterArn
            | EcsClusterName
            | EcsContainerInstanceArn
            | EcsContainerInstanceId
            | EcsContainerId
            | EcsSecondContainerId
            | EcsServiceName
            | EcsTaskDefinitionArn
            | EcsTaskArn
            | EcsTaskId => 7,
            RejectReason => 8,
        }
    }

    /// Looks a header token up: `account-id`, Athena/Parquet's `account_id`, and
    /// the console's `${account-id}` all name the same field.
    pub fn from_name(token: &[u8]) -> Option<Self> {
        let t = token.strip_prefix(b"${").and_then(|t| t.strip_suffix(b"}")).unwrap_or(token);
        if t.len() > 32 {
            return None;
        }
        let mut buf = [0u8; 32];
        for (d, s) in buf.iter_mut().zip(t) {
            *d = if *s == b'_' { b'-' } else { s.to_ascii_lowercase() };
        }
        let t = &buf[..t.len()];
        Self::ALL.iter().copied().find(|f| f.name().as_bytes() == t)
    }
}

/// Most fields a line can have: every documented field plus a CloudWatch prefix.
const MAX_FIELDS: usize = 48;

/// Entries kept in the cloud-context cache before it is cleared: far more than
/// the interfaces one log file covers, small enough to stay in cache.
const CLOUD_CACHE_MAX: usize = 4096;

/// Reader state: the layout in force (default v2 until a header line says
/// otherwise). Cloned per parallel chunk once the header is known.
#[derive(Debug)]
pub struct VpcReader {
    layout: Vec<VpcField>,
    /// Cloud context by the raw bytes of a line's cloud fields. Those fields
    /// describe the interface (account, ENI, VPC, subnet, instance, region, AZ),
    /// so they repeat on almost every line; a hit replaces ~10 string builds
    /// and an allocation by a reference-count increment (measured: 30% of the
    /// inspect profile before, under 3% after).
    cloud_cache: FxHashMap<Box<[u8]>, Arc<CloudContext>>,
    key: Vec<u8>,
}

/// A clone starts with an empty cloud cache: clones parse on other threads, and
/// sharing the cached `Arc`s would make both cores bounce the same reference
/// counts between their caches on every record.
impl Clone for VpcReader {
    fn clone(&self) -> Self {
        Self::with_layout(self.layout.clone())
    }
}

impl Default for VpcReader {
    fn default() -> Self {
        Self::with_layout(DEFAULT_V2.to_vec())
    }
}

impl VpcReader {
    /// A reader for a known layout (files without a header line, e.g. S3 objects
    /// whose format the user gives).
    pub fn with_layout(layout: Vec<VpcField>) -> Self {
        VpcReader { layout, cloud_cache: FxHashMap::default(), key: Vec::new() }
    }

    pub fn layout(&self) -> &[VpcField] {
        &self.layout
    }

    fn header(tokens: &[&[u8]]) -> Result<Option<Vec<VpcField>>, Reject> {
        // A header is recognised by its first token being a field name: record
        // lines start with a number, an ID or `-`, never with a field name.
        // No field name has a digit; nearly every data token does.
        if tokens[0].iter().any(u8::is_ascii_digit) || VpcField::from_name(tokens[0]).is_none() {
            return Ok(None);
        }
        let mut layout = Vec::with_capacity(tokens.len());
        let mut unknown = Vec::new();
        for t in tokens {
            match VpcField::from_name(t) {
                Some(f) if layout.contains(&f) => {
                    return Err(Reject::field(RejectReason::BadSyntax, "header", t, "is named twice"))
                }
                Some(f) => layout.push(f),
                None => unknown.push(crate::error::show(t)),
            }
        }
        if !unknown.is_empty() {
            return Err(Reject::new(
                RejectReason::BadSyntax,
                format!("header names unknown fields: {}", unknown.join(", ")),
            ));
        }
        Ok(Some(layout))
    }
}

/// Splits on runs of spaces or tabs (AWS writes single spaces; exports through
/// other tools sometimes use tabs) into `out` as (start, end) offsets.
///
/// SWAR, eight bytes per step: tokens average ~9 bytes, too short for memchr's
/// SIMD setup to pay (memchr2 measured 17% of the inspect profile) and a byte
/// loop branches on every byte (measured ~35% of `read_line`).
#[inline]
fn tokenize(line: &[u8], out: &mut Tokens) {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const SPACES: u64 = 0x2020_2020_2020_2020;
    const TABS: u64 = 0x0909_0909_0909_0909;
    /// 0x80 in every byte lane of `w` that is zero, exactly (no borrow across lanes).
    #[inline]
    fn zero_lanes(w: u64) -> u64 {
        !(((w & LO7).wrapping_add(LO7)) | w | LO7)
    }
    out.n = 0;
    let mut start = 0usize;
    let mut push = |start: &mut usize, i: usize| {
        if i > *start {
            out.push(*start, i);
        }
        *start = i + 1;
    };
    let mut base = 0;
    let mut chunks = line.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let mut m = zero_lanes(w ^ SPACES) | zero_lanes(w ^ TABS);
        while m != 0 {
            push(&mut start, base + (m.trailing_zeros() / 8) as usize);
            m &= m - 1;
        }
        base += 8;
    }
    for (k, &b) in chunks.remainder().iter().enumerate() {
        if b == b' ' || b == b'\t' {
            push(&mut start, base + k);
        }
    }
    if line.len() > start {
        out.push(start, line.len());
    }
}

/// Token offsets of one line, in a fixed array: a `Vec` push per token measured
/// ~250 instructions per line in callgrind. Tokens past [`MAX_FIELDS`] are
/// counted but not stored, so the caller can reject the line.
struct Tokens {
    at: [(u32, u32); MAX_FIELDS],
    n: usize,
}

impl Tokens {
    #[inline]
    fn push(&mut self, s: usize, e: usize) {
        if let Some(slot) = self.at.get_mut(self.n) {
            *slot = (s as u32, e as u32);
        }
        self.n += 1;
    }
}

/// A CloudWatch Logs export puts the ingestion time first: `2019-08-26T19:48:53.000Z`.
fn looks_like_iso_time(t: &[u8]) -> bool {
    t.len() >= 19 && t[4] == b'-' && t[7] == b'-' && (t[10] == b'T' || t[10] == b't') && t[13] == b':'
}

impl FlowReader for VpcReader {
    fn read_line(&mut self, line: &[u8], out: &mut Vec<FlowRecord>) -> Result<LineKind, Reject> {
        if line.len() > u32::MAX as usize {
            return Err(Reject::new(RejectReason::FieldCount, "line too long"));
        }
        let mut toks = Tokens { at: [(0, 0); MAX_FIELDS], n: 0 };
        tokenize(line, &mut toks);
        if toks.n > MAX_FIELDS {
            return Err(Reject::new(RejectReason::FieldCount, format!("more than {MAX_FIELDS} fields")));
        }
        // Built in place at the end of `out` (moving a finished ~300-byte record
        // in measured ~260 instructions per line); popped again on a reject.
        out.push(FlowRecord::default());
        let r = match out.last_mut() {
            Some(rec) => self.record(line, &toks.at[..toks.n], rec),
            None => Ok(LineKind::Blank),
        };
        if !matches!(r, Ok(LineKind::Record)) {
            out.pop();
        }
        r
    }
}

impl VpcReader {
    fn record(&mut self, line: &[u8], toks: &[(u32, u32)], rec: &mut FlowRecord) -> Result<LineKind, Reject> {
        let tok = |i: usize| -> &[u8] { &line[toks[i].0 as usize..toks[i].1 as usize] };
        if toks.is_empty() {
            return Ok(LineKind::Blank);
        }
        if toks.len() > MAX_FIELDS {
            return Err(Reject::new(RejectReason::FieldCount, format!("more than {MAX_FIELDS} fields")));
        }
        let first = tok(0);
        if !first.iter().any(u8::is_ascii_digit) && VpcField::from_name(first).is_some() {
            let names: Vec<&[u8]> = (0..toks.len()).map(tok).collect();
            if let Some(layout) = Self::header(&names)? {
                self.layout = layout;
                return Ok(LineKind::Header);
            }
        }
        let skip = usize::from(toks.len() == self.layout.len() + 1 && looks_like_iso_time(first));
        let toks = &toks[skip..];
        if toks.len() != self.layout.len() {
            return Err(Reject::new(
                RejectReason::FieldCount,
                format!("expected {} fields, found {}", self.layout.len(), toks.len()),
            ));
        }
        let tok = |i: usize| -> &[u8] { &line[toks[i].0 as usize..toks[i].1 as usize] };
        let (mut packets, mut bytes) = (None, None);
        let mut n_cloud = 0;
        self.key.clear();
        for (i, &field) in self.layout.iter().enumerate() {
            let v = tok(i);
            if v == b"-" {
                continue;
            }
            match field {
                VpcField::LogStatus => {
                    if v == b"NODATA" {
                        return Ok(LineKind::NoData);
                    }
                    if v == b"SKIPDATA" {
                        return Ok(LineKind::SkipData);
                    }
                    if v != b"OK" {
                        return Err(Reject::field(
                            RejectReason::BadValue,
                            "log-status",
                            v,
                            "is not OK/NODATA/SKIPDATA",
                        ));
                    }
                }
                VpcField::SrcAddr => rec.src = Some(parse::address("srcaddr", v)?),
                VpcField::DstAddr => rec.dst = Some(parse::address("dstaddr", v)?),
                VpcField::SrcPort => rec.src_port = Some(parse::port("srcport", v)?),
                VpcField::DstPort => rec.dst_port = Some(parse::port("dstport", v)?),
                VpcField::Protocol => rec.protocol = Some(parse::protocol("protocol", v)?),
                VpcField::Packets => packets = Some(parse::number("packets", v)?),
                VpcField::Bytes => bytes = Some(parse::number("bytes", v)?),
                VpcField::Start => rec.start = Some(epoch("start", v)?),
                VpcField::End => rec.end = Some(epoch("end", v)?),
                VpcField::Action => {
                    rec.action =
                        Some(Action::parse(v).ok_or_else(|| {
                            Reject::field(RejectReason::BadValue, "action", v, "is not ACCEPT/REJECT")
                        })?)
                }
                VpcField::TcpFlags => {
                    rec.tcp_flags =
                        Some(parse::uint(v).and_then(|f| u8::try_from(f).ok()).ok_or_else(|| {
                            Reject::field(RejectReason::BadNumber, "tcp-flags", v, "is not a flag mask")
                        })?)
                }
                VpcField::FlowDirection => {
                    rec.direction = Some(Direction::parse(v).ok_or_else(|| {
                        Reject::field(RejectReason::BadValue, "flow-direction", v, "is not ingress/egress")
                    })?)
                }
                other => {
                    n_cloud += 1;
                    self.key.push(other as u8);
                    self.key.extend_from_slice(v);
                }
            }
        }
        if n_cloud > 0 {
            rec.cloud = Some(match self.cloud_cache.get(self.key.as_slice()) {
                Some(c) => c.clone(),
                None => {
                    for (i, &f) in self.layout.iter().enumerate() {
                        if is_cloud_field(f) && tok(i) != b"-" {
                            set_cloud(rec, f, tok(i))?;
                        }
                    }
                    let c = rec.cloud.take().unwrap_or_default();
                    if self.cloud_cache.len() >= CLOUD_CACHE_MAX {
                        self.cloud_cache.clear();
                    }
                    self.cloud_cache.insert(self.key.as_slice().into(), c.clone());
                    c
                }
            });
        }
        if let (Some(start), Some(end)) = (rec.start, rec.end) {
            if end < start {
                return Err(Reject::new(RejectReason::BadTime, "end is before start"));
            }
        }
        rec.packets = Counts::from_parts(None, None, packets);
        rec.bytes = Counts::from_parts(None, None, bytes);
        rec.derive_duration();
        Ok(LineKind::Record)
    }
}

fn epoch(field: &str, v: &[u8]) -> Result<crate::record::Timestamp, Reject> {
    crate::time::parse_epoch_secs(v)
        .ok_or_else(|| Reject::field(RejectReason::BadTime, field, v, "is not an epoch time"))
}

/// Sets a cloud-context field from its text. Shared with the tabular reader so a
/// CSV written by `convert` reads back with the same context.
pub fn set_cloud(rec: &mut FlowRecord, field: VpcField, v: &[u8]) -> Result<(), Reject> {
    let c = rec.cloud_mut();
    let s = || Some(parse::text(v));
    match field {
        VpcField::Version => {
            c.version = Some(
                parse::uint(v)
                    .and_then(|x| u8::try_from(x).ok())
                    .ok_or_else(|| Reject::field(RejectReason::BadNumber, "version", v, "is not a version"))?,
            )
        }
        VpcField::TrafficPath => {
            c.traffic_path = Some(
                parse::uint(v)
                    .and_then(|x| u8::try_from(x).ok())
                    .ok_or_else(|| Reject::field(RejectReason::BadNumber, "traffic-path", v, "is not a number"))?,
            )
        }
        VpcField::PktSrcAddr => c.pkt_src = Some(parse::address("pkt-srcaddr", v)?),
        VpcField::PktDstAddr => c.pkt_dst = Some(parse::address("pkt-dstaddr", v)?),
        VpcField::AccountId => c.account_id = s(),
        VpcField::InterfaceId => c.interface_id = s(),
        VpcField::VpcId => c.vpc_id = s(),
        VpcField::SubnetId => c.subnet_id = s(),
        VpcField::InstanceId => c.instance_id = s(),
        VpcField::Type => c.traffic_type = s(),
        VpcField::Region => c.region = s(),
        VpcField::AzId => c.az_id = s(),
        // Flow fields proper are set by the callers.
        f if !is_cloud_field(f) => {}
        other => {
            let v = parse::text(v);
            // Kept in field order, so equal contexts compare equal however
            // their fields arrived (a JSON object's keys come in any order).
            match c.other.binary_search_by_key(&(other as u8), |(k, _)| *k as u8) {
                Ok(i) => c.other[i].1 = v,
                Err(i) => c.other.insert(i, (other, v)),
            }
        }
    }
    Ok(())
}
/// The text of a cloud-context field, for writers.
pub fn cloud_text(rec: &FlowRecord, field: VpcField) -> Option<String> {
    let c = rec.cloud.as_deref()?;
    let s = |v: &Option<compact_str::CompactString>| v.as_ref().map(|x| x.to_string());
    match field {
        VpcField::Version => c.version.map(|v| v.to_string()),
        VpcField::TrafficPath => c.traffic_path.map(|v| v.to_string()),
        VpcField::PktSrcAddr => c.pkt_src.map(|v| v.to_string()),
        VpcField::PktDstAddr => c.pkt_dst.map(|v| v.to_string()),
        VpcField::AccountId => s(&c.account_id),
        VpcField::InterfaceId => s(&c.interface_id),
        VpcField::VpcId => s(&c.vpc_id),
        VpcField::SubnetId => s(&c.subnet_id),
        VpcField::InstanceId => s(&c.instance_id),
        VpcField::Type => s(&c.traffic_type),
        VpcField::Region => s(&c.region),
        VpcField::AzId => s(&c.az_id),
        other => c.get_other(other).map(str::to_string),
    }
}

/// Fields that live in the cloud context rather than the flow proper.
pub fn is_cloud_field(f: VpcField) -> bool {
    !matches!(
        f,
        VpcField::SrcAddr
            | VpcField::DstAddr
            | VpcField::SrcPort
            | VpcField::DstPort
            | VpcField::Protocol
            | VpcField::Packets
            | VpcField::Bytes
            | VpcField::Start
            | VpcField::End
            | VpcField::Action
            | VpcField::LogStatus
            | VpcField::TcpFlags
            | VpcField::FlowDirection
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(line: &str) -> Vec<&str> {
        let mut v = Tokens { at: [(0, 0); MAX_FIELDS], n: 0 };
        tokenize(line.as_bytes(), &mut v);
        v.at[..v.n].iter().map(|(s, e)| &line[*s as usize..*e as usize]).collect()
    }

    #[test]
    fn tokenize_matches_split() {
        for line in [
            "",
            " ",
            "a",
            "2 123456789010 eni-1235b8ca123456789 78.24.182.42 158.109.0.1 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
            "  lead\ttab  mixed \t end  ",
            "exactly8",
            "exactly8 exactly8 ",
            "\u{e9}t\u{e9} caf\u{e9}\u{a0}x",
        ] {
            let want: Vec<&str> = line.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
            assert_eq!(toks(line), want, "{line:?}");
        }
    }
}
