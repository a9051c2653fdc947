//! The batch path end to end without a front end: a generated day is
//! written as VPC Flow Logs text, scanned, scored, raised, explained,
//! decided, counted and grouped into incidents by the engine's own pieces,
//! as `detect` drives them.

use std::sync::Arc;
use std::time::Duration;

use flowhound_detect::bundle::Bundle;
use flowhound_detect::run::BATCH;
use flowhound_detect::{Batch, Batches, DetectError, EnsembleParams, Kind, Params, Trainer};
use flowhound_engine::{finish_incidents, score_inputs, Show, Step, Tally};
use flowhound_explain::{Allowlist, ExplainParams, Explainer, Incident, IncidentParams, Incidents};
use flowhound_features::{ExtractorParams, PipelineParams};
use flowhound_flow::labels::LabelTable;
use flowhound_flow::{FlowRecord, Timestamp};
use flowhound_source::{Input, ScanOptions};
use flowhound_synth::GenParams;

/// 2026-11-02T00:00:00Z
const START: i64 = 1_793_577_600;

fn day(flows: u64, d: i64) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    let p = GenParams { flows, seed: 5, start: Timestamp((START + d * 86_400) * 1_000_000), ..Default::default() };
    flowhound_synth::generate(&p, |b| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .unwrap_or_else(|()| panic!("generate"));
    out
}

fn model() -> Bundle {
    let mut t = Trainer::new(ExtractorParams::default(), true, None, None).unwrap_or_else(|e| panic!("{e}"));
    t.push(&day(30_000, 0));
    let dets: Vec<Params> =
        [Kind::Iforest, Kind::Lof, Kind::Ocsvm, Kind::Autoencoder].map(Params::default_for).to_vec();
    let (b, _) = t
        .finish(&PipelineParams::default(), &dets, &EnsembleParams::default(), 7, Duration::ZERO, &|_, _| {})
        .unwrap_or_else(|e| panic!("{e}"));
    b
}

struct Run {
    tally: Tally,
    incidents: Vec<Incident>,
}

fn run(bundle: &Bundle, path: &std::path::Path, labels: &[u8], allow: &Allowlist) -> Run {
    let opts = ScanOptions {
        labels: Some(Arc::new(LabelTable::parse(labels).unwrap_or_else(|e| panic!("{e}")))),
        ..Default::default()
    };
    let mut step = Step::new(Explainer::new(bundle, None, &ExplainParams { top: 3 }).unwrap_or_else(|e| panic!("{e}")));
    let show = Show::default();
    let mut tally = Tally::new(bundle.ensemble.model_names());
    let mut incidents = Incidents::new(IncidentParams { samples: 2, ..Default::default() });
    let mut batches = Batches::new(bundle, BATCH).unwrap_or_else(|e| panic!("{e}"));
    let mut each = |b: &Batch<'_>| -> Result<(), DetectError> {
        let e = step.flagged(bundle, b).unwrap_or_else(|e| panic!("{e}"));
        for ((r, v), f) in e.batch(b).iter().zip(&e.found) {
            let flow = tally.flows;
            let s = show.decide(allow, r, v, f.is_some());
            tally.add(r, v, f.as_ref(), s.entry.is_some());
            if let (Some(f), true) = (f, s.grows_incident()) {
                incidents.push(flow, r, v, f, s.entry.is_some());
            }
        }
        Ok(())
    };
    let report = score_inputs(&mut batches, &[Input::Path(path.to_path_buf())], &opts, &mut (), &mut each)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.records, tally.flows);
    let mut list = incidents.finish();
    tally.digest = finish_incidents(&mut list);
    Run { tally, incidents: list }
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

    // The allowlist: the first incident's actor allowed → its flows are
    // counted as suppressed and grow no incident.
    let actor = a.incidents[0].actor.unwrap_or_else(|| panic!("the first incident names an actor"));
    let toml = format!("[[allow]]\ncidr = \"{actor}\"\nreason = \"known\"\n");
    let allow = Allowlist::parse(&toml, 0).unwrap_or_else(|e| panic!("{e}"));
    let b = run(&bundle, &path, &labels, &allow);
    assert_eq!(b.tally.anomalies(), t.anomalies(), "suppressing hides, it does not unscore");
    assert!(b.tally.suppressed > 0);
    assert!(b.incidents.iter().all(|i| i.actor != Some(actor)), "no incident for the allowed actor");
}
