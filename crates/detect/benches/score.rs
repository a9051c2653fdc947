//! Scoring throughput of each detector and of the ensemble (both cores via
//! rayon), and fitting time, on 56-column rows like `train` makes from VPC logs.
//!
//! `cargo bench -p flowhound-detect --bench score`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowhound_detect::ensemble::{self, EnsembleParams};
use flowhound_detect::{Kind, Params};
use ndarray::Array2;
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

fn bench(c: &mut Criterion) {
    let d = 56;
    let train = rows(50_000, d, 1);
    let test = rows(16_384, d, 2);
    let mut g = c.benchmark_group("score");
    g.sample_size(10);
    g.throughput(Throughput::Elements(test.nrows() as u64));
    for k in Kind::ALL {
        let m = Params::default_for(k).fit(train.view(), 1).expect("fit");
        let mut out = vec![0.0; test.nrows()];
        g.bench_function(k.name(), |b| b.iter(|| m.score(test.view(), &mut out)));
    }
    let params: Vec<Params> = Kind::ALL.into_iter().map(Params::default_for).collect();
    let e = ensemble::fit(&params, &EnsembleParams::default(), train.view(), 1, &|_, _| {}).expect("fit");
    g.bench_function("ensemble_2_cores", |b| b.iter(|| e.judge(test.view()).expect("judge").len()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
