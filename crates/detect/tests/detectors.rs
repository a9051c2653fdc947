//! Each detector on data with a known answer; determinism; the vote rule.

use flowhound_detect::ensemble::{self, Ensemble, EnsembleParams};
use flowhound_detect::iforest::{average_path, IforestParams};
use flowhound_detect::{Detector, Kind, Params, Severity};
use ndarray::Array2;
use rand::{Rng, SeedableRng};

/// `n` rows of a standard normal in `d` dimensions (Box–Muller, seeded).
fn normal(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| {
        let (u, v): (f32, f32) = (r.gen_range(1e-7..1.0), r.gen());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    })
}

/// Training inliers, test inliers, and a planted cluster far from both.
fn planted() -> (Array2<f32>, Array2<f32>, Array2<f32>) {
    let train = normal(3000, 8, 1);
    let test = normal(500, 8, 2);
    // Far from the inliers in every dimension: obvious to any detector.
    let mut out = normal(40, 8, 3) * 0.3;
    out.mapv_inplace(|v| v + 4.0);
    (train, test, out)
}

fn scores(d: &dyn Detector, x: &Array2<f32>) -> Vec<f32> {
    let mut s = vec![0.0; x.nrows()];
    d.score(x.view(), &mut s);
    s
}

fn quick(k: Kind) -> Params {
    match Params::default_for(k) {
        Params::Autoencoder(mut p) => {
            p.epochs = 30;
            p.layers = vec![16, 4];
            Params::Autoencoder(p)
        }
        // Samples smaller than the training set, so the seed matters.
        Params::Lof(mut p) => {
            p.reference = 1000;
            Params::Lof(p)
        }
        Params::Ocsvm(mut p) => {
            p.max_train = 1000;
            Params::Ocsvm(p)
        }
        p => p,
    }
}

#[test]
fn every_detector_separates_a_planted_cluster() {
    let (train, test, out) = planted();
    for k in Kind::ALL {
        let m = quick(k).fit(train.view(), 7).expect("fit");
        let (inl, outl) = (scores(m.as_ref(), &test), scores(m.as_ref(), &out));
        let mut sorted = inl.clone();
        sorted.sort_by(f32::total_cmp);
        let p99 = sorted[sorted.len() * 99 / 100];
        let min_out = outl.iter().copied().fold(f32::INFINITY, f32::min);
        assert!(min_out > p99, "{}: weakest outlier {min_out} vs inlier p99 {p99}", k.name());
    }
}

#[test]
fn isolation_forest_follows_the_paper() {
    // average_path(n) = 2 H(n−1) − 2 (n−1)/n, with scikit-learn's values.
    assert_eq!(average_path(1), 0.0);
    assert_eq!(average_path(2), 1.0);
    assert!((average_path(256) - 10.244_7).abs() < 1e-3, "{}", average_path(256));
    let (train, _, out) = planted();
    let f = IforestParams::default().fit(train.view(), 1).expect("fit");
    assert_eq!(f.n_trees(), 100);
    // Outliers isolate in a few splits; inliers take about average_path(256).
    let deep = f.path_length(train.row(0).as_slice().expect("contiguous"));
    let shallow = f.path_length(out.row(0).as_slice().expect("contiguous"));
    assert!(shallow < 6.0 && deep > 8.0, "outlier {shallow}, inlier {deep}");
    let s = scores(&f, &out);
    assert!(s.iter().all(|v| *v > 0.65 && *v < 1.0), "{s:?}");
}

#[test]
fn same_seed_same_model_other_seed_other_model() {
    let (train, test, _) = planted();
    for k in Kind::ALL {
        let a = quick(k).fit(train.view(), 11).expect("fit");
        let b = quick(k).fit(train.view(), 11).expect("fit");
        assert!(a.to_bytes() == b.to_bytes(), "{} is not deterministic", k.name());
        assert_eq!(scores(a.as_ref(), &test), scores(b.as_ref(), &test));
        let back = flowhound_detect::load(k, &a.to_bytes()).expect("reload");
        assert_eq!(scores(back.as_ref(), &test), scores(a.as_ref(), &test), "{} round trip", k.name());
        let c = quick(k).fit(train.view(), 12).expect("fit");
        assert!(a.to_bytes() != c.to_bytes(), "{} ignores its seed", k.name());
    }
}

