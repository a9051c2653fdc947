//! Random Forest crates against flowhound's forest on the same rows:
//!
//!     flowhound features TEST.csv -o features.csv -q
//!     cargo run --release --manifest-path bench/rf-compare/Cargo.toml -- features.csv [--ours-only]
//!
//! 75/25 seeded split of the rows; 100 trees each; fit time, prediction
//! throughput, accuracy and macro-F1 over the classes (benign + categories).

use std::time::Instant;

use linfa::prelude::*;
use ndarray::{Array1, Array2};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// `flowhound features` CSV → numeric feature matrix (trees need no
/// scaling; text columns are left out, missing values are 0) and class ids
/// (benign = 0, attack categories in order of first appearance).
fn read(path: &str) -> (Array2<f32>, Vec<usize>, Vec<String>) {
    const KEYS: [&str; 6] = ["time", "src", "dst", "src_port", "dst_port", "protocol"];
    let mut r = csv::Reader::from_path(path).unwrap();
    let head: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let col = |n: &str| head.iter().position(|h| h == n).unwrap();
    let (mal, cat) = (col("malicious"), col("category"));
    let records: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
    let numeric: Vec<usize> = (0..head.len())
        .filter(|&j| j != mal && j != cat && !KEYS.contains(&head[j].as_str()))
        .filter(|&j| records.iter().all(|r| r[j].is_empty() || r[j].parse::<f32>().is_ok()))
        .collect();
    let x = Array2::from_shape_fn((records.len(), numeric.len()), |(i, j)| {
        let v = records[i][numeric[j]].parse::<f32>().unwrap_or(0.0);
        if v.is_finite() { v } else { 0.0 }
    });
    let mut names = vec!["benign".to_string()];
    let y = records
        .iter()
        .map(|r| {
            if &r[mal] != "true" {
                return 0;
            }
            let c = if r[cat].is_empty() { "unknown" } else { &r[cat] };
            names.iter().position(|n| n == c).unwrap_or_else(|| {
                names.push(c.to_string());
                names.len() - 1
            })
        })
        .collect();
    (x, y, names)
}

