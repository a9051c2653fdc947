//! What a column means (`Role`) and how a row of cells becomes a [`FlowRecord`]
//! (`RowBuilder`). Shared by the CSV/TSV readers and the JSON reader, so every
//! format that names its fields goes through one set of conversions.

use crate::error::{Reject, RejectReason};
use crate::parse;
use crate::record::{tcp, Action, Counts, Direction, FlowRecord, Timestamp};
use crate::vpc::{self, VpcField};

/// Which direction a count belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Fwd,
    Bwd,
    Total,
}

/// How a time column is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKind {
    /// Seconds since the epoch, maybe fractional (Zeek `ts`).
    EpochSecs,
    /// Any layout `time::parse_any` knows (ISO 8601, CIC's `7/7/2017 3:30`, epoch).
    Any,
}

/// Unit of a duration column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurUnit {
    Secs,
    Millis,
    Micros,
}

/// What one input column means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ignore,
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    /// Number or keyword; an unknown keyword rejects the line.
    Protocol,
    /// Number or keyword; an unknown keyword leaves the protocol absent
    /// (UNSW-NB15 spells pseudo-protocols such as `unas` and `any`).
    ProtocolLenient,
    Start(TimeKind),
    End(TimeKind),
    Duration(DurUnit),
    Packets(Dir),
    Bytes(Dir),
    Action,
    /// Numeric TCP flag mask.
    TcpFlags,
    /// Zeek `history` letters, turned into flag bits for TCP flows.
    ZeekHistory,
    /// A per-flag count column (CIC `SYN Flag Count`): sets the bit when > 0 and
    /// keeps the count as the given extra column.
    FlagCount(u8, u16),
    State,
    Service,
    Direction,
    /// Zeek `local_orig` / `local_resp` (T/F), combined into a direction.
    LocalOrig,
    LocalResp,
    Label,
    Category,
    /// The original IoT-23 labeled conn.log joins `tunnel_parents label
    /// detailed-label` into one whitespace-separated column.
    ZeekLabelTriple,
    /// A dataset's own numeric column, by index into the file's extra names.
    Extra(u16),
    Cloud(VpcField),
}

impl Role {
    /// Roles by the names flowhound's own CSV/JSON output uses; also the keys of
    /// a user's column mapping.
    pub fn by_key(key: &str) -> Option<Role> {
        Some(match key {
            "start" => Role::Start(TimeKind::Any),
            "end" => Role::End(TimeKind::Any),
            "duration" => Role::Duration(DurUnit::Secs),
            "duration_ms" => Role::Duration(DurUnit::Millis),
            "duration_us" => Role::Duration(DurUnit::Micros),
            "src" => Role::SrcAddr,
            "dst" => Role::DstAddr,
            "src_port" => Role::SrcPort,
            "dst_port" => Role::DstPort,
            "protocol" => Role::Protocol,
            "packets" => Role::Packets(Dir::Total),
            "packets_fwd" => Role::Packets(Dir::Fwd),
            "packets_bwd" => Role::Packets(Dir::Bwd),
            "bytes" => Role::Bytes(Dir::Total),
            "bytes_fwd" => Role::Bytes(Dir::Fwd),
            "bytes_bwd" => Role::Bytes(Dir::Bwd),
            "action" => Role::Action,
            "tcp_flags" => Role::TcpFlags,
            "state" => Role::State,
            "direction" => Role::Direction,
            "service" => Role::Service,
            "label" | "malicious" => Role::Label,
            "category" => Role::Category,
            _ => {
                let f = VpcField::from_name(key.as_bytes())?;
                if !vpc::is_cloud_field(f) {
                    return None;
                }
                Role::Cloud(f)
            }
        })
    }
}

/// Collects one row's cells, then builds the record. Borrowing the cells until
/// `finish` lets label and category be judged together.
#[derive(Debug, Default)]
pub struct RowBuilder<'a> {
    pub rec: FlowRecord,
    packets: [Option<u64>; 3],
    bytes: [Option<u64>; 3],
    history: Option<u8>,
    flag_bits: Option<u8>,
    local_orig: Option<bool>,
    local_resp: Option<bool>,
    label: Option<&'a [u8]>,
    category: Option<&'a [u8]>,
    /// Extra label values meaning "benign" (a user mapping's `benign`).
    pub benign: &'a [String],
}

