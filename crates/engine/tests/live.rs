//! The live path without the binary: a generated day written to a file is
//! followed by the engine's `Watch`, scored in arrival order, its incidents
//! alerted and ended on event time, its offsets and windows saved — and a
//! restart over the same state reads nothing again.

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::{day, model};
use flowhound_engine::live::{Changes, Clock};
use flowhound_engine::watch::{Note, Watch, WatchParams};
use flowhound_engine::write::{FlowWriter, Format};
use flowhound_engine::{Ending, IncidentNews, Output, OutputError, Pipeline, Show, Step, Tally};
use flowhound_explain::{Allowlist, ExplainParams, Explainer, IncidentParams, Incidents};
use flowhound_source::live::Spec;

/// What the incidents did, batch by batch.
#[derive(Default)]
struct Events {
    /// (incident id, "alert" | "ended", the batch it came after).
    log: Vec<(u64, &'static str, usize)>,
    batches: usize,
    finished: bool,
}

impl Output for Events {
    fn batch_done(&mut self, news: Option<IncidentNews<'_>>) -> Result<(), OutputError> {
        let Some(IncidentNews::Live(Changes { alerts, ended, .. })) = news else {
            return Err("a live run reports incidents after every batch".into());
        };
        self.batches += 1;
        let b = self.batches;
        self.log.extend(alerts.iter().map(|i| (i.id, "alert", b)));
        self.log.extend(ended.iter().map(|i| (i.id, "ended", b)));
        Ok(())
    }

    fn finish(&mut self, _t: &mut Tally) -> Result<(), OutputError> {
        self.finished = true;
        Ok(())
    }
}

fn params(source: &std::path::Path, state: &std::path::Path) -> WatchParams {
    WatchParams {
        sources: vec![Spec::parse(&format!("file:{}", source.display())).unwrap_or_else(|e| panic!("{e}"))],
        format: None,
        flush: Duration::from_millis(50),
        queue: 8,
        poll: Duration::from_millis(20),
        s3_poll: Duration::from_secs(30),
        template_timeout: Duration::from_secs(60),
        state_dir: state.to_path_buf(),
        idle_exit: Some(Duration::from_millis(600)),
        checkpoint: Duration::from_millis(200),
        status: Duration::ZERO,
        batch: 4_096,
    }
}

#[test]
fn a_followed_day_is_scored_alerted_ended_and_resumed_without_repeats() {
    let bundle = model();
    let recs = day(12_000, 1);
    let (text, _) = flowhound_synth::vpc_with_labels(&recs);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("flows.log");
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let pipeline = |lateness: u64| {
        let step =
            Step::new(Explainer::new(&bundle, None, &ExplainParams::default()).unwrap_or_else(|e| panic!("{e}")));
        let inc = Incidents::new(IncidentParams { gap_secs: 300, period_secs: 0, samples: 2, ..Default::default() });
        let ending = Ending::Live(Clock::new(Duration::from_secs(lateness)));
        Pipeline::new(&bundle, step, Show::default(), Allowlist::default(), inc, ending)
    };
    let mut notes = Vec::new();
    let stop = AtomicBool::new(false);

    let watch =
        Watch::start(params(&path, &state), pipeline(30), &mut |n| notes.push(n)).unwrap_or_else(|e| panic!("{e}"));
    let mut w = FlowWriter::new(Vec::new(), Format::Jsonl, bundle.ensemble.model_names(), None, false, true)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ev = Events::default();
    let t = watch.run(&mut [&mut w, &mut ev], &stop, &mut |n| notes.push(n)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.flows, recs.len() as u64, "{notes:?}");
    assert!(ev.finished && ev.batches >= 3, "{} batches", ev.batches);
    // Findings: every anomaly written once, numbered in arrival order.
    let text = String::from_utf8(w.into_inner()).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}"))["flow"]
                .as_u64()
                .unwrap_or(u64::MAX)
        })
        .collect();
    assert_eq!(ids.len() as u64, t.anomalies());
    assert!(ids.windows(2).all(|p| p[0] < p[1]) && ids.last() < Some(&t.flows));
    // Incidents: each ends once, after its first alert when it had one;
    // none is left open, and the counts agree with the log.
    let ended: Vec<u64> = ev.log.iter().filter(|e| e.1 == "ended").map(|e| e.0).collect();
    assert!(!ended.is_empty());
    let mut unique = ended.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ended.len(), "an incident ends once");
    for (k, (id, what, _)) in ev.log.iter().enumerate() {
        if *what == "alert" {
            assert!(!ev.log[..k].iter().any(|e| e.0 == *id && e.1 == "ended"), "incident {id} alerted after it ended");
        }
    }
    let alerted = ev.log.iter().filter(|e| e.1 == "alert").count() as u64;
    assert!(alerted > 0 && t.alerts >= alerted, "{alerted} alerts logged, {} counted", t.alerts);
    assert_eq!(t.incidents_ended.iter().sum::<u64>(), ended.len() as u64);
    assert_eq!(t.incidents_open, 0, "the drain ends every incident");
    // Event time ended incidents before the drain (the last report): a
    // day of traffic with a 5-minute gap does not keep them open to the end.
    let on_time = ev.log.iter().filter(|e| e.1 == "ended" && e.2 < ev.batches).count();
    assert!(on_time > 0, "{:?}", ev.log);

    // Restarted over the same state: the offsets say all was read, the
    // windows come back, nothing is scored again.
    let before = notes.len();
    let watch =
        Watch::start(params(&path, &state), pipeline(30), &mut |n| notes.push(n)).unwrap_or_else(|e| panic!("{e}"));
    let mut ev2 = Events::default();
    let t2 = watch.run(&mut [&mut ev2], &stop, &mut |n| notes.push(n)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t2.flows, 0, "nothing read twice");
    let restored = format!("watch: window state restored ({} flows scored before)", recs.len());
    assert!(notes[before..].contains(&Note::Info(restored)), "{:?}", &notes[before..]);
}