fn macro_f1(y: &[usize], p: &[usize], k: usize) -> (f64, f64) {
    let mut f1s = Vec::new();
    let acc = y.iter().zip(p).filter(|(a, b)| a == b).count() as f64 / y.len() as f64;
    for c in 0..k {
        let tp = y.iter().zip(p).filter(|(a, b)| **a == c && **b == c).count() as f64;
        let fp = y.iter().zip(p).filter(|(a, b)| **a != c && **b == c).count() as f64;
        let fn_ = y.iter().zip(p).filter(|(a, b)| **a == c && **b != c).count() as f64;
        if tp + fn_ == 0.0 {
            continue;
        }
        let pr = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
        let re = tp / (tp + fn_);
        f1s.push(if pr + re > 0.0 { 2.0 * pr * re / (pr + re) } else { 0.0 });
    }
    (acc, f1s.iter().sum::<f64>() / f1s.len() as f64)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (x, y, names) = read(&a[1]);
    let k = names.len();
    let mut idx: Vec<usize> = (0..x.nrows()).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(42));
    let cut = idx.len() * 3 / 4;
    let (tr, te) = idx.split_at(cut);
    let xtr = x.select(ndarray::Axis(0), tr);
    let xte = x.select(ndarray::Axis(0), te);
    let ytr: Vec<usize> = tr.iter().map(|i| y[*i]).collect();
    let yte: Vec<usize> = te.iter().map(|i| y[*i]).collect();
    println!("train {} test {} features {} classes {k}", xtr.nrows(), xte.nrows(), x.ncols());

    // flowhound
    {
        let yy: Vec<u16> = ytr.iter().map(|v| *v as u16).collect();
        let t = Instant::now();
        let f = flowhound_detect::forest::ForestParams::default().fit(xtr.view(), &yy, k, 42).unwrap();
        let fit = t.elapsed();
        let t = Instant::now();
        let pr = f.predict_proba(xte.view());
        let pred = t.elapsed();
        let p: Vec<usize> = pr.chunks(k).map(|r| (0..k).max_by(|a, b| r[*a].total_cmp(&r[*b])).unwrap()).collect();
        let (acc, f1) = macro_f1(&yte, &p, k);
        println!("flowhound forest (2 cores): fit {:.2} s, predict {:.0} rows/s, accuracy {acc:.4}, macro-F1 {f1:.4}", fit.as_secs_f64(), xte.nrows() as f64 / pred.as_secs_f64());
        let t = Instant::now();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let f = pool.install(|| flowhound_detect::forest::ForestParams::default().fit(xtr.view(), &yy, k, 42).unwrap());
        let fit = t.elapsed();
        let t = Instant::now();
        let _ = pool.install(|| f.predict_proba(xte.view()));
        println!("flowhound forest (1 core): fit {:.2} s, predict {:.0} rows/s", fit.as_secs_f64(), xte.nrows() as f64 / t.elapsed().as_secs_f64());
    }
    // `--ours-only`: the crates' numbers take minutes (linfa-ensemble ~4 on
    // UNSW-NB15) and do not change when our forest does.
    if a.get(2).is_some_and(|s| s == "--ours-only") {
        return;
    }
    // smartcore
    {
        use smartcore::ensemble::random_forest_classifier::{RandomForestClassifier, RandomForestClassifierParameters};
        use smartcore::linalg::basic::matrix::DenseMatrix;
        let rows: Vec<Vec<f64>> = xtr.outer_iter().map(|r| r.iter().map(|v| *v as f64).collect()).collect();
        let m = DenseMatrix::from_2d_vec(&rows).unwrap();
        let yy: Vec<u32> = ytr.iter().map(|v| *v as u32).collect();
        let t = Instant::now();
        let params = RandomForestClassifierParameters::default().with_n_trees(100).with_seed(42);
        let rf = RandomForestClassifier::fit(&m, &yy, params).unwrap();
        let fit = t.elapsed();
        let rows: Vec<Vec<f64>> = xte.outer_iter().map(|r| r.iter().map(|v| *v as f64).collect()).collect();
        let mt = DenseMatrix::from_2d_vec(&rows).unwrap();
        let t = Instant::now();
        let p: Vec<u32> = rf.predict(&mt).unwrap();
        let pred = t.elapsed();
        let p: Vec<usize> = p.iter().map(|v| *v as usize).collect();
        let (acc, f1) = macro_f1(&yte, &p, k);
        println!("smartcore 0.4.10: fit {:.2} s, predict {:.0} rows/s, accuracy {acc:.4}, macro-F1 {f1:.4}", fit.as_secs_f64(), xte.nrows() as f64 / pred.as_secs_f64());
    }
    // linfa-ensemble
    {
        use linfa_ensemble::EnsembleLearnerParams;
        use linfa_trees::DecisionTree;
        let xd = xtr.mapv(|v| v as f64);
        let ds = Dataset::new(xd, Array1::from(ytr.clone()));
        let t = Instant::now();
        let rf = EnsembleLearnerParams::new_fixed_rng(DecisionTree::params(), rand_chacha::ChaCha8Rng::seed_from_u64(42))
            .ensemble_size(100)
            .bootstrap_proportion(1.0)
            .feature_proportion(0.3)
            .fit(&ds)
            .unwrap();
        let fit = t.elapsed();
        let xt = xte.mapv(|v| v as f64);
        let t = Instant::now();
        let p: Array1<usize> = rf.predict(&xt);
        let pred = t.elapsed();
        let (acc, f1) = macro_f1(&yte, p.as_slice().unwrap(), k);
        println!("linfa-ensemble 0.8.1: fit {:.2} s, predict {:.0} rows/s, accuracy {acc:.4}, macro-F1 {f1:.4}", fit.as_secs_f64(), xte.nrows() as f64 / pred.as_secs_f64());
    }
}
