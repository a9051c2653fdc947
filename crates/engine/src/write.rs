//! Flow and incident lines as `detect` and `watch` write them: JSON lines,
//! CSV or an aligned table — an [`Output`] over any writer.

use std::io::Write;

use flowhound_detect::Verdict;
use flowhound_explain::allow::Entry;
use flowhound_explain::json::{flow_json, incident_json, predicted, time};
use flowhound_explain::{Finding, Incident};
use flowhound_flow::FlowRecord;

use crate::run::{Flow, IncidentNews, Output, OutputError};

/// How flows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Table,
}

/// A writer that can be made final: a batch run's file moved into place,
/// a live run's file or stdout flushed.
pub trait Commit: Write {
    fn commit(&mut self) -> std::io::Result<()>;
}

impl Commit for crate::outfile::OutFile {
    fn commit(&mut self) -> std::io::Result<()> {
        crate::outfile::OutFile::commit(self)
    }
}

/// In memory: for tests and callers that keep the lines.
impl Commit for Vec<u8> {
    fn commit(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A live run's findings: appended to a file, or to stdout, and flushed
/// after every batch so a reader (or a pipe) sees them at once.
#[derive(Debug)]
pub enum Appending {
    Stdout(std::io::Stdout),
    File(std::fs::File),
}

impl Appending {
    /// `None` or `-`: stdout. A file that does not end in a newline (a run
    /// killed in the middle of a write leaves part of a line) gets one
    /// first, so the torn line stays alone and every line this run appends
    /// parses.
    pub fn open(path: Option<&std::path::Path>) -> std::io::Result<Appending> {
        let Some(p) = path.filter(|p| p.as_os_str() != "-") else {
            return Ok(Appending::Stdout(std::io::stdout()));
        };
        let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("cannot open {}: {e}", p.display()));
        let mut f = std::fs::OpenOptions::new().create(true).read(true).append(true).open(p).map_err(named)?;
        if torn(&mut f).map_err(named)? {
            f.write_all(b"\n").map_err(named)?;
        }
        Ok(Appending::File(f))
    }
}

/// Whether `f` holds something and its last byte is not a newline.
fn torn(f: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if f.metadata()?.len() == 0 || !f.metadata()?.is_file() {
        return Ok(false);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

impl Write for Appending {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Appending::Stdout(s) => s.lock().write(b),
            Appending::File(f) => f.write(b),
        }
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Appending::Stdout(s) => s.lock().write_all(b),
            Appending::File(f) => f.write_all(b),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Appending::Stdout(s) => s.flush(),
            Appending::File(f) => f.flush(),
        }
    }
}

impl Commit for Appending {
    fn commit(&mut self) -> std::io::Result<()> {
        self.flush()
    }
}

/// Writes the flows the run shows (or, with `incidents`, the incidents) to
/// `out`, a batch at a time.
#[derive(Debug)]
pub struct FlowWriter<W: Commit> {
    out: W,
    format: Format,
    names: Vec<&'static str>,
    classes: Option<Vec<String>>,
    incidents: bool,
    /// Live: flushed after every batch, incidents written as they open
    /// (`"status": "open"`) and end (`"closed"`).
    live: bool,
    buf: Vec<u8>,
}

impl<W: Commit> FlowWriter<W> {
    /// A writer of `format` for a model with voters `names` (and attack
    /// `classes` when supervised); the header goes out at once.
    pub fn new(
        mut out: W,
        format: Format,
        names: Vec<&'static str>,
        classes: Option<Vec<String>>,
        incidents: bool,
        live: bool,
    ) -> std::io::Result<Self> {
        let head = match format {
            Format::Csv => {
                let mut head =
                    String::from("flow,time,src,dst,src_port,dst_port,protocol,score,votes,severity,confidence");
                for n in &names {
                    head += &format!(",{n}_score,{n}_flagged");
                }
                head += ",label,category";
                head += if classes.is_some() { ",predicted_category" } else { "" };
                head += ",threat_class,threat_variant,attack_technique,reason,suppressed\n";
                head
            }
            Format::Table if incidents => incident_table_head(),
            Format::Table => format!(
                "{:<20} {:<39} {:<39} {:>5} {:>5} {:>6} {:>5} {:<8} {:<18} {}\n",
                "time", "src", "dst", "dport", "proto", "score", "votes", "severity", "class", "reason"
            ),
            Format::Jsonl => String::new(),
        };
        if !head.is_empty() {
            out.write_all(head.as_bytes())?;
        }
        Ok(FlowWriter { out, format, names, classes, incidents, live, buf: Vec::new() })
    }

