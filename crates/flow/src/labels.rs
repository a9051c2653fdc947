//! Ground truth kept beside a log rather than in it: `generate` writes VPC logs
//! that stay valid VPC format, and their labels go to a CSV keyed by line number.
//!
//! ```text
//! line,malicious,category
//! 2,false,
//! 3,true,port_scan_vertical
//! ```

use compact_str::CompactString;
use rustc_hash::FxHashMap;

use crate::error::FlowError;
use crate::record::GroundTruth;

/// Labels by 1-based line number of the log they describe. A map, not a vector
/// indexed by line: the file is input, and one line claiming to describe line
/// 4,444,444,444 must not allocate for all the lines before it (found by fuzzing).
#[derive(Debug, Clone, Default)]
pub struct LabelTable {
    by_line: FxHashMap<u64, GroundTruth>,
}

impl LabelTable {
    pub const HEADER: &'static str = "line,malicious,category";

    /// Appends the labels line of log line `line` (what [`LabelTable::parse`]
    /// reads back): no truth is benign without a category.
    pub fn write_line(out: &mut String, line: u64, truth: Option<&GroundTruth>) {
        use std::fmt::Write as _;
        let malicious = truth.is_some_and(|t| t.malicious);
        let category = truth.and_then(|t| t.category.as_deref()).unwrap_or("");
        let _ = writeln!(out, "{line},{malicious},{category}");
    }

    pub fn get(&self, line: u64) -> Option<&GroundTruth> {
        self.by_line.get(&line)
    }

    pub fn len(&self) -> usize {
        self.by_line.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_line.is_empty()
    }

    pub fn insert(&mut self, line: u64, truth: GroundTruth) {
        self.by_line.insert(line, truth);
    }

    /// Parses a labels file, listing every bad line (up to 20) rather than the first.
    pub fn parse(text: &[u8]) -> Result<Self, FlowError> {
        let mut t = LabelTable::default();
        let mut problems = Vec::new();
        for (i, line) in text.split(|b| *b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() || (i == 0 && line.starts_with(b"line,")) {
                continue;
            }
            let mut f = line.splitn(3, |b| *b == b',');
            let (n, m, c) = (f.next(), f.next(), f.next());
            let n = n.and_then(crate::parse::uint).filter(|n| *n > 0);
            let m = match m {
                Some(b"true") | Some(b"1") => Some(true),
                Some(b"false") | Some(b"0") => Some(false),
                _ => None,
            };
            match (n, m) {
                (Some(n), Some(malicious)) => {
                    let category = c.filter(|c| !c.is_empty()).map(crate::parse::category);
                    t.insert(
                        n,
                        GroundTruth { malicious, category: category.filter(|c: &CompactString| !c.is_empty()) },
                    );
                }
                _ if problems.len() < 20 => problems.push(format!(
                    "line {}: expected `line,malicious,category`, found \"{}\"",
                    i + 1,
                    crate::error::show(line)
                )),
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(t)
        } else {
            Err(FlowError::Mapping(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_lookup() {
        let t = LabelTable::parse(b"line,malicious,category\n2,false,\n3,true,port_scan_vertical\n").expect("valid");
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(3).and_then(|g| g.category.as_deref()), Some("port_scan_vertical"));
        assert_eq!(t.get(2).map(|g| g.malicious), Some(false));
        assert!(t.get(4).is_none());
    }

    #[test]
    fn huge_line_numbers_cost_nothing() {
        let t = LabelTable::parse(b"18446744073709551615,true,x\n4444444444,0,\n").expect("valid");
        assert_eq!(t.len(), 2);
        assert!(t.get(u64::MAX).is_some_and(|g| g.malicious));
    }

    #[test]
    fn bad_lines_are_all_listed() {
        let e = LabelTable::parse(b"1,maybe,\nx,true,\n3,true,ok\n").expect_err("invalid").to_string();
        assert!(e.contains("line 1") && e.contains("line 2") && !e.contains("line 3"), "{e}");
    }
}
