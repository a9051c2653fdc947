//! Inputs to scored batches.

use flowhound_detect::run::BATCH;
use flowhound_detect::{Batch, Batches, DetectError};
use flowhound_flow::FlowRecord;
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
    let mut batches = Batches::new(p.bundle(), BATCH)?;
    let report = score_inputs(&mut batches, inputs, opts, events, &mut |b: &Batch<'_>| p.batch(b, outs))?;
    p.tally.rejected = report.rejected;
    p.tally.order_warning = batches.order_warning(report.records);
    p.finish(outs)?;
    Ok(report)
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
    let report = flowhound_source::scan(
        inputs,
        opts,
        events,
        |recs: &[FlowRecord]| recs.to_vec(),
        |recs| {
            if error.is_none() {
                error = batches.push(&recs, each).err();
            }
        },
    );
    if error.is_none() {
        error = batches.flush(each).err();
    }
    match error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}
