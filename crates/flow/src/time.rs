//! Calendar arithmetic and the timestamp layouts found in flow datasets.
//!
//! Hand-written rather than chrono's `parse_from_str`: a format string cannot say
//! "day-first unless the day is > 12" (CIC-IDS2017 mixes `03/07/2017 08:55:58` and
//! `7/7/2017 3:30`), and these run once per CSV row, where a format-string
//! interpreter costs more than the rest of the row.

use crate::record::Timestamp;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// A cursor over ASCII digits and separators.
struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn num(&mut self, max_digits: usize) -> Option<(i64, usize)> {
        let start = self.i;
        let mut v: i64 = 0;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() && self.i - start < max_digits {
            v = v * 10 + i64::from(self.s[self.i] - b'0');
            self.i += 1;
        }
        (self.i > start).then_some((v, self.i - start))
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

/// A calendar date and a clock time (`(h, m, s, µs)`) at an offset from UTC, as a timestamp.
fn assemble((y, mo, d): (i64, i64, i64), (h, mi, s, us): (i64, i64, i64, i64), offset_s: i64) -> Option<Timestamp> {
    if !(1..=12).contains(&mo) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let (mo, d) = (mo as u32, d as u32);
    if d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_s;
    secs.checked_mul(1_000_000)?.checked_add(us).and_then(Timestamp::from_micros)
}

/// Fractional digits after a '.', scaled to microseconds (extra digits truncated).
fn fraction(c: &mut Cur<'_>) -> Option<i64> {
    if !c.eat(b'.') && !c.eat(b',') {
        return Some(0);
    }
    let start = c.i;
    let mut us = 0i64;
    let mut n = 0;
    while let Some(b) = c.peek().filter(u8::is_ascii_digit) {
        if n < 6 {
            us = us * 10 + i64::from(b - b'0');
            n += 1;
        }
        c.i += 1;
    }
    if c.i == start {
        return None;
    }
    while n < 6 {
        us *= 10;
        n += 1;
    }
    Some(us)
}

/// `HH:MM[:SS[.frac]]`, then an optional ` AM`/` PM`.
fn clock(c: &mut Cur<'_>) -> Option<(i64, i64, i64, i64)> {
    let (mut h, _) = c.num(2)?;
    if !c.eat(b':') {
        return None;
    }
    let (mi, n) = c.num(2)?;
    if n != 2 {
        return None;
    }
    let (mut s, mut us) = (0, 0);
    if c.eat(b':') {
        s = c.num(2)?.0;
        us = fraction(c)?;
    }
    let rest = &c.s[c.i..];
    let trimmed = rest.strip_prefix(b" ").unwrap_or(rest);
    if trimmed.eq_ignore_ascii_case(b"AM") || trimmed.eq_ignore_ascii_case(b"PM") {
        if !(1..=12).contains(&h) {
            return None;
        }
        let pm = trimmed.eq_ignore_ascii_case(b"PM");
        h = h % 12 + if pm { 12 } else { 0 };
        c.i = c.s.len();
    }
    Some((h, mi, s, us))
}

/// Time zone designator: `Z`, `+hh:mm`, `+hhmm`, `+hh`, or nothing (UTC).
fn zone(c: &mut Cur<'_>) -> Option<i64> {
    match c.peek() {
        None => Some(0),
        Some(b'Z') | Some(b'z') => {
            c.i += 1;
            Some(0)
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let (h, n) = c.num(2)?;
            if n != 2 {
                return None;
            }
            c.eat(b':');
            let m = if c.done() { 0 } else { c.num(2)?.0 };
            let off = h * 3600 + m * 60;
            Some(if sign == b'-' { -off } else { off })
        }
        _ => None,
    }
}

/// Parses the textual layouts seen in flow data:
/// - ISO 8601 / RFC 3339: `2019-08-26T19:48:53.000Z`, `2017-07-07 17:51:49.618008`,
///   offsets `+02:00`; no offset means UTC;
/// - CIC-IDS2017 original: `7/7/2017 3:30`, `03/07/2017 08:55:58`, optional `AM`/`PM`.
///   Day first, as CIC writes it, unless the first number cannot be a day-of-month
///   ≤ 12 pairing (`12/25/2017` is read month-first).
///
/// Times without a zone are taken as UTC (the datasets do not say; see docs/formats.md).
pub fn parse_datetime(s: &[u8]) -> Option<Timestamp> {
    let s = s.trim_ascii();
    let mut c = Cur { s, i: 0 };
    let (a, an) = c.num(4)?;
    match c.peek()? {
        b'-' if an == 4 => {
            c.i += 1;
            let (mo, _) = c.num(2)?;
            if !c.eat(b'-') {
                return None;
            }
            let (d, _) = c.num(2)?;
            if c.done() {
                return assemble((a, mo, d), (0, 0, 0, 0), 0);
            }
            if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
                return None;
            }
            let (h, mi, sec, us) = clock(&mut c)?;
            let off = zone(&mut c)?;
            if !c.done() {
                return None;
            }
            assemble((a, mo, d), (h, mi, sec, us), off)
        }
        b'/' if an <= 2 => {
            c.i += 1;
            let (b, bn) = c.num(2)?;
            if !c.eat(b'/') || bn == 0 {
                return None;
            }
            let (y, yn) = c.num(4)?;
            let y = if yn == 2 { 2000 + y } else { y };
            let (d, mo) = if b > 12 && a <= 12 { (b, a) } else { (a, b) };
            if c.done() {
                return assemble((y, mo, d), (0, 0, 0, 0), 0);
            }
            if !c.eat(b' ') {
                return None;
            }
            let (h, mi, sec, us) = clock(&mut c)?;
            c.done().then_some(())?;
            assemble((y, mo, d), (h, mi, sec, us), 0)
        }
        _ => None,
    }
}

