//! Inputs to scored batches.

use flowhound_detect::{Batch, Batches, DetectError};
use flowhound_flow::FlowRecord;
use flowhound_source::{Input, ScanEvents, ScanOptions, ScanReport};

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
