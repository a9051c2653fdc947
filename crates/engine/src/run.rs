//! The pipeline every run drives, and the one trait its results go to.
//!
//! A [`Pipeline`] takes scored batches (from files through
//! [`score_inputs`](crate::score_inputs), or from live sources through
//! [`watch`](crate::watch)) and, per flow: raises rule alerts and explains
//! (the [`Step`]), decides what is shown ([`Show`]), counts ([`Tally`]),
//! grows incidents, and hands the flow to every [`Output`]. After each batch
//! a live run settles its incidents on the event-time [`Clock`] (alerts,
//! updates, ends); a batch run ends them all at [`Pipeline::finish`].
//!
//! Outputs are where results go — flow files in three formats, the alert
//! sinks, the dashboard's store and live feed, evaluate's metrics — and
//! nothing else: what a flow *is* is decided here once.

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{Batch, DetectError, Verdict};
use flowhound_explain::{Allowlist, ExplainError, Finding, Incident, IncidentParams, Incidents};
use flowhound_flow::FlowRecord;

use crate::live::{self, Changes, Clock};
use crate::step::{finish_incidents, Show, Shown, Step};
use crate::tally::Tally;

/// What an output may fail with: its own error, boxed (a file, a store, a
/// network client).
pub type OutputError = Box<dyn std::error::Error + Send + Sync>;

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Explain(#[from] ExplainError),
    #[error(transparent)]
    Bundle(#[from] flowhound_detect::BundleError),
    #[error("{0}")]
    Output(OutputError),
}

/// One scored flow and what the run decided about it.
#[derive(Debug, Clone, Copy)]
pub struct Flow<'a> {
    /// Its number: position in the input (batch runs), arrival order (live).
    pub id: u64,
    pub record: &'a FlowRecord,
    pub verdict: &'a Verdict,
    /// Its explanation and threat class, when it is anomalous.
    pub finding: Option<&'a Finding>,
    pub shown: Shown<'a>,
    /// The raw feature row it was scored on.
    pub raw: &'a [f32],
    /// The model's input row (after preprocessing).
    pub input: &'a [f32],
}

/// What a batch did to the incidents.
#[derive(Debug, Clone, Copy)]
pub enum IncidentNews<'a> {
    /// Live: opened or grew worse (alert now), grew (update), ended.
    Live(&'a Changes),
    /// A batch run's end: every incident, finished.
    Final(&'a [Incident]),
}

/// Where a run's results go. Every method has a default that ignores what
/// it is given: an output implements what it needs.
pub trait Output {
    /// Before each batch: a newer allowlist, when this output keeps one
    /// that analysts edit while the run goes on (the dashboard).
    fn allowlist(&mut self) -> Option<Allowlist> {
        None
    }

    /// One scored flow, in order.
    fn flow(&mut self, _f: &Flow<'_>) -> Result<(), OutputError> {
        Ok(())
    }

    /// The batch's flows were all handed over; `news`: what happened to the
    /// incidents (a batch run's incidents come once, at the end).
    fn batch_done(&mut self, _news: Option<IncidentNews<'_>>) -> Result<(), OutputError> {
        Ok(())
    }

    /// The run is over; `tally` is final, and an output may add to it (the
    /// sinks' delivery summary).
    fn finish(&mut self, _tally: &mut Tally) -> Result<(), OutputError> {
        Ok(())
    }
}

/// The run's outputs, in the order they hear of each flow.
pub type Outputs<'o> = [&'o mut dyn Output];

fn each(outs: &mut Outputs<'_>, mut f: impl FnMut(&mut dyn Output) -> Result<(), OutputError>) -> Result<(), RunError> {
    for o in outs.iter_mut() {
        f(&mut **o).map_err(RunError::Output)?;
    }
    Ok(())
}

/// How incidents end.
#[derive(Debug, Clone, Copy)]
pub enum Ending {
    /// All at the end of the input; the digest (single low-severity flows no
    /// rule names) left out and counted, the rest numbered 1, 2, … (`detect`).
    AtEnd { digest: bool },
    /// On event time as the traffic goes on (`watch`).
    Live(Clock),
    /// Not here: another stage grows them (a worker group's scoring stage
    /// hands its findings to the stage keyed by actor).
    Elsewhere,
}

/// Scored batches → findings, decisions, counts and incidents → outputs.
#[derive(Debug)]
pub struct Pipeline<'m> {
    bundle: &'m Bundle,
    pub step: Step,
    pub show: Show,
    pub allow: Allowlist,
    pub incidents: Incidents,
    pub tally: Tally,
    ending: Ending,
    /// The next flow's number.
    pub next: u64,
}

