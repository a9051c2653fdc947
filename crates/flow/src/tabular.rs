//! Delimited text with named columns: Zeek conn.log (TSV with `#` headers),
//! CSVs with Zeek field names (IoT-23), UNSW-NB15, CIC-IDS2017 (the original
//! 2017 layout and the improved relabelling), flowhound's own CSV, and any other
//! CSV through a user's column mapping.

use std::collections::BTreeMap;
use std::sync::Arc;

use compact_str::CompactString;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;

use crate::error::{FlowError, Reject, RejectReason};
use crate::parse::Splitter;
use crate::reader::{FlowReader, LineKind};
use crate::record::{tcp, FlowRecord};
use crate::row::{Dir, DurUnit, Role, RowBuilder, TimeKind};

/// Which vocabulary of column names a file uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Dialect {
    /// Zeek conn.log as TSV with `#separator`/`#fields` headers.
    ZeekTsv,
    /// A CSV with Zeek field names (the IoT-23 labeled exports).
    ZeekCsv,
    /// UNSW-NB15 partition files.
    Unsw,
    /// CICFlowMeter columns: CIC-IDS2017, original or improved.
    Cic,
    /// flowhound's own CSV (`convert --to csv`).
    Flowhound,
    /// Any CSV, through a column mapping.
    Mapped(Arc<Mapping>),
}

/// A user's column mapping for a CSV flowhound has no built-in knowledge of.
///
/// ```toml
/// delimiter = ";"          # optional, default ","
/// extra = ["rtt", "ttl"]   # dataset columns to keep as numeric features
/// [columns]                # flowhound field = the file's column name
/// src = "source_ip"
/// dst = "dest_ip"
/// dst_port = "dport"
/// start = "ts"             # epoch s/ms/us or ISO 8601, detected per cell
/// duration_ms = "dur"      # or duration (s), duration_us
/// bytes = "octets"
/// label = "is_attack"
/// ```
/// and, when the label column speaks its own words, `benign = ["clean"]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    pub delimiter: Option<String>,
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    #[serde(default)]
    pub extra: Vec<String>,
    /// Label values that mean "benign" in this file, besides the built-in
    /// `0/false/no/benign/normal/ok/legitimate/none`.
    #[serde(default)]
    pub benign: Vec<String>,
    /// Whether the first line names the columns. Default: yes, unless every
    /// column is mapped by position (`#3`: the third column), which is how
    /// a file without a header (NSL-KDD, a bare export) is read.
    #[serde(default)]
    pub header: Option<bool>,
}

/// A column given by position, `#N` (1-based): its index.
fn position(col: &str) -> Option<usize> {
    col.trim().strip_prefix('#')?.parse::<usize>().ok().filter(|n| *n >= 1).map(|n| n - 1)
}

