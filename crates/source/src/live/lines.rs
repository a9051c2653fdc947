//! Bytes that arrive piecemeal, to records: the partial last line kept, the
//! format detected from the first whole lines.

use flowhound_flow::{AnyReader, FlowReader, FlowRecord, Format};

/// Lines in, records out, for sources that deliver bytes piecemeal: keeps
/// the partial last line, detects the format from the first whole lines (or
/// uses the forced one), and counts rejected lines.
#[derive(Debug)]
pub struct LineFeed {
    forced: Option<Format>,
    reader: Option<AnyReader>,
    carry: Vec<u8>,
    pub rejected: u64,
    /// The first problem, for the log.
    pub first_problem: Option<String>,
}

impl LineFeed {
    pub fn new(forced: Option<Format>) -> Self {
        LineFeed { forced, reader: None, carry: Vec::new(), rejected: 0, first_problem: None }
    }

    /// Bytes held back as an incomplete last line.
    pub fn pending(&self) -> usize {
        self.carry.len()
    }

    /// Adds bytes; parses every complete line.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<FlowRecord>) {
        self.carry.extend_from_slice(data);
        let Some(end) = memchr::memrchr(b'\n', &self.carry) else {
            if self.carry.len() > crate::MAX_LINE {
                self.reject_text("a line longer than 16 MiB was skipped");
                self.carry.clear();
            }
            return;
        };
        let rest = self.carry.split_off(end + 1);
        let whole = std::mem::replace(&mut self.carry, rest);
        self.lines(&whole, out);
    }

    /// The input ended: a last line without a newline counts too.
    pub fn finish(&mut self, out: &mut Vec<FlowRecord>) {
        let rest = std::mem::take(&mut self.carry);
        if !rest.is_empty() {
            self.lines(&rest, out);
        }
    }

    /// Reads the start of a file whose records were already processed (a
    /// resumed follow): learns its format and header, keeps no record.
    pub fn prime(&mut self, start: &[u8]) {
        let mut sink = Vec::new();
        let end = memchr::memrchr(b'\n', start).map_or(0, |i| i + 1);
        let rejected = self.rejected;
        self.lines(&start[..end], &mut sink);
        self.rejected = rejected;
    }

    fn reject_text(&mut self, what: &str) {
        self.rejected += 1;
        if self.first_problem.is_none() {
            self.first_problem = Some(what.to_string());
        }
    }

    fn lines(&mut self, data: &[u8], out: &mut Vec<FlowRecord>) {
        let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
        if self.reader.is_none() {
            let format = match &self.forced {
                Some(f) => Ok(f.clone()),
                None => flowhound_flow::detect(&data[..data.len().min(64 << 10)]),
            };
            match format {
                Ok(f) => self.reader = Some(f.reader()),
                Err(e) => {
                    let n = data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64;
                    self.rejected += n;
                    self.first_problem.get_or_insert_with(|| format!("unknown format: {e}"));
                    return;
                }
            }
        }
        let Some(reader) = self.reader.as_mut() else { return };
        for line in data.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if let Err(r) = reader.read_line(line, out) {
                self.rejected += 1;
                if self.first_problem.is_none() {
                    self.first_problem = Some(r.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_feed_keeps_partial_lines_and_counts_rejects() {
        let mut lf = LineFeed::new(None);
        let mut out = Vec::new();
        let text = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n\
                    2 1 eni-1 10.0.0.1 10.0.0.2 4000 22 6 3 180 1700000000 1700000060 ACCEPT OK\n\
                    2 1 eni-1 10.0.0.1 not-an-ip 4000 22 6 3 180 1700000000 1700000060 ACCEPT OK\n\
                    2 1 eni-1 10.0.0.1 10.0.0.3 4000 22 6 3 180 1700000000 1700000060 ACC";
        let (a, b) = text.split_at(150);
        lf.feed(a.as_bytes(), &mut out);
        assert!(out.is_empty() && lf.pending() > 0);
        lf.feed(b.as_bytes(), &mut out);
        assert_eq!((out.len(), lf.rejected), (1, 1));
        lf.feed(b"EPT OK\n", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].dst, "10.0.0.3".parse().ok());
        // A resumed follow learns the header without emitting its records.
        let mut resumed = LineFeed::new(None);
        resumed.prime(text.as_bytes());
        let mut out = Vec::new();
        resumed.feed(b"2 1 eni-1 10.0.0.9 10.0.0.2 4000 22 6 3 180 1700000000 1700000060 ACCEPT OK\n", &mut out);
        assert_eq!((out.len(), resumed.rejected), (1, 0));
    }
}