#[test]
fn bad_params_list_every_problem() {
    let p = Params::Iforest(IforestParams { n_estimators: 0, max_samples: 1 });
    let e = p.check().expect_err("invalid").to_string();
    assert!(e.contains("n_estimators 0") && e.contains("max_samples 1"), "{e}");
    let e = EnsembleParams { contamination: 0.7, min_votes: Some(5), fpr: Some(0.7) }
        .check(4)
        .expect_err("invalid")
        .to_string();
    assert!(e.contains("contamination") && e.contains("min_votes 5") && e.contains("budget 0.7"), "{e}");
}

#[test]
fn corrupt_model_bytes_are_errors_not_panics() {
    let (train, _, _) = planted();
    for k in Kind::ALL {
        let bytes = quick(k).fit(train.view(), 3).expect("fit").to_bytes();
        for cut in [0, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(flowhound_detect::load(k, &bytes[..cut]).is_err(), "{} truncated at {cut}", k.name());
        }
        let mut flipped = bytes.clone();
        for i in (0..flipped.len()).step_by(97) {
            flipped[i] ^= 0x5a;
            // Any result is fine but a panic; an Ok model must still score.
            if let Ok(m) = flowhound_detect::load(k, &flipped) {
                let mut s = vec![0.0; 4];
                if m.width() == 8 {
                    m.score(train.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..4)), &mut s);
                }
            }
        }
    }
}

