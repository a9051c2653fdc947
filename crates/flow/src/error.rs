//! Why a line was not turned into a flow record.

use std::fmt;

/// The reason a line was rejected. Counted per reason in every summary, so the
/// set is small and stable; the free-text detail says which field and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// More or fewer fields than the header or format declares.
    FieldCount,
    /// An IP address that does not parse.
    BadAddress,
    /// A port outside 0..=65535 or not a number.
    BadPort,
    /// A count or measurement that is not a non-negative number in range.
    BadNumber,
    /// A timestamp or duration that does not parse or is out of range.
    BadTime,
    /// A protocol that is neither a number 0..=255 nor a known keyword.
    BadProtocol,
    /// A value outside the field's vocabulary (action, direction, label, …).
    BadValue,
    /// Quoting or encoding broken (unterminated quote, invalid JSON, bad UTF-8).
    BadSyntax,
    /// A data line before any header, in a format that needs one.
    NoHeader,
}

impl RejectReason {
    pub const ALL: [RejectReason; 9] = [
        RejectReason::FieldCount,
        RejectReason::BadAddress,
        RejectReason::BadPort,
        RejectReason::BadNumber,
        RejectReason::BadTime,
        RejectReason::BadProtocol,
        RejectReason::BadValue,
        RejectReason::BadSyntax,
        RejectReason::NoHeader,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::FieldCount => "field_count",
            RejectReason::BadAddress => "bad_address",
            RejectReason::BadPort => "bad_port",
            RejectReason::BadNumber => "bad_number",
            RejectReason::BadTime => "bad_time",
            RejectReason::BadProtocol => "bad_protocol",
            RejectReason::BadValue => "bad_value",
            RejectReason::BadSyntax => "bad_syntax",
            RejectReason::NoHeader => "no_header",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected line: the reason and a human detail such as
/// `dstport: "70000" is not a port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Reject {
    pub reason: RejectReason,
    pub detail: String,
}

impl Reject {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Reject { reason, detail: detail.into() }
    }

    /// `field: "value" what`, with the value shown escaped and cut to 64 bytes:
    /// values are attacker-controlled and end up on terminals and in files.
    pub fn field(reason: RejectReason, field: &str, value: &[u8], what: &str) -> Self {
        Reject { reason, detail: format!("{field}: \"{}\" {what}", show(value)) }
    }
}

/// Untrusted text (a name from flow data or labels) safe to print on a
/// terminal, Unicode kept: control and bidirectional-override characters
/// escaped (`\u{1b}`), at most `max_chars` characters, then `…`.
pub fn printable(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars));
    for (i, c) in s.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        // Bidirectional overrides would reorder the rest of the line.
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Printable, bounded rendering of untrusted bytes.
pub fn show(value: &[u8]) -> String {
    let cut = &value[..value.len().min(64)];
    let mut s: String = cut.escape_ascii().to_string();
    if value.len() > 64 {
        s.push('…');
    }
    s
}

/// Errors that are not about a single line: a header or mapping that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("column mapping: {}", .0.join("; "))]
    Mapping(Vec<String>),
    #[error("cannot tell the input format: {0}")]
    UnknownFormat(String),
}
