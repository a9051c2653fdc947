//! Ground truth kept beside a log rather than in it: `generate` writes VPC logs
//! that stay valid VPC format, and their labels go to a CSV keyed by line number.
//!
//! ```text
//! line,malicious,category
//! 2,false,
//! 3,true,port_scan_vertical
//! ```

use compact_str::CompactString;

use crate::error::FlowError;
use crate::record::GroundTruth;

/// Labels by 1-based line number of the log they describe.
#[derive(Debug, Clone, Default)]
pub struct LabelTable {
    by_line: Vec<Option<GroundTruth>>,
    count: usize,
}

impl LabelTable {
    pub const HEADER: &'static str = "line,malicious,category";

    pub fn get(&self, line: u64) -> Option<&GroundTruth> {
        usize::try_from(line).ok().and_then(|l| self.by_line.get(l)).and_then(Option::as_ref)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn insert(&mut self, line: u64, truth: GroundTruth) {
        let l = usize::try_from(line).unwrap_or(usize::MAX);
        if l >= self.by_line.len() {
            self.by_line.resize(l + 1, None);
        }
        if self.by_line[l].replace(truth).is_none() {
            self.count += 1;
        }
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
            let n = n.and_then(crate::parse::uint).filter(|n| *n > 0 && *n < (1 << 40));
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