#[test]
fn corrupt_forest_bytes_are_errors_not_panics() {
    use flowhound_detect::forest::{Forest, ForestParams};
    let (train, _, _) = planted();
    let y: Vec<u16> = train.outer_iter().map(|r| u16::from(r[0] > 0.5) + u16::from(r[1] > 1.0)).collect();
    let bytes = ForestParams { trees: 5, ..Default::default() }.fit(train.view(), &y, 3, 3).expect("fit").to_bytes();
    for cut in [0, 8, bytes.len() / 2, bytes.len() - 1] {
        assert!(Forest::from_bytes(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    let rows = train.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..16));
    for step in [97, 31, 7] {
        let mut flipped = bytes.clone();
        for i in (0..flipped.len()).step_by(step) {
            flipped[i] ^= 0x5a;
            // Any result is fine but a panic or an endless walk; an Ok forest must still predict.
            if let Ok(f) = Forest::from_bytes(&flipped) {
                if f.width() == 8 {
                    assert_eq!(f.predict_proba(rows).len(), 16 * f.classes());
                }
            }
        }
    }
}

#[test]
fn votes_severity_and_confidence() {
    let (train, test, out) = planted();
    let params: Vec<Params> = Kind::ALL.into_iter().map(quick).collect();
    // With the default false-positive budget: every planted outlier is an
    // anomaly flagged by all four, at least medium; fresh inliers stay near
    // the budget (0.5 %; 500 rows).
    let b = ensemble::fit(&params, &EnsembleParams::default(), train.view(), 5, &|_, _| {}).expect("fit");
    let v = b.judge(out.view()).expect("judge");
    assert!(v.iter().all(|v| v.votes == 4 && v.severity >= Severity::Medium && v.confidence > 0.5), "{:?}", v[0]);
    let flagged = b.judge(test.view()).expect("judge").iter().filter(|v| v.severity != Severity::None).count();
    assert!(flagged <= 10, "{flagged} of 500 inliers flagged at a 0.5 % budget");
    // The rule before the budget: each detector its own 5 %, severity by votes.
    let old = EnsembleParams { fpr: None, ..EnsembleParams::default() };
    let e = ensemble::fit(&params, &old, train.view(), 5, &|_, _| {}).expect("fit");
    assert_eq!(e.min_votes(), 2);
    assert_eq!(
        [0, 1, 2, 3, 4].map(|v| e.severity(v)),
        [Severity::None, Severity::None, Severity::Low, Severity::Medium, Severity::High]
    );
    let v = e.judge(out.view()).expect("judge");
    assert!(v.iter().all(|v| v.votes == 4 && v.severity == Severity::High && v.confidence == 1.0), "{:?}", v[0]);
    assert!(v.iter().all(|v| v.score > 1.0), "planted rows lie beyond every training score");
    let inl = e.judge(test.view()).expect("judge");
    let flagged = inl.iter().filter(|v| v.severity != Severity::None).count();
    // Thresholds sit at each model's 95th training percentile. The models
    // agree on a Gaussian's tail, so two votes flag about that share of fresh
    // inliers (a little more: LOF and the SVM fit their training rows
    // closer than new ones) — not a multiple of it.
    assert!(flagged < 50, "{flagged} of 500 inliers flagged");
    let max_in = inl.iter().map(|v| v.score).fold(0.0, f32::max);
    assert!(v.iter().all(|o| o.score > max_in), "every outlier outranks every inlier");
    // The rule adapts to the number of detectors.
    let two: Vec<Params> = [Kind::Iforest, Kind::Lof].into_iter().map(quick).collect();
    let e2 = ensemble::fit(&two, &old, train.view(), 5, &|_, _| {}).expect("fit");
    assert_eq!([0, 1, 2].map(|v| e2.severity(v)), [Severity::None, Severity::Low, Severity::High]);
    let one = ensemble::fit(&two[..1], &old, train.view(), 5, &|_, _| {}).expect("fit");
    assert_eq!([0, 1].map(|v| one.severity(v)), [Severity::None, Severity::Medium]);
    let _: &Ensemble = &one;
}

#[test]
fn held_out_thresholds_flag_about_the_contamination_share_of_new_inliers() {
    // Each threshold is set on training rows the detector was not fitted on,
    // so on new rows of the same traffic each model flags about
    // `contamination` of them — in-sample thresholds flag far more with the
    // local models (LOF's reference, the SVM's support).
    // Few enough rows that LOF's reference and the SVM's sample are all of
    // the fitted rows.
    let train = normal(1500, 6, 11);
    let fresh = normal(4000, 6, 12);
    assert_eq!(ensemble::split_sizes(1500), (1200, 300));
    assert_eq!(ensemble::split_sizes(999), (999, 999));
    let params: Vec<Params> = Kind::ALL
        .into_iter()
        .map(|k| match (k, quick(k)) {
            (Kind::Autoencoder, p) => p,
            _ => Params::default_for(k),
        })
        .collect();
    let old = EnsembleParams { fpr: None, ..EnsembleParams::default() };
    let e = ensemble::fit(&params, &old, train.view(), 3, &|_, _| {}).expect("fit");
    let v = e.judge(fresh.view()).expect("judge");
    for (i, m) in e.members().iter().enumerate() {
        let share = v.iter().filter(|v| v.models[i].1).count() as f64 / 4000.0;
        assert!((0.025..0.085).contains(&share), "{}: {share:.3} of new inliers flagged", m.detector.kind().name());
    }
}

#[test]
fn attributions_point_at_the_column_that_is_off() {
    // Structured inliers (8 columns from 3 latent factors, as real features
    // are correlated) except column 5, pushed 8 standard deviations out: the
    // Isolation Forest's paths and the autoencoder's reconstruction error
    // must both put the most weight there; LOF and the SVM have no say.
    let mix = normal(3, 8, 9);
    let structured = |n, seed| normal(n, 3, seed).dot(&mix) + normal(n, 8, seed + 100) * 0.1;
    let train = structured(3000, 1);
    let mut odd = structured(20, 4);
    odd.column_mut(5).mapv_inplace(|v| v + 8.0);
    for k in Kind::ALL {
        let d = quick(k).fit(train.view(), 7).expect("fit");
        let Some(a) = d.attribute(odd.view()) else {
            assert!(matches!(k, Kind::Lof | Kind::Ocsvm), "{k:?} should attribute");
            continue;
        };
        assert_eq!(a.dim(), (20, 8));
        assert!(a.iter().all(|v| *v >= 0.0), "{k:?}: negative attribution");
        // Mean share per column over the odd rows.
        let mut share = [0.0f32; 8];
        for row in a.outer_iter() {
            let total: f32 = row.sum();
            for (s, v) in share.iter_mut().zip(row) {
                *s += v / total / 20.0;
            }
        }
        let top = (0..8).max_by(|i, j| share[*i].total_cmp(&share[*j])).unwrap_or(0);
        assert_eq!(top, 5, "{k:?}: shares {share:?}");
        // Uniform would be 0.125. Measured: iforest 0.41 (random cuts on the
        // other columns still earn some), autoencoder 0.69.
        let floor = if k == Kind::Iforest { 0.3 } else { 0.5 };
        assert!(share[5] > floor, "{k:?}: column 5 has only {:.2}: {share:?}", share[5]);
    }
}

/// `n` flows among a few hosts over ten minutes (xorshift, fixed seed).
fn flows(n: usize) -> Vec<flowhound_flow::FlowRecord> {
    use flowhound_flow::{Counts, FlowRecord, Timestamp};
    use std::net::{IpAddr, Ipv4Addr};
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let t = 1_793_577_600_000_000i64 + i as i64 * 600_000_000 / n as i64;
            FlowRecord {
                start: Timestamp::from_micros(t),
                end: Timestamp::from_micros(t + 200_000),
                duration_us: Some(200_000),
                src: Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (s % 40) as u32))),
                dst: Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0100 | ((s >> 8) % 6) as u32))),
                src_port: Some(40_000 + (s >> 16) as u16 % 20_000),
                dst_port: Some([443, 80, 53][((s >> 32) % 3) as usize]),
                protocol: Some(6),
                packets: Counts::total(1 + (s >> 24) % 30),
                bytes: Counts::total(60 + (s >> 40) % 20_000),
                ..Default::default()
            }
        })
        .collect()
}

