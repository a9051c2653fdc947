// Shared by the targets: feed every line to a reader, then check what came out.
use flowhound_flow::{FlowReader, FlowRecord, Format};

pub fn run(data: &[u8], format: Format) {
    let mut reader = format.reader();
    let mut out: Vec<FlowRecord> = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        let before = out.len();
        match reader.read_line(line, &mut out) {
            Ok(flowhound_flow::LineKind::Record) => assert_eq!(out.len(), before + 1),
            Ok(_) | Err(_) => assert_eq!(out.len(), before, "no record from a non-record line"),
        }
    }
    for r in &out {
        // Invariants every reader promises.
        if let (Some(s), Some(e)) = (r.start, r.end) {
            assert!(e >= s, "end before start");
        }
        if let (Some(f), Some(b), Some(t)) = (r.bytes.fwd, r.bytes.bwd, r.bytes.total) {
            assert_eq!(t, f.saturating_add(b));
        }
        let mut buf = Vec::new();
        flowhound_flow::write::write_json(r, &mut buf);
    }
}
