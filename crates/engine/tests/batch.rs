//! The batch path end to end without a front end: a generated day is
//! written as VPC Flow Logs text, scanned, scored, raised, explained,
//! decided, counted and grouped into incidents by the engine's own pieces,
//! as `detect` drives them.

mod common;

use std::sync::Arc;

use common::{day, model};
use flowhound_detect::bundle::Bundle;
use flowhound_engine::write::{FlowWriter, Format};
use flowhound_engine::{run_files, Ending, Pipeline, Show, Step, Tally};
use flowhound_explain::{Allowlist, ExplainParams, Explainer, Incident, IncidentParams, Incidents};
use flowhound_flow::labels::LabelTable;
use flowhound_source::{Input, ScanOptions};

struct Run {
    tally: Tally,
    incidents: Vec<Incident>,
    /// The JSON lines written.
    lines: Vec<serde_json::Value>,
}

fn run(bundle: &Bundle, path: &std::path::Path, labels: &[u8], allow: &Allowlist) -> Run {
    let opts = ScanOptions {
        labels: Some(Arc::new(LabelTable::parse(labels).unwrap_or_else(|e| panic!("{e}")))),
        ..Default::default()
    };
    let step = Step::new(Explainer::new(bundle, None, &ExplainParams { top: 3 }).unwrap_or_else(|e| panic!("{e}")));
    let incidents = Incidents::new(IncidentParams { samples: 2, ..Default::default() });
    let ending = Ending::AtEnd { digest: true };
    let mut p = Pipeline::new(bundle, step, Show::default(), allow.clone(), incidents, ending);
    let names = bundle.ensemble.model_names();
    let mut w = FlowWriter::new(Vec::new(), Format::Jsonl, names, None, false, false).unwrap_or_else(|e| panic!("{e}"));
    let report = run_files(&mut p, &[Input::Path(path.to_path_buf())], &opts, &mut (), &mut [&mut w])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tally = std::mem::take(&mut p.tally);
    assert_eq!(report.records, tally.flows);
    let text = String::from_utf8(w.into_inner()).unwrap_or_else(|e| panic!("{e}"));
    let lines = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let incidents = std::mem::take(&mut tally.incidents);
    Run { tally, incidents, lines }
}

#[test]
fn a_generated_day_is_scored_counted_and_grouped_worst_first() {
    let bundle = model();
    let recs = day(20_000, 1);
    let (text, labels) = flowhound_synth::vpc_with_labels(&recs);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("day1.log");
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));

    let a = run(&bundle, &path, &labels, &Allowlist::default());
    let t = &a.tally;
    assert_eq!(t.flows, recs.len() as u64);
    assert_eq!(t.by_severity.iter().sum::<u64>(), t.flows);
    assert_eq!(t.labeled, t.flows);
    assert!(t.malicious > 0 && t.anomalies() > 0);
    // Attacks are flagged far more often than normal traffic.
    let recall = t.malicious_flagged as f64 / t.malicious as f64;
    let fpr = t.benign_flagged as f64 / (t.labeled - t.malicious) as f64;
    assert!(recall > 10.0 * fpr, "recall {recall:.3} vs false-positive rate {fpr:.4}");
    assert!(fpr < 0.02, "false-positive rate {fpr:.4} at the default budget");
    assert!(t.by_class.get("port_scan").copied().unwrap_or(0) > 0, "{:?}", t.by_class);
    assert_eq!(t.by_class.values().sum::<u64>(), t.anomalies(), "every anomaly has a class");
    let stats = t.run_stats();
    assert_eq!(stats.anomalies, [t.by_severity[1], t.by_severity[2], t.by_severity[3]]);
    // Incidents: numbered in order, no digest left, a named one first.
    assert!(!a.incidents.is_empty());
    assert!(a.incidents.iter().enumerate().all(|(k, i)| i.id == k as u64 + 1 && !i.digest));
    assert_ne!(&*a.incidents[0].class, flowhound_explain::OTHER);
    // Every anomaly is written once, in input order, with its class.
    assert_eq!(a.lines.len() as u64, t.anomalies());
    let ids: Vec<u64> = a.lines.iter().map(|l| l["flow"].as_u64().unwrap_or(u64::MAX)).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids.last() < Some(&t.flows), "flow ids in order");
    assert!(a.lines.iter().all(|l| l["severity"] != "none" && l["threat_class"].is_string()));

    // The allowlist: the first incident's actor allowed → its flows are
    // counted as suppressed and grow no incident.
    let actor = a.incidents[0].actor.unwrap_or_else(|| panic!("the first incident names an actor"));
    let toml = format!("[[allow]]\ncidr = \"{actor}\"\nreason = \"known\"\n");
    let allow = Allowlist::parse(&toml, 0).unwrap_or_else(|e| panic!("{e}"));
    let b = run(&bundle, &path, &labels, &allow);
    assert_eq!(b.tally.anomalies(), t.anomalies(), "suppressing hides, it does not unscore");
    assert!(b.tally.suppressed > 0);
    assert_eq!(b.lines.len() as u64, t.anomalies() - b.tally.suppressed, "suppressed flows are not written");
    assert!(b.incidents.iter().all(|i| i.actor != Some(actor)), "no incident for the allowed actor");
}