/// Epoch number in seconds (`1418530010`, Zeek's `1713484795.943239`).
pub fn parse_epoch_secs(s: &[u8]) -> Option<Timestamp> {
    if let Some(v) = crate::parse::uint(s) {
        return i64::try_from(v).ok().and_then(Timestamp::from_secs);
    }
    match memchr::memchr(b'.', s) {
        None => crate::parse::int_i64(s).and_then(Timestamp::from_secs),
        Some(dot) => {
            // Integer and fraction parsed apart: an f64 round trip would lose the
            // last microsecond digit at current epochs.
            let whole = crate::parse::int_i64(&s[..dot])?;
            let mut c = Cur { s: &s[dot..], i: 0 };
            let us = fraction(&mut c)?;
            if !c.done() {
                return None;
            }
            let us = if whole < 0 { -us } else { us };
            whole.checked_mul(1_000_000)?.checked_add(us).and_then(Timestamp::from_micros)
        }
    }
}

/// Any layout: an epoch number (seconds, or milliseconds/microseconds when its
/// magnitude says so) or one of [`parse_datetime`]'s.
pub fn parse_any(s: &[u8]) -> Option<Timestamp> {
    let s = s.trim_ascii();
    if !s.is_empty() && s.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        let int_digits = memchr::memchr(b'.', s).unwrap_or(s.len());
        // 10 digits of seconds reach year 2286; 13 are milliseconds, 16 microseconds.
        return match int_digits {
            0..=11 => parse_epoch_secs(s),
            12..=14 => crate::parse::int_i64(&s[..int_digits])
                .and_then(|ms| ms.checked_mul(1000))
                .and_then(Timestamp::from_micros),
            _ => crate::parse::int_i64(&s[..int_digits]).and_then(Timestamp::from_micros),
        };
    }
    parse_datetime(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<i64> {
        parse_any(s.as_bytes()).map(|t| t.secs())
    }

    #[test]
    fn civil_round_trip() {
        for z in [-719_468, -1, 0, 1, 17_000, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn layouts() {
        assert_eq!(ts("1418530010"), Some(1_418_530_010));
        assert_eq!(ts("2014-12-14T04:06:50Z"), Some(1_418_530_010));
        assert_eq!(ts("2014-12-14T06:06:50+02:00"), Some(1_418_530_010));
        assert_eq!(ts("2014-12-14 04:06:50"), Some(1_418_530_010));
        assert_eq!(ts("1418530010000"), Some(1_418_530_010));
        // CIC-IDS2017: day first; 2017-07-07 15:30 UTC = 1499441400
        assert_eq!(ts("7/7/2017 3:30 PM"), Some(1_499_441_400));
        assert_eq!(ts("07/07/2017 15:30"), Some(1_499_441_400));
        assert_eq!(ts("03/07/2017 08:55:58"), Some(1_499_072_158));
        assert_eq!(ts("12/25/2017 0:00"), Some(1_514_160_000));
        let z = parse_epoch_secs(b"1713484795.943239").map(|t| t.micros());
        assert_eq!(z, Some(1_713_484_795_943_239));
        let c = parse_datetime(b"2017-07-07 17:51:49.618008").map(|t| t.micros());
        assert_eq!(c, Some(1_499_449_909_618_008));
    }

    #[test]
    fn garbage_is_none() {
        for s in [
            "",
            "-",
            "abc",
            "2017-13-01",
            "2017-02-30",
            "31/31/2017 1:00",
            "1e9",
            "99999999999999999999",
            "2017-01-01T25:00:00Z",
            "7/7/2017 3:3",
        ] {
            assert_eq!(ts(s), None, "{s}");
        }
    }
}