/// Cells that mean "no value": empty, Zeek's unset `-` and empty-set `(empty)`.
#[inline]
pub fn is_null(v: &[u8]) -> bool {
    v.is_empty() || v == b"-" || v == b"(empty)"
}

fn dir_index(d: Dir) -> usize {
    match d {
        Dir::Fwd => 0,
        Dir::Bwd => 1,
        Dir::Total => 2,
    }
}

fn zeek_bool(name: &str, v: &[u8]) -> Result<bool, Reject> {
    match v {
        b"T" | b"true" | b"1" => Ok(true),
        b"F" | b"false" | b"0" => Ok(false),
        _ => Err(Reject::field(RejectReason::BadValue, name, v, "is not T/F")),
    }
}

impl<'a> RowBuilder<'a> {
    /// Applies one cell. `name` is the column's name, for messages.
    pub fn set(&mut self, role: Role, name: &str, v: &'a [u8]) -> Result<(), Reject> {
        match role {
            Role::Label => {
                self.label = Some(v);
                return Ok(());
            }
            Role::Category => {
                self.category = Some(v);
                return Ok(());
            }
            Role::ZeekLabelTriple => {
                let mut parts = v.split(|b| b.is_ascii_whitespace()).filter(|p| !p.is_empty());
                let _tunnel_parents = parts.next();
                self.label = parts.next();
                self.category = parts.next();
                return Ok(());
            }
            Role::Extra(i) => {
                let x = if is_null(v) {
                    f64::NAN
                } else {
                    parse::float(v).ok_or_else(|| Reject::field(RejectReason::BadNumber, name, v, "is not a number"))?
                };
                self.rec.extra.values[usize::from(i)] = x;
                return Ok(());
            }
            _ => {}
        }
        if is_null(v) {
            return Ok(());
        }
        let r = &mut self.rec;
        match role {
            Role::Ignore | Role::Label | Role::Category | Role::ZeekLabelTriple | Role::Extra(_) => {}
            Role::SrcAddr => r.src = Some(parse::address(name, v)?),
            Role::DstAddr => r.dst = Some(parse::address(name, v)?),
            Role::SrcPort => r.src_port = Some(parse::port(name, v)?),
            Role::DstPort => r.dst_port = Some(parse::port(name, v)?),
            Role::Protocol => r.protocol = Some(parse::protocol(name, v)?),
            Role::ProtocolLenient => {
                r.protocol = parse::uint(v).and_then(|p| u8::try_from(p).ok()).or_else(|| crate::proto::number(v))
            }
            Role::Start(k) => r.start = Some(time(name, v, k)?),
            Role::End(k) => r.end = Some(time(name, v, k)?),
            Role::Duration(unit) => r.duration_us = Some(duration(name, v, unit)?),
            Role::Packets(d) => self.packets[dir_index(d)] = Some(parse::number(name, v)?),
            Role::Bytes(d) => self.bytes[dir_index(d)] = Some(parse::number(name, v)?),
            Role::Action => {
                r.action = Some(
                    Action::parse(v)
                        .ok_or_else(|| Reject::field(RejectReason::BadValue, name, v, "is not ACCEPT/REJECT"))?,
                )
            }
            Role::TcpFlags => {
                r.tcp_flags = Some(
                    parse::uint(v)
                        .and_then(|f| u8::try_from(f).ok())
                        .ok_or_else(|| Reject::field(RejectReason::BadNumber, name, v, "is not a flag mask"))?,
                )
            }
            Role::ZeekHistory => self.history = Some(history_flags(v)),
            Role::FlagCount(bit, extra) => {
                let n = parse::float(v)
                    .filter(|n| *n >= 0.0)
                    .ok_or_else(|| Reject::field(RejectReason::BadNumber, name, v, "is not a count"))?;
                if n > 0.0 {
                    *self.flag_bits.get_or_insert(0) |= bit;
                } else {
                    self.flag_bits.get_or_insert(0);
                }
                r.extra.values[usize::from(extra)] = n;
            }
            Role::State => r.state = Some(parse::text(v)),
            Role::Service => r.service = Some(parse::text(v)),
            Role::Direction => {
                r.direction = Some(
                    Direction::parse(v)
                        .ok_or_else(|| Reject::field(RejectReason::BadValue, name, v, "is not ingress/egress"))?,
                )
            }
            Role::LocalOrig => self.local_orig = Some(zeek_bool(name, v)?),
            Role::LocalResp => self.local_resp = Some(zeek_bool(name, v)?),
            Role::Cloud(f) => vpc::set_cloud(r, f, v)?,
        }
        Ok(())
    }

