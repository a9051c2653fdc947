//! Inputs to scored batches.

use flowhound_detect::run::BATCH;
use flowhound_detect::{Batch, Batches, DetectError};
use flowhound_source::{Input, ScanEvents, ScanOptions, ScanReport};

use crate::run::{Outputs, Pipeline, RunError};

/// A batch run: scores `inputs` through the pipeline into the outputs and
/// ends it (incidents finished, outputs finished). The scan's report says
/// which inputs failed; the tally counts rejected lines and warns when the
/// input was far from time order.
pub fn run_files(
    p: &mut Pipeline<'_>,
    inputs: &[Input],
    opts: &ScanOptions,
    events: &mut dyn ScanEvents,
    outs: &mut Outputs<'_>,
) -> Result<ScanReport, RunError> {
    let bundle = p.bundle();
    let (report, order_warning) = score_files(bundle, inputs, opts, events, &mut |b: &Batch<'_>| p.batch(b, outs))?;
    p.tally.rejected = report.rejected;
    p.tally.order_warning = order_warning;
    p.finish(outs)?;
    Ok(report)
}

/// Scores `inputs` in batches of `detect`'s size; `each` gets every scored
/// batch in input order. The scan's report, and a warning when the input was
/// far from time order.
pub fn score_files<E: From<DetectError> + From<flowhound_detect::BundleError>>(
    bundle: &flowhound_detect::bundle::Bundle,
    inputs: &[Input],
    opts: &ScanOptions,
    events: &mut dyn ScanEvents,
    each: &mut impl FnMut(&Batch<'_>) -> Result<(), E>,
) -> Result<(ScanReport, Option<String>), E> {
    let mut batches = Batches::new(bundle, BATCH)?;
    let report = score_inputs(&mut batches, inputs, opts, events, each)?;
    let warning = batches.order_warning(report.records);
    Ok((report, warning))
}

/// Scans `inputs` in order and scores them in batches; `each` gets every
/// scored batch in input order. The first error from scoring or from `each`
/// stops the work; otherwise the scan's report (per-file problems included).
pub fn score_inputs<E: From<DetectError>>(
    batches: &mut Batches<'_>,
    inputs: &[Input],
    opts: &ScanOptions,
    events: &mut dyn ScanEvents,
    each: &mut impl FnMut(&Batch<'_>) -> Result<(), E>,
) -> Result<ScanReport, E> {
    let mut error: Option<E> = None;
    let report = flowhound_source::scan_records(inputs, opts, events, |recs| {
        if error.is_none() {
            error = batches.push(&recs, each).err();
        }
    });
    if error.is_none() {
        error = batches.flush(each).err();
    }
    match error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// `detect`'s job, for every front end that runs it (the CLI, the Lambda):
/// score inputs with a model, write the flows the run shows (or its
/// incidents) in `format`, and alert the incidents.
#[derive(Debug)]
pub struct Detect<'m> {
    pub bundle: &'m flowhound_detect::bundle::Bundle,
    pub findings: crate::config::Findings,
    pub show: crate::Show,
    pub format: crate::write::Format,
    pub alerts: Option<flowhound_sink::Dispatcher>,
}

impl Detect<'_> {
    /// Runs it into `out` (finished when the run is); the tally (with the
    /// delivery summary) and the scan's report (failed inputs).
    pub fn run(
        self,
        out: crate::outfile::OutFile,
        inputs: &[Input],
        opts: &ScanOptions,
        events: &mut dyn ScanEvents,
    ) -> Result<(crate::Tally, ScanReport), RunError> {
        let Detect { bundle, findings, show, format, alerts } = self;
        let names = bundle.ensemble.model_names();
        let classes = bundle.ensemble.supervised().map(|s| s.classes.clone());
        let mut writer = crate::write::FlowWriter::new(out, format, names, classes, show.incidents, false)
            .map_err(|e| RunError::Output(e.into()))?;
        let mut alerts = alerts.map(crate::write::Alerts::new);
        let step = crate::Step::new(findings.explainer);
        let ending = crate::Ending::AtEnd { digest: true };
        let mut p = Pipeline::new(bundle, step, show, findings.allow, findings.incidents, ending);
        let mut outs: Vec<&mut dyn crate::Output> = vec![&mut writer];
        outs.extend(alerts.as_mut().map(|d| d as &mut dyn crate::Output));
        let report = run_files(&mut p, inputs, opts, events, &mut outs)?;
        Ok((std::mem::take(&mut p.tally), report))
    }
}
