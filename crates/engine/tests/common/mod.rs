//! A model trained on a generated day, and more days to score with it.

use std::time::Duration;

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{EnsembleParams, Kind, Params, Trainer};
use flowhound_features::{ExtractorParams, PipelineParams};
use flowhound_flow::{FlowRecord, Timestamp};
use flowhound_synth::GenParams;

/// 2026-11-02T00:00:00Z
const START: i64 = 1_793_577_600;

pub fn day(flows: u64, d: i64) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    let p = GenParams { flows, seed: 5, start: Timestamp((START + d * 86_400) * 1_000_000), ..Default::default() };
    flowhound_synth::generate(&p, |b| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .unwrap_or_else(|()| panic!("generate"));
    out
}

pub fn model() -> Bundle {
    let mut t = Trainer::new(ExtractorParams::default(), true, None, None).unwrap_or_else(|e| panic!("{e}"));
    t.push(&day(30_000, 0));
    let dets: Vec<Params> =
        [Kind::Iforest, Kind::Lof, Kind::Ocsvm, Kind::Autoencoder].map(Params::default_for).to_vec();
    let (b, _) = t
        .finish(&PipelineParams::default(), &dets, &EnsembleParams::default(), 7, Duration::ZERO, &|_, _| {})
        .unwrap_or_else(|e| panic!("{e}"));
    b
}
