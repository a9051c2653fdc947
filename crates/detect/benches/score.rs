//! Scoring throughput of each detector and of the ensemble (both cores via
//! rayon), and fitting time, on 56-column rows like `train` makes from VPC logs:
//! `score/*` on a mixture of Gaussian blobs (the rows `bench/compare_score.py`
//! gives scikit-learn), `flows/*` on the model input of generated VPC flows
//! (what `detect` scores: one-hot blocks, flags, heavy-tailed counts — a few
//! hundred support vectors where the blobs make nearly every row one).
//!
//! `cargo bench -p flowhound-detect --bench score`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowhound_detect::ensemble::{self, EnsembleParams};
use flowhound_detect::run::{Scorer, Trainer};
use flowhound_detect::{Kind, Params};
use flowhound_features::{ExtractorParams, PipelineParams};
use flowhound_flow::FlowRecord;
use flowhound_synth::GenParams;
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};

/// Clustered rows: a mixture of 40 blobs, like flows of a few dozen services.
/// The blobs' centres are the same for every seed (training and scored rows
/// come from one traffic, as in `bench/compare_score.py`); the seed draws
/// which blob and the spread around it.
fn rows(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut c = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let centers: Vec<Vec<f32>> = (0..40).map(|_| (0..d).map(|_| c.gen_range(-2.0..2.0)).collect()).collect();
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, d));
    for i in 0..n {
        let c = &centers[r.gen_range(0..centers.len())];
        for j in 0..d {
            x[[i, j]] = c[j] + r.gen_range(-0.3..0.3);
        }
    }
    x
}

fn defaults() -> Vec<Params> {
    Kind::ALL.into_iter().map(Params::default_for).collect()
}

/// Each detector (one core) and the ensemble (both) fitted on `train`,
/// scoring `test`, as benchmark group `name`.
fn detectors(c: &mut Criterion, name: &str, train: ArrayView2<'_, f32>, test: ArrayView2<'_, f32>) {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.throughput(Throughput::Elements(test.nrows() as u64));
    for k in Kind::ALL {
        let m = Params::default_for(k).fit(train, 1).expect("fit");
        let mut out = vec![0.0; test.nrows()];
        g.bench_function(k.name(), |b| b.iter(|| m.score(test, &mut out)));
    }
    let e = ensemble::fit(&defaults(), &EnsembleParams::default(), train, 1, &|_, _| {}).expect("fit");
    g.bench_function("ensemble_2_cores", |b| b.iter(|| e.judge(test).expect("judge").len()));
    g.finish();
}

fn bench(c: &mut Criterion) {
    let d = 56;
    detectors(c, "score", rows(50_000, d, 1).view(), rows(16_384, d, 2).view());
}

/// Model input (the fitted pipeline's output) of 216,384 generated VPC
/// flows in order, row-major, and its width: features need the traffic
/// before each flow, so all are scored in sequence once.
fn flow_rows() -> (Vec<f32>, usize) {
    let mut recs: Vec<FlowRecord> = Vec::new();
    let gen = GenParams { flows: 216_384, ..GenParams::default() };
    flowhound_synth::generate(&gen, |b| {
        recs.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .expect("generate");
    let mut t = Trainer::new(ExtractorParams::default(), true, None, None).expect("trainer");
    t.push(&recs[..200_000]);
    let (bundle, _) = t
        .finish(&PipelineParams::default(), &defaults(), &EnsembleParams::default(), 1, Default::default(), &|_, _| {})
        .expect("train");
    let mut s = Scorer::new(&bundle).expect("scorer");
    let mut rows = Vec::new();
    for chunk in recs.chunks(16_384) {
        s.score(chunk).expect("score");
        rows.extend_from_slice(s.last_rows().1);
    }
    (rows, bundle.pipeline.output_width())
}

fn bench_flows(c: &mut Criterion) {
    let (rows, d) = flow_rows();
    let all = Array2::from_shape_vec((rows.len() / d, d), rows).expect("shape");
    let (train, test) = all.view().split_at(ndarray::Axis(0), 200_000);
    detectors(c, "flows", train, test);
}

criterion_group!(benches, bench, bench_flows);
criterion_main!(benches);
