//! Field-level parsers shared by every reader: bytes in, values out, no allocation.

use std::net::{IpAddr, Ipv4Addr};

use compact_str::CompactString;

use crate::error::{Reject, RejectReason};
use crate::record::GroundTruth;

/// Unsigned decimal with overflow check. Hand-written because `str::parse` needs
/// UTF-8 validation first, and this runs for most fields of most lines.
#[inline]
pub fn uint(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

#[inline]
pub fn int_i64(s: &[u8]) -> Option<i64> {
    match s.split_first() {
        Some((b'-', rest)) => uint(rest).and_then(|v| i64::try_from(v).ok()).map(|v| -v),
        Some((b'+', rest)) => uint(rest).and_then(|v| i64::try_from(v).ok()),
        _ => uint(s).and_then(|v| i64::try_from(v).ok()),
    }
}

/// A count that may be written as a float (`12.0` in some CSV exports), but must
/// be a whole non-negative number.
pub fn count(s: &[u8]) -> Option<u64> {
    uint(s).or_else(|| {
        let f = float(s)?;
        (f >= 0.0 && f.fract() == 0.0 && f < 1.8e19).then_some(f as u64)
    })
}

/// A float, accepting the spellings datasets use for non-finite values
/// (`Infinity`, `inf`, `NaN`).
pub fn float(s: &[u8]) -> Option<f64> {
    let s = s.trim_ascii();
    let text = std::str::from_utf8(s).ok()?;
    match text {
        "Infinity" | "+Infinity" | "inf" | "+inf" | "Inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" | "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" | "NAN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// Dotted-quad IPv4, hand-written for the hot path; IPv6 goes to std's parser.
#[inline]
pub fn ip(s: &[u8]) -> Option<IpAddr> {
    if s.len() <= 15 {
        if let Some(v4) = ipv4(s) {
            return Some(IpAddr::V4(v4));
        }
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[inline]
fn ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        let start = i;
        let mut v: u32 = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            v = v * 10 + u32::from(s[i] - b'0');
            i += 1;
            if i - start > 3 {
                return None;
            }
        }
        // No empty octets, no leading zeros (std rejects them too: `010` is ambiguous).
        if i == start || v > 255 || (i - start > 1 && s[start] == b'0') {
            return None;
        }
        *octet = v as u8;
        if n < 3 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    (i == s.len()).then(|| Ipv4Addr::from(octets))
}

pub fn port(field: &str, s: &[u8]) -> Result<u16, Reject> {
    uint(s)
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| Reject::field(RejectReason::BadPort, field, s, "is not a port"))
}

pub fn address(field: &str, s: &[u8]) -> Result<IpAddr, Reject> {
    ip(s).ok_or_else(|| Reject::field(RejectReason::BadAddress, field, s, "is not an IP address"))
}

pub fn number(field: &str, s: &[u8]) -> Result<u64, Reject> {
    count(s).ok_or_else(|| Reject::field(RejectReason::BadNumber, field, s, "is not a count"))
}

/// Protocol number or keyword (`6`, `tcp`, `TCP`).
pub fn protocol(field: &str, s: &[u8]) -> Result<u8, Reject> {
    uint(s)
        .and_then(|v| u8::try_from(v).ok())
        .or_else(|| crate::proto::number(s))
        .ok_or_else(|| Reject::field(RejectReason::BadProtocol, field, s, "is not a protocol"))
}

/// Text field to an owned compact string; invalid UTF-8 is decoded as cp1252,
/// which is what the original CIC-IDS2017 CSVs contain (`Web Attack \x96 Brute Force`).
pub fn text(s: &[u8]) -> CompactString {
    match std::str::from_utf8(s) {
        Ok(t) => CompactString::from(t),
        Err(_) => s.iter().map(|&b| cp1252(b)).collect(),
    }
}

/// One cp1252 byte as a char. 0x80–0x9F hold typographic characters; the
/// undefined slots map to U+FFFD.
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{FFFD}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{FFFD}', 'Ž', '\u{FFFD}',
        '\u{FFFD}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{FFFD}', 'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// Most characters of a category name kept.
const MAX_CATEGORY: usize = 128;

/// Attack-category text as one spelling: cp1252 decoded, dashes made ASCII,
/// whitespace trimmed and collapsed, so `Web Attack \x96 Brute Force` (2017 CSV)
/// and `Web Attack - Brute Force` count as one category. Categories are
/// printed to terminals (summaries, `inspect`, `evaluate`): made
/// [`printable`](crate::error::printable), cut at 128 characters.
pub fn category(s: &[u8]) -> CompactString {
    let t = text(s);
    let mut spelled = String::new();
    for word in t.split_whitespace() {
        if !spelled.is_empty() {
            spelled.push(' ');
        }
        spelled.extend(word.chars().map(|ch| if matches!(ch, '–' | '—') { '-' } else { ch }));
    }
    crate::error::printable(&spelled, MAX_CATEGORY).into()
}

/// Values that mean "not an attack" in the datasets' label and category columns.
fn is_benign_word(s: &[u8]) -> bool {
    const BENIGN: [&[u8]; 11] =
        [b"0", b"false", b"no", b"benign", b"normal", b"-", b"", b"none", b"ok", b"legitimate", b"clean"];
    let s = s.trim_ascii();
    BENIGN.iter().any(|w| s.eq_ignore_ascii_case(w))
}

fn is_malicious_word(s: &[u8]) -> bool {
    const MAL: [&[u8]; 6] = [b"1", b"true", b"yes", b"malicious", b"attack", b"anomaly"];
    let s = s.trim_ascii();
    MAL.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// Ground truth from a label cell and an optional category cell.
///
/// The label is binary (`0/1`, `Benign/Malicious`, …) or itself a category
/// (CIC's `Label`: `BENIGN`, `DDoS`, …). The category column, where there is one,
/// wins for naming the attack; a benign word there (`Normal`, `-`) means none.
pub fn truth(label: Option<&[u8]>, cat: Option<&[u8]>) -> Result<Option<GroundTruth>, Reject> {
    // An empty label cell says nothing about the row: no ground truth, not "benign".
    let label = label.filter(|l| !matches!(l.trim_ascii(), b"" | b"-"));
    let cat = cat.filter(|c| !is_benign_word(c)).map(category).filter(|c| !c.is_empty());
    let Some(label) = label else {
        // A category column alone still says which rows are attacks.
        return Ok(cat.map(|c| GroundTruth { malicious: true, category: Some(c) }));
    };
    let label = label.trim_ascii();
    if is_benign_word(label) {
        Ok(Some(GroundTruth { malicious: false, category: None }))
    } else if is_malicious_word(label) {
        Ok(Some(GroundTruth { malicious: true, category: cat }))
    } else if label.is_empty() {
        Err(Reject::field(RejectReason::BadValue, "label", label, "is empty"))
    } else {
        Ok(Some(GroundTruth { malicious: true, category: cat.or_else(|| Some(category(label))) }))
    }
}

/// Splits one CSV line into fields.
///
/// Hand-written instead of csv-core: csv-core copies every field into an output
/// buffer, while flow CSVs almost never quote, so the common case here is
/// zero-copy (`memchr` for the delimiter) and only a line holding a `"` takes the
/// RFC 4180 path that unquotes into `scratch`. Records spanning lines are not
/// supported: the block driver cuts input at newlines (documented in docs/formats.md).
#[derive(Debug, Clone, Default)]
pub struct Splitter {
    scratch: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    quoted: bool,
}

impl Splitter {
    /// Splits `line`; afterwards `field(line, i)` returns the i-th field.
    pub fn split(&mut self, line: &[u8], delim: u8, quotes: bool) -> Result<usize, Reject> {
        self.ranges.clear();
        self.quoted = quotes && memchr::memchr(b'"', line).is_some();
        if !self.quoted {
            let mut start = 0;
            for end in memchr::memchr_iter(delim, line) {
                self.ranges.push((start, end));
                start = end + 1;
            }
            self.ranges.push((start, line.len()));
            return Ok(self.ranges.len());
        }
        self.scratch.clear();
        let mut i = 0;
        loop {
            let start = self.scratch.len();
            if line.get(i) == Some(&b'"') {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(Reject::new(RejectReason::BadSyntax, "unterminated quoted field")),
                        Some(b'"') if line.get(i + 1) == Some(&b'"') => {
                            self.scratch.push(b'"');
                            i += 2;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(&b) => {
                            self.scratch.push(b);
                            i += 1;
                        }
                    }
                }
                // Tolerate junk between the closing quote and the delimiter, as
                // Python's csv module does.
                while i < line.len() && line[i] != delim {
                    self.scratch.push(line[i]);
                    i += 1;
                }
            } else {
                let end = memchr::memchr(delim, &line[i..]).map_or(line.len(), |p| i + p);
                self.scratch.extend_from_slice(&line[i..end]);
                i = end;
            }
            self.ranges.push((start, self.scratch.len()));
            if i >= line.len() {
                break;
            }
            i += 1; // the delimiter
            if i == line.len() {
                self.ranges.push((self.scratch.len(), self.scratch.len()));
                break;
            }
        }
        Ok(self.ranges.len())
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    #[inline]
    pub fn field<'a>(&'a self, line: &'a [u8], i: usize) -> &'a [u8] {
        let (s, e) = self.ranges[i];
        if self.quoted {
            &self.scratch[s..e]
        } else {
            &line[s..e]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(uint(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(uint(b"18446744073709551616"), None);
        assert_eq!(uint(b"-1"), None);
        assert_eq!(uint(b""), None);
        assert_eq!(count(b"12.0"), Some(12));
        assert_eq!(count(b"12.5"), None);
        assert_eq!(int_i64(b"-42"), Some(-42));
        assert!(float(b"Infinity").is_some_and(f64::is_infinite));
        assert!(float(b"NaN").is_some_and(f64::is_nan));
        assert_eq!(float(b"abc"), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(ip(b"10.0.0.1"), Some("10.0.0.1".parse().unwrap_or(IpAddr::from([0; 4]))));
        assert_eq!(ip(b"255.255.255.255").map(|a| a.to_string()), Some("255.255.255.255".into()));
        for bad in [&b"256.0.0.1"[..], b"1.2.3", b"1.2.3.4.5", b"01.2.3.4", b"1..2.3", b"", b"a.b.c.d", b"1.2.3.4 "] {
            assert_eq!(ip(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(ip(b"2001:db8::1").map(|a| a.to_string()), Some("2001:db8::1".into()));
        assert_eq!(ip(b"::ffff:1.2.3.4").map(|a| a.is_ipv6()), Some(true));
    }

    #[test]
    fn categories_print_safely() {
        assert_eq!(category("Web Attack \u{2013} Brute Force".as_bytes()).as_str(), "Web Attack - Brute Force");
        assert_eq!(category(b"C&C\x1b]0;pwned\x07").as_str(), "C&C\\u{1b}]0;pwned\\u{7}");
        assert_eq!(category("evil\u{202e}cod".as_bytes()).as_str(), "evil\\u{202e}cod");
        let long = category(&[b'a'; 500]);
        assert_eq!(long.chars().count(), MAX_CATEGORY + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn labels() {
        let t = |l: Option<&str>, c: Option<&str>| truth(l.map(str::as_bytes), c.map(str::as_bytes)).ok().flatten();
        assert_eq!(t(Some("0"), Some("Normal")).map(|g| g.malicious), Some(false));
        let g = t(Some("1"), Some(" Fuzzers ")).expect("truth");
        assert!(g.malicious);
        assert_eq!(g.category.as_deref(), Some("Fuzzers"));
        assert_eq!(t(Some("BENIGN"), None).map(|g| g.malicious), Some(false));
        assert_eq!(t(Some("DDoS"), None).and_then(|g| g.category).as_deref(), Some("DDoS"));
        assert_eq!(t(Some("Malicious"), Some("-")).map(|g| (g.malicious, g.category)), Some((true, None)));
        let web = truth(Some(b"Web Attack \x96 Brute Force"), None).ok().flatten().and_then(|g| g.category);
        assert_eq!(web.as_deref(), Some("Web Attack - Brute Force"));
        assert_eq!(truth(Some(b"   "), None).ok(), Some(None), "an empty label is no ground truth");
        assert_eq!(truth(Some(b"-"), Some(b"-")).ok(), Some(None));
    }

    #[test]
    fn split_plain_and_quoted() {
        let mut s = Splitter::default();
        let line = b"a,,c";
        assert_eq!(s.split(line, b',', true).ok(), Some(3));
        assert_eq!(s.field(line, 1), b"");
        let line = br#""x,y",2,"say ""hi""","#;
        assert_eq!(s.split(line, b',', true).ok(), Some(4));
        assert_eq!(s.field(line, 0), b"x,y");
        assert_eq!(s.field(line, 2), br#"say "hi""#);
        assert_eq!(s.field(line, 3), b"");
        assert!(s.split(br#""open,1"#, b',', true).is_err());
        let line = b"a\tb\t";
        assert_eq!(s.split(line, b'\t', false).ok(), Some(3));
    }
}