    /// Completes the record: totals, flags, direction, truth, consistent times.
    pub fn finish(mut self) -> Result<FlowRecord, Reject> {
        let [pf, pb, pt] = self.packets;
        let [bf, bb, bt] = self.bytes;
        self.rec.packets = Counts::from_parts(pf, pb, pt);
        self.rec.bytes = Counts::from_parts(bf, bb, bt);
        if self.rec.tcp_flags.is_none() {
            self.rec.tcp_flags = match (self.history, self.rec.protocol) {
                // History letters describe TCP; for UDP/ICMP Zeek still writes `Dd`.
                (Some(h), Some(6) | None) => Some(h),
                _ => self.flag_bits,
            };
        }
        if self.rec.direction.is_none() {
            self.rec.direction = match (self.local_orig, self.local_resp) {
                (Some(true), Some(false)) => Some(Direction::Egress),
                (Some(false), Some(true)) => Some(Direction::Ingress),
                _ => None,
            };
        }
        if self.label.is_some() || self.category.is_some() {
            let user_benign = self
                .label
                .is_some_and(|l| self.benign.iter().any(|b| b.as_bytes().eq_ignore_ascii_case(l.trim_ascii())));
            self.rec.truth = if user_benign {
                Some(crate::record::GroundTruth { malicious: false, category: None })
            } else {
                parse::truth(self.label, self.category)?
            };
        }
        let r = &mut self.rec;
        match (r.start, r.end, r.duration_us) {
            (Some(s), Some(e), _) if e < s => {
                return Err(Reject::new(RejectReason::BadTime, "end is before start"));
            }
            (Some(_), Some(_), None) => r.derive_duration(),
            (Some(_), None, Some(_)) => r.derive_end(),
            (None, Some(e), Some(d)) => {
                r.start = i64::try_from(d).ok().and_then(|d| e.0.checked_sub(d)).and_then(Timestamp::from_micros)
            }
            _ => {}
        }
        Ok(self.rec)
    }
}

fn time(name: &str, v: &[u8], kind: TimeKind) -> Result<Timestamp, Reject> {
    let t = match kind {
        TimeKind::EpochSecs => crate::time::parse_epoch_secs(v),
        TimeKind::Any => crate::time::parse_any(v),
    };
    t.ok_or_else(|| Reject::field(RejectReason::BadTime, name, v, "is not a time"))
}

fn duration(name: &str, v: &[u8], unit: DurUnit) -> Result<u64, Reject> {
    let bad = || Reject::field(RejectReason::BadTime, name, v, "is not a duration");
    let us = match unit {
        // Seconds parsed as integer + fraction: exact to the microsecond.
        DurUnit::Secs => crate::time::parse_epoch_secs(v).map(|t| t.micros()),
        DurUnit::Millis => parse::float(v).filter(|f| f.is_finite()).map(|f| (f * 1000.0).round() as i64),
        DurUnit::Micros => parse::float(v).filter(|f| f.is_finite()).map(|f| f.round() as i64),
    };
    us.filter(|us| *us >= 0).map(|us| us as u64).ok_or_else(bad)
}

/// Zeek history letters to TCP flag bits. Upper case is the originator, lower
/// case the responder; both directions fold into one mask.
fn history_flags(h: &[u8]) -> u8 {
    let mut f = 0;
    for b in h {
        f |= match b.to_ascii_uppercase() {
            b'S' => tcp::SYN,
            b'H' => tcp::SYN | tcp::ACK,
            b'A' | b'D' => tcp::ACK,
            b'F' => tcp::FIN,
            b'R' => tcp::RST,
            _ => 0,
        };
    }
    f
}