    /// The writer, to finish it.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn incident_lines(&mut self, list: &[Incident], status: Option<&str>) {
        for i in list {
            if self.format == Format::Table {
                self.buf.extend_from_slice(incident_table_row(i).as_bytes());
                continue;
            }
            let mut v = incident_json(i);
            if let (Some(o), Some(s)) = (v.as_object_mut(), status) {
                o.insert("status".into(), s.into());
            }
            let _ = serde_json::to_writer(&mut self.buf, &v);
            self.buf.push(b'\n');
        }
    }
}

impl<W: Commit> Output for FlowWriter<W> {
    fn flow(&mut self, f: &Flow<'_>) -> Result<(), OutputError> {
        if !f.shown.written {
            return Ok(());
        }
        let classes = self.classes.as_deref();
        let (r, v, fd, entry) = (f.record, f.verdict, f.finding, f.shown.entry);
        match self.format {
            Format::Jsonl => {
                let m = flow_json(f.id, r, v, fd, entry, &self.names, classes);
                let _ = serde_json::to_writer(&mut self.buf, &serde_json::Value::Object(m));
                self.buf.push(b'\n');
            }
            Format::Csv => csv_line(&mut self.buf, f.id, r, v, fd, entry, classes),
            Format::Table => table_line(&mut self.buf, r, v, fd),
        }
        Ok(())
    }

    fn batch_done(&mut self, news: Option<IncidentNews<'_>>) -> Result<(), OutputError> {
        match news {
            Some(IncidentNews::Final(list)) if self.incidents => self.incident_lines(list, None),
            Some(IncidentNews::Live(c)) if self.incidents => {
                self.incident_lines(&c.alerts, Some("open"));
                self.incident_lines(&c.ended, Some("closed"));
            }
            _ => {}
        }
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
            if self.live {
                self.out.flush()?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, _tally: &mut crate::Tally) -> Result<(), OutputError> {
        Ok(self.out.commit()?)
    }
}

/// Incidents to the alert sinks: a batch run's all at its end; a live run's
/// as they open or grow worse, and those owed an alert as they end. The
/// delivery summary goes into the tally.
#[derive(Debug)]
pub struct Alerts(Option<flowhound_sink::Dispatcher>);

impl Alerts {
    pub fn new(d: flowhound_sink::Dispatcher) -> Alerts {
        Alerts(Some(d))
    }
}

impl Output for Alerts {
    fn batch_done(&mut self, news: Option<IncidentNews<'_>>) -> Result<(), OutputError> {
        let Some(d) = self.0.as_mut() else { return Ok(()) };
        match news {
            Some(IncidentNews::Final(list)) => d.send(list),
            Some(IncidentNews::Live(c)) => {
                if !c.alerts.is_empty() {
                    d.send(&c.alerts);
                }
                let owed = crate::live::owed(&c.ended);
                if !owed.is_empty() {
                    d.send(&owed);
                }
            }
            None => {}
        }
        Ok(())
    }