/// The pipelined batches (one judged while the next is prepared and the one
/// before handed over) give every flow, in input order, the verdict one
/// pass over all the flows gives; `flush` leaves nothing in flight; an error
/// from the callback stops the work.
#[test]
fn batches_hand_over_in_order_what_one_pass_scores() {
    use flowhound_detect::{Batch, Batches, Scorer, Trainer};
    let recs = flows(3000);
    let mut t = Trainer::new(flowhound_features::ExtractorParams::default(), false, None, None).expect("trainer");
    t.push(&recs);
    let params: Vec<Params> = Kind::ALL.into_iter().map(quick).collect();
    let (bundle, _) = t
        .finish(
            &flowhound_features::PipelineParams::default(),
            &params,
            &EnsembleParams::default(),
            3,
            std::time::Duration::ZERO,
            &|_, _| {},
        )
        .expect("train");
    let want = Scorer::new(&bundle).expect("scorer").score(&recs).expect("score");

    let mut b = Batches::new(&bundle, 250).expect("batches");
    let (got, sizes) = (std::cell::RefCell::new(Vec::new()), std::cell::RefCell::new(Vec::new()));
    let mut each = |batch: &Batch<'_>| -> Result<(), flowhound_detect::DetectError> {
        assert_eq!(batch.recs.len(), batch.verdicts.len());
        assert_eq!(batch.input.len(), batch.recs.len() * bundle.pipeline.output_width());
        sizes.borrow_mut().push(batch.recs.len());
        got.borrow_mut()
            .extend(batch.recs.iter().map(|r| r.start).zip(batch.verdicts.iter().map(|v| (v.score, v.votes))));
        Ok(())
    };
    for chunk in recs.chunks(97) {
        b.push(chunk, &mut each).expect("push");
    }
    // Before the flush, up to two full batches and the pending records are in flight.
    let handed: usize = sizes.borrow().iter().sum();
    assert!((3000 - 3 * (250 + 97)..3000).contains(&handed), "{sizes:?}");
    b.flush(&mut each).expect("flush");
    assert_eq!(got.borrow().len(), 3000);
    // Full batches are at least the batch size (a push adds up to 96 more).
    let sizes = sizes.borrow().clone();
    assert!(sizes[..sizes.len() - 1].iter().all(|n| (250..250 + 97).contains(n)), "{sizes:?}");
    for (i, ((start, (score, votes)), (r, w))) in got.borrow().iter().zip(recs.iter().zip(&want)).enumerate() {
        assert_eq!(*start, r.start, "flow {i} out of order");
        assert!(
            (score - w.score).abs() < 1e-5 && *votes == w.votes,
            "flow {i}: {score} {votes} vs {} {}",
            w.score,
            w.votes
        );
    }
    b.flush(&mut each).expect("nothing left");
    assert_eq!(got.borrow().len(), 3000);

    // The callback's error comes back and nothing after it is handed over.
    let mut b = Batches::new(&bundle, 250).expect("batches");
    let mut calls = 0;
    let mut failing = |_: &Batch<'_>| -> Result<(), flowhound_detect::DetectError> {
        calls += 1;
        Err(flowhound_detect::DetectError::TooFew { model: "test", need: 1, got: 0 })
    };
    let err = recs.chunks(500).try_for_each(|c| b.push(c, &mut failing)).and_then(|()| b.flush(&mut failing));
    assert!(err.is_err());
    assert_eq!(calls, 1);
}