impl Mapping {
    /// Validates the mapping on its own (before any file is seen), listing every
    /// problem rather than the first.
    pub fn check(&self) -> Result<(), FlowError> {
        let mut problems = Vec::new();
        for key in self.columns.keys() {
            if Role::by_key(key).is_none() {
                problems.push(format!("`{key}` is not a flowhound field (see docs/formats.md)"));
            }
        }
        if !self.benign.is_empty() && !self.columns.contains_key("label") {
            problems.push("`benign` values are given but no `label` column is mapped".to_string());
        }
        if self.columns.is_empty() && self.extra.is_empty() {
            problems.push("maps no columns".to_string());
        }
        if let Some(d) = &self.delimiter {
            if d.len() != 1 {
                problems.push(format!("delimiter {d:?} must be one ASCII character"));
            }
        }
        let cols = || self.columns.values().chain(&self.extra);
        for c in cols() {
            if c.trim().starts_with('#') && position(c).is_none() {
                problems.push(format!("column {c:?}: a position is # and a number from 1, like #3"));
            }
        }
        if self.header == Some(false) {
            for c in cols().filter(|c| !c.trim().starts_with('#')) {
                problems.push(format!(
                    "column {c:?} is named, but the file has no header: map it by position (#3 is the third column)"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(FlowError::Mapping(problems))
        }
    }

    fn delimiter(&self) -> u8 {
        self.delimiter.as_deref().and_then(|d| d.bytes().next()).unwrap_or(b',')
    }

    /// True when the file's first line is data, not names (see [`Mapping::header`]).
    pub fn headerless(&self) -> bool {
        let has_header = self.header.unwrap_or_else(|| {
            let mut cols = self.columns.values().chain(&self.extra).peekable();
            !(cols.peek().is_some() && cols.all(|c| position(c).is_some()))
        });
        !has_header
    }
}

/// The columns of one header: a role per column and the extra names.
#[derive(Debug)]
struct Columns {
    names: Vec<String>,
    roles: Vec<Role>,
    extra: Option<Arc<[CompactString]>>,
    /// The header line as read, to skip it when files are concatenated.
    header: Vec<u8>,
}

/// Normalizes a CSV column name for matching: trimmed, lower case, runs of
/// spaces as one (CIC-2017 writes ` Flow Duration` with a leading space).
fn norm(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase()
}

/// A Zeek conn.log field, whatever the log's encoding (TSV, CSV, JSON).
pub(crate) enum ZeekColumn {
    Role(Role),
    /// `orig_bytes`, `resp_bytes`, `missed_bytes`: payload counts, kept as extras
    /// where the encoding allows (the IP-level counts are the record's bytes).
    PayloadBytes,
    Unknown,
}

pub(crate) fn zeek_role(name: &str) -> ZeekColumn {
    ZeekColumn::Role(match name {
        "ts" => Role::Start(TimeKind::EpochSecs),
        "id.orig_h" => Role::SrcAddr,
        "id.resp_h" => Role::DstAddr,
        "id.orig_p" => Role::SrcPort,
        "id.resp_p" => Role::DstPort,
        "proto" => Role::Protocol,
        "service" => Role::Service,
        "duration" => Role::Duration(DurUnit::Secs),
        "conn_state" => Role::State,
        "local_orig" => Role::LocalOrig,
        "local_resp" => Role::LocalResp,
        "history" => Role::ZeekHistory,
        "orig_pkts" => Role::Packets(Dir::Fwd),
        "resp_pkts" => Role::Packets(Dir::Bwd),
        // IP-level bytes, comparable with VPC's.
        "orig_ip_bytes" => Role::Bytes(Dir::Fwd),
        "resp_ip_bytes" => Role::Bytes(Dir::Bwd),
        "label" => Role::Label,
        "detailed-label" | "detailed_label" => Role::Category,
        "tunnel_parents label detailed-label" => Role::ZeekLabelTriple,
        "orig_bytes" | "resp_bytes" | "missed_bytes" => return ZeekColumn::PayloadBytes,
        _ => return ZeekColumn::Unknown,
    })
}

/// What a column is in a given dialect; `None` means a numeric extra.
fn builtin_role(d: &Dialect, name: &str) -> Option<Role> {
    let n = norm(name);
    let n = n.as_str();
    match d {
        Dialect::ZeekTsv | Dialect::ZeekCsv => match zeek_role(n) {
            ZeekColumn::Role(r) => Some(r),
            ZeekColumn::PayloadBytes => None,
            ZeekColumn::Unknown => Some(Role::Ignore),
        },
        Dialect::Unsw => Some(match n {
            "id" => Role::Ignore,
            "srcip" => Role::SrcAddr,
            "dstip" => Role::DstAddr,
            "sport" => Role::SrcPort,
            "dsport" => Role::DstPort,
            "proto" => Role::ProtocolLenient,
            "service" => Role::Service,
            "state" => Role::State,
            "dur" => Role::Duration(DurUnit::Secs),
            "spkts" => Role::Packets(Dir::Fwd),
            "dpkts" => Role::Packets(Dir::Bwd),
            "sbytes" => Role::Bytes(Dir::Fwd),
            "dbytes" => Role::Bytes(Dir::Bwd),
            "stime" => Role::Start(TimeKind::EpochSecs),
            "ltime" => Role::End(TimeKind::EpochSecs),
            "label" => Role::Label,
            "attack_cat" => Role::Category,
            _ => return None,
        }),
        Dialect::Cic => Some(match n {
            "id" | "flow id" | "attempted category" => Role::Ignore,
            "src ip" | "source ip" => Role::SrcAddr,
            "dst ip" | "destination ip" => Role::DstAddr,
            "src port" | "source port" => Role::SrcPort,
            "dst port" | "destination port" => Role::DstPort,
            "protocol" => Role::Protocol,
            "timestamp" => Role::Start(TimeKind::Any),
            "flow duration" => Role::Duration(DurUnit::Micros),
            "total fwd packet" | "total fwd packets" => Role::Packets(Dir::Fwd),
            "total bwd packets" | "total backward packets" => Role::Packets(Dir::Bwd),
            "total length of fwd packet" | "total length of fwd packets" => Role::Bytes(Dir::Fwd),
            "total length of bwd packet" | "total length of bwd packets" => Role::Bytes(Dir::Bwd),
            "label" => Role::Label,
            _ => return None,
        }),
        Dialect::Flowhound => Role::by_key(n).or_else(|| (n == "malicious").then_some(Role::Label)),
        Dialect::Mapped(_) => None,
    }
}

/// CIC flag-count columns and their bits.
fn cic_flag(name: &str) -> Option<u8> {
    Some(match norm(name).as_str() {
        "fin flag count" => tcp::FIN,
        "syn flag count" => tcp::SYN,
        "rst flag count" => tcp::RST,
        "psh flag count" => tcp::PSH,
        "ack flag count" => tcp::ACK,
        "urg flag count" => tcp::URG,
        "cwr flag count" => tcp::CWR,
        "ece flag count" => tcp::ECE,
        _ => return None,
    })
}

impl Columns {
    fn build(dialect: &Dialect, names: Vec<String>, header: Vec<u8>) -> Result<Self, Reject> {
        let mut roles = Vec::with_capacity(names.len());
        let mut extra: Vec<CompactString> = Vec::new();
        // Names taken, and per name the next suffix to try: a header of
        // thousands of equal (or empty) names stays linear. A scan of the list
        // per suffix tried, as this first did, was cubic: 9.7 s for a 2 KB
        // header of empty names (a timeout the `tabular` fuzz target found).
        let mut taken: FxHashSet<CompactString> = FxHashSet::default();
        let mut next: FxHashMap<CompactString, usize> = FxHashMap::default();
        let mut push_extra = |name: &str, extra: &mut Vec<CompactString>| -> Result<u16, Reject> {
            // The 2017 CIC CSVs name `Fwd Header Length` twice: keep both, apart.
            let base = CompactString::from(name.trim());
            let mut unique = base.clone();
            let k = next.entry(base.clone()).or_insert(1);
            while taken.contains(&unique) {
                unique = CompactString::from(format!("{base}.{k}"));
                *k += 1;
            }
            taken.insert(unique.clone());
            extra.push(unique);
            u16::try_from(extra.len() - 1).map_err(|_| Reject::new(RejectReason::FieldCount, "too many columns"))
        };
        match dialect {
            Dialect::Mapped(m) => {
                let wanted: BTreeMap<String, usize> =
                    names.iter().enumerate().map(|(i, n)| (n.trim().to_string(), i)).collect();
                let n = names.len();
                // `#N` is a position (also in a file with a header); else a name.
                let find = |col: &str| match position(col) {
                    Some(i) => (i < n).then_some(i),
                    None => wanted.get(col.trim()).copied(),
                };
                let absent = |col: &str| match position(col) {
                    Some(_) => format!("column {col} is past the line's {n} columns"),
                    None => format!("column {:?} is not in the header", crate::error::printable(col, 64)),
                };
                roles = vec![Role::Ignore; n];
                let mut missing = Vec::new();
                for (key, col) in &m.columns {
                    match (find(col), Role::by_key(key)) {
                        (Some(i), Some(role)) => roles[i] = role,
                        (None, _) => missing.push(format!("{} (for {key})", absent(col))),
                        (_, None) => missing.push(format!("`{key}` is not a flowhound field")),
                    }
                }
                for col in &m.extra {
                    match find(col) {
                        Some(i) => {
                            let name = if position(col).is_some() { format!("column{}", i + 1) } else { col.clone() };
                            roles[i] = Role::Extra(push_extra(&name, &mut extra)?);
                        }
                        None => missing.push(format!("extra {}", absent(col))),
                    }
                }
                if !missing.is_empty() {
                    return Err(Reject::new(RejectReason::NoHeader, missing.join("; ")));
                }
            }
            _ => {
                for name in &names {
                    let role = match (builtin_role(dialect, name), cic_flag(name)) {
                        (None, Some(bit)) if *dialect == Dialect::Cic => {
                            Role::FlagCount(bit, push_extra(name, &mut extra)?)
                        }
                        (Some(r), _) => r,
                        (None, _) => Role::Extra(push_extra(name, &mut extra)?),
                    };
                    roles.push(role);
                }
            }
        }
        let mut seen: Vec<Role> = Vec::new();
        for r in &roles {
            if !matches!(r, Role::Ignore | Role::Extra(_) | Role::FlagCount(..)) {
                if seen.contains(r) {
                    return Err(Reject::new(RejectReason::BadSyntax, format!("header maps {r:?} twice")));
                }
                seen.push(*r);
            }
        }
        let extra = (!extra.is_empty()).then(|| Arc::from(extra));
        Ok(Columns { names, roles, extra, header })
    }
}

/// Reader for every delimited dialect. Holds the header state, so it is cloned
/// per parallel chunk once the header has been read.
#[derive(Debug, Clone)]
pub struct TabularReader {
    dialect: Dialect,
    delimiter: u8,
    columns: Option<Arc<Columns>>,
    /// Why the first line was not the header a mapping asked for: every
    /// later line is refused with it rather than tried as a header (a data
    /// line that happens to hold the mapped names must not become one).
    bad_header: Option<Arc<str>>,
    splitter: Splitter,
}

impl TabularReader {
    pub fn new(dialect: Dialect) -> Self {
        let delimiter = match &dialect {
            Dialect::ZeekTsv => b'\t',
            Dialect::Mapped(m) => m.delimiter(),
            _ => b',',
        };
        TabularReader { dialect, delimiter, columns: None, bad_header: None, splitter: Splitter::default() }
    }

    pub fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    fn zeek_directive(&mut self, line: &[u8]) -> Result<LineKind, Reject> {
        let (key, rest) = match memchr::memchr2(b' ', b'\t', line) {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &line[line.len()..]),
        };
        match key {
            b"#separator" => {
                let sep = rest.trim_ascii();
                self.delimiter = match sep {
                    [b] => *b,
                    [b'\\', b'x', h, l] => {
                        let hex = |c: u8| (c as char).to_digit(16);
                        match (hex(*h), hex(*l)) {
                            (Some(h), Some(l)) => (h * 16 + l) as u8,
                            _ => {
                                return Err(Reject::field(
                                    RejectReason::BadSyntax,
                                    "#separator",
                                    sep,
                                    "is not a separator",
                                ))
                            }
                        }
                    }
                    _ => return Err(Reject::field(RejectReason::BadSyntax, "#separator", sep, "is not a separator")),
                };
                Ok(LineKind::Header)
            }
            b"#fields" => {
                let names: Vec<String> =
                    rest.split(|b| *b == self.delimiter).map(|n| crate::parse::text(n).to_string()).collect();
                let cols = Columns::build(&self.dialect, names, line.to_vec())?;
                self.columns = Some(Arc::new(cols));
                Ok(LineKind::Header)
            }
            _ => Ok(LineKind::Comment),
        }
    }
}

impl FlowReader for TabularReader {
    fn read_line(&mut self, line: &[u8], out: &mut Vec<FlowRecord>) -> Result<LineKind, Reject> {
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(LineKind::Blank);
        }
        if self.dialect == Dialect::ZeekTsv && line.first() == Some(&b'#') {
            return self.zeek_directive(line);
        }
        if let Some(why) = &self.bad_header {
            return Err(Reject::new(RejectReason::NoHeader, why.to_string()));
        }
        let cols = match self.columns.clone() {
            Some(c) => c,
            None if self.dialect == Dialect::ZeekTsv => {
                return Err(Reject::new(RejectReason::NoHeader, "data line before the #fields header"));
            }
            None => {
                let n = self.splitter.split(line, self.delimiter, true)?;
                let mapped = match &self.dialect {
                    Dialect::Mapped(m) => Some(m.headerless()),
                    _ => None,
                };
                if mapped == Some(true) {
                    // No header: the first line is data and sets the width.
                    let names = (1..=n).map(|i| format!("#{i}")).collect();
                    let c = Arc::new(Columns::build(&self.dialect, names, Vec::new())?);
                    self.columns = Some(c.clone());
                    c
                } else {
                    // A CSV's first line is its header (with a mapping, only the first).
                    let names = (0..n).map(|i| crate::parse::text(self.splitter.field(line, i)).to_string()).collect();
                    match Columns::build(&self.dialect, names, line.to_vec()) {
                        Ok(c) => {
                            self.columns = Some(Arc::new(c));
                            return Ok(LineKind::Header);
                        }
                        Err(r) if mapped.is_some() => {
                            let why: Arc<str> = Arc::from(format!(
                                "the first line is not a header with the mapped columns ({}); for a file without a header, map columns by position (--map src=#3) or give --no-header",
                                r.detail
                            ));
                            self.bad_header = Some(why.clone());
                            return Err(Reject::new(RejectReason::NoHeader, why.to_string()));
                        }
                        Err(r) => return Err(r),
                    }
                }
            }
        };
        if !cols.header.is_empty() && line.len() == cols.header.len() && line == cols.header.as_slice() {
            return Ok(LineKind::Header);
        }
        let quotes = self.dialect != Dialect::ZeekTsv;
        let n = self.splitter.split(line, self.delimiter, quotes)?;
        if n != cols.roles.len() {
            return Err(Reject::new(
                RejectReason::FieldCount,
                format!("expected {} fields, found {n}", cols.roles.len()),
            ));
        }
        let mut b = RowBuilder::default();
        if let Dialect::Mapped(m) = &self.dialect {
            b.benign = &m.benign;
        }
        if let Some(names) = &cols.extra {
            b.rec.extra.names = Some(names.clone());
            b.rec.extra.values = vec![f64::NAN; names.len()];
        }
        for (i, role) in cols.roles.iter().enumerate() {
            if *role != Role::Ignore {
                b.set(*role, &cols.names[i], self.splitter.field(line, i))?;
            }
        }
        out.push(b.finish()?);
        Ok(LineKind::Record)
    }
}