    fn finish(&mut self, tally: &mut crate::Tally) -> Result<(), OutputError> {
        if let Some(d) = self.0.take() {
            tally.delivery = Some(d.finish(&tally.run_stats()));
        }
        Ok(())
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn csv_line(
    buf: &mut Vec<u8>,
    flow: u64,
    r: &FlowRecord,
    v: &Verdict,
    f: Option<&Finding>,
    suppressed: Option<&Entry>,
    classes: Option<&[String]>,
) {
    let _ = write!(
        buf,
        "{flow},{},{},{},{},{},{},{},{},{},{}",
        opt(r.start.map(|t| t.to_rfc3339())),
        opt(r.src),
        opt(r.dst),
        opt(r.src_port),
        opt(r.dst_port),
        opt(r.protocol),
        v.score,
        v.votes,
        v.severity.name(),
        v.confidence
    );
    for (s, f) in &v.models {
        let _ = write!(buf, ",{s},{f}");
    }
    let (label, cat) = match &r.truth {
        Some(t) => (if t.malicious { "malicious" } else { "benign" }, t.category.as_deref().unwrap_or("")),
        None => ("", ""),
    };
    let _ = write!(buf, ",{label},");
    flowhound_flow::write::csv_field(buf, cat);
    if classes.is_some() {
        buf.push(b',');
        flowhound_flow::write::csv_field(buf, predicted(v, classes).unwrap_or(""));
    }
    for t in [
        f.map(|f| f.class.as_ref()),
        f.and_then(|f| f.variant.as_deref()),
        f.and_then(|f| f.technique.as_deref()),
        f.map(|f| f.reason.as_str()),
    ] {
        buf.push(b',');
        flowhound_flow::write::csv_field(buf, t.unwrap_or(""));
    }
    let _ = write!(buf, ",{}", suppressed.is_some());
    buf.push(b'\n');
}

fn table_line(buf: &mut Vec<u8>, r: &FlowRecord, v: &Verdict, f: Option<&Finding>) {
    let time = r.start.map(|t| t.to_rfc3339()).unwrap_or_default();
    let _ = writeln!(
        buf,
        "{:<20} {:<39} {:<39} {:>5} {:>5} {:>6.3} {:>5} {:<8} {:<18} {}",
        time.get(..19).unwrap_or(&time),
        opt(r.src),
        opt(r.dst),
        opt(r.dst_port),
        r.protocol
            .and_then(flowhound_flow::record::protocol_name)
            .map(str::to_string)
            .unwrap_or_else(|| opt(r.protocol)),
        v.score,
        v.votes,
        v.severity.name(),
        f.map_or("", |f| f.class.as_ref()),
        f.map_or("", |f| f.reason.as_str())
    );
}

/// `1h 02m`, `41s`.
fn span(i: &Incident) -> String {
    match (i.first_seen, i.last_seen) {
        (Some(a), Some(b)) => {
            let s = (b - a) / 1_000_000;
            if s >= 3600 {
                format!("{}h {:02}m", s / 3600, s % 3600 / 60)
            } else if s >= 60 {
                format!("{}m {:02}s", s / 60, s % 60)
            } else {
                format!("{s}s")
            }
        }
        _ => "-".into(),
    }
}

pub fn incident_table_head() -> String {
    format!(
        "{:>4} {:<6} {:<18} {:<39} {:>7} {:>7} {:>6} {:<20} {:>8}  {}\n",
        "id", "sev", "class", "actor", "flows", "targets", "ports", "first seen", "span", "reason"
    )
}

pub fn incident_table_row(i: &Incident) -> String {
    let first = time(i.first_seen);
    let first = first.as_str().map_or("-", |t| t.get(..19).unwrap_or(t));
    format!(
        "{:>4} {:<6} {:<18} {:<39} {:>7} {:>7} {:>6} {:<20} {:>8}  {}\n",
        i.id,
        i.peak_severity.name(),
        i.class.as_ref(),
        i.actor.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
        i.flows,
        i.targets.len(),
        i.ports.len(),
        first,
        span(i),
        i.reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line torn by a killed run is ended before new lines are appended;
    /// a whole file and a new file are left as they are.
    #[test]
    fn appending_ends_a_torn_last_line_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (before, after) in [
            ("{\"a\":1}\n{\"b\":", "{\"a\":1}\n{\"b\":\n{\"c\":3}\n"),
            ("{\"a\":1}\n", "{\"a\":1}\n{\"c\":3}\n"),
            ("", "{\"c\":3}\n"),
        ] {
            let p = dir.path().join("out.jsonl");
            std::fs::write(&p, before).expect("write");
            let mut a = Appending::open(Some(&p)).expect("open");
            a.write_all(b"{\"c\":3}\n").expect("append");
            drop(a);
            assert_eq!(std::fs::read_to_string(&p).expect("read"), after, "after {before:?}");
        }
        let fresh = dir.path().join("new.jsonl");
        Appending::open(Some(&fresh)).expect("open").write_all(b"x\n").expect("append");
        assert_eq!(std::fs::read_to_string(&fresh).expect("read"), "x\n");
    }
}