impl<'m> Pipeline<'m> {
    pub fn new(
        bundle: &'m Bundle,
        step: Step,
        show: Show,
        allow: Allowlist,
        incidents: Incidents,
        ending: Ending,
    ) -> Self {
        Pipeline {
            bundle,
            step,
            show,
            allow,
            incidents,
            tally: Tally::new(bundle.ensemble.model_names()),
            ending,
            next: 0,
        }
    }

    pub fn bundle(&self) -> &'m Bundle {
        self.bundle
    }

    /// The event-time clock of a live run.
    pub fn clock(&self) -> Option<&Clock> {
        match &self.ending {
            Ending::Live(c) => Some(c),
            Ending::AtEnd { .. } | Ending::Elsewhere => None,
        }
    }

    /// Resumes a live run from a checkpoint: the next flow number and the watermark.
    pub fn restore(&mut self, next: u64, watermark: i64) {
        self.next = next;
        if let Ending::Live(c) = &mut self.ending {
            c.restore(watermark);
        }
    }

    /// One scored batch, through to the outputs; its flows are numbered on
    /// from the last.
    pub fn batch(&mut self, b: &Batch<'_>, outs: &mut Outputs<'_>) -> Result<(), RunError> {
        self.numbered(b, None, outs)
    }

    /// [`Pipeline::batch`] with the flows' numbers given (`ids`, one per
    /// flow): a worker group numbers flows where they were published.
    pub fn batch_numbered(&mut self, b: &Batch<'_>, ids: &[u64], outs: &mut Outputs<'_>) -> Result<(), RunError> {
        self.numbered(b, Some(ids), outs)
    }

    fn numbered(&mut self, b: &Batch<'_>, ids: Option<&[u64]>, outs: &mut Outputs<'_>) -> Result<(), RunError> {
        for o in outs.iter_mut() {
            if let Some(a) = o.allowlist() {
                self.allow = a;
            }
        }
        let e = self.step.flagged(self.bundle, b)?;
        let (b, found) = (&e.batch(b), &e.found);
        let (wr, wi) = (b.raw_width(), b.input.len() / b.recs.len().max(1));
        for (i, ((r, v), f)) in b.iter().zip(found).enumerate() {
            let id = ids.and_then(|ids| ids.get(i).copied()).unwrap_or(self.next);
            self.next += 1;
            if let Ending::Live(c) = &mut self.ending {
                self.tally.late += u64::from(c.observe(r.start.map(|t| t.micros())));
            }
            let shown = self.show.decide(&self.allow, r, v, f.is_some());
            self.tally.add(r, v, f.as_ref(), shown.entry.is_some());
            let grows = shown.grows_incident() && !matches!(self.ending, Ending::Elsewhere);
            if let (Some(f), true) = (f, grows) {
                self.incidents.push(id, r, v, f, shown.entry.is_some());
            }
            let flow = Flow {
                id,
                record: r,
                verdict: v,
                finding: f.as_ref(),
                shown,
                raw: &b.raw[i * wr..(i + 1) * wr],
                input: &b.input[i * wi..(i + 1) * wi],
            };
            each(outs, |o| o.flow(&flow))?;
        }
        match &self.ending {
            Ending::Live(clock) => {
                let c = live::settle(&mut self.incidents, clock);
                self.count(&c);
                each(outs, |o| o.batch_done(Some(IncidentNews::Live(&c))))
            }
            Ending::AtEnd { .. } | Ending::Elsewhere => each(outs, |o| o.batch_done(None)),
        }
    }

    fn count(&mut self, c: &Changes) {
        let t = &mut self.tally;
        t.alerts += (c.alerts.len() + live::owed(&c.ended).len()) as u64;
        for i in &c.ended {
            t.incidents_ended[i.peak_severity as usize] += 1;
        }
        t.incidents_open = self.incidents.open_count() as u64;
    }

    /// Ends the run: a batch run finishes its incidents (into the tally); a
    /// live run ends every open one now. Then the outputs finish.
    pub fn finish(&mut self, outs: &mut Outputs<'_>) -> Result<(), RunError> {
        match self.ending {
            Ending::AtEnd { digest } => {
                let incidents = std::mem::replace(&mut self.incidents, Incidents::new(IncidentParams::default()));
                self.tally.incidents = incidents.finish();
                if digest {
                    self.tally.digest = finish_incidents(&mut self.tally.incidents);
                }
                let list = std::mem::take(&mut self.tally.incidents);
                let r = each(outs, |o| o.batch_done(Some(IncidentNews::Final(&list))));
                self.tally.incidents = list;
                r?;
            }
            Ending::Elsewhere => {}
            Ending::Live(_) => {
                let c = Changes { ended: live::drain(&mut self.incidents), ..Default::default() };
                self.count(&c);
                each(outs, |o| o.batch_done(Some(IncidentNews::Live(&c))))?;
            }
        }
        let mut tally = std::mem::take(&mut self.tally);
        let r = each(outs, |o| o.finish(&mut tally));
        self.tally = tally;
        r
    }
}
