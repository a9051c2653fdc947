//! The fitted preprocessing: imputation, log1p, scaling, one-hot, saving.

use std::collections::BTreeMap;

use flowhound_features::{Feature, FeatureError, Kind, Pipeline, PipelineParams, Scaling, Schema};

fn schema() -> Schema {
    Schema {
        features: vec![
            Feature::new("bytes", Kind::Count),
            Feature::new("share", Kind::Numeric),
            Feature::new("protocol", Kind::Categorical),
        ],
    }
}

fn rows() -> Vec<f32> {
    let mut v = Vec::new();
    for i in 0..100 {
        let bytes = (i * 10) as f32;
        let share = if i % 10 == 0 { f32::NAN } else { (i % 7) as f32 };
        let proto = if i < 70 {
            6.0
        } else if i < 99 {
            17.0
        } else {
            47.0
        };
        v.extend([bytes, share, proto]);
    }
    v
}

#[test]
fn fit_and_transform() {
    let names = BTreeMap::from([(6, "tcp".to_string()), (17, "udp".to_string())]);
    let params = PipelineParams { min_category_share: 0.02, ..Default::default() };
    let p = Pipeline::fit(&params, &schema(), &rows(), &names).expect("fit");
    assert_eq!(p.output_names, ["bytes", "share", "share_missing", "protocol=tcp", "protocol=udp", "protocol=other"]);
    let out = p.transform(&rows());
    let w = p.output_width();
    // Standard scaling: mean 0, std 1 on the training rows.
    let col = |j: usize| out.chunks(w).map(|r| f64::from(r[j])).collect::<Vec<_>>();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let bytes = col(0);
    assert!(mean(&bytes).abs() < 1e-4);
    let sd = (bytes.iter().map(|x| x * x).sum::<f64>() / bytes.len() as f64).sqrt();
    assert!((sd - 1.0).abs() < 1e-3, "{sd}");
    // log1p: 10 bytes and 990 bytes are ~5 log-units apart, not 98 linear units.
    let r1 = &out[w..2 * w];
    let r99 = &out[99 * w..];
    assert!(r99[0] > r1[0]);
    // The missing share was imputed with the median and flagged.
    let r0 = &out[..w];
    assert_eq!(r0[2], 1.0);
    assert_eq!(r1[2], 0.0);
    // One-hot: GRE (2 % of rows... 1 %) is below the minimum share: other.
    assert_eq!(&r0[3..6], &[1.0, 0.0, 0.0]);
    assert_eq!(&r99[3..6], &[0.0, 0.0, 1.0]);
    // A code never seen in training is other, a missing one is nothing.
    let mut o = Vec::new();
    p.transform_row(&[5.0, 1.0, 132.0], &mut o);
    assert_eq!(&o[3..6], &[0.0, 0.0, 1.0]);
    o.clear();
    p.transform_row(&[5.0, 1.0, f32::NAN], &mut o);
    assert_eq!(&o[3..6], &[0.0, 0.0, 0.0]);
}

#[test]
fn infinities_are_invalid_in_training_and_clipped_after() {
    let mut r = rows();
    r[0] = f32::INFINITY;
    let p = Pipeline::fit(&PipelineParams::default(), &schema(), &r, &BTreeMap::new()).expect("fit");
    assert_eq!((p.fitted_rows, p.invalid_rows), (99, 1));
    let mut o = Vec::new();
    p.transform_row(&[f32::INFINITY, 1.0, 6.0], &mut o);
    let mut top = Vec::new();
    p.transform_row(&[990.0, 1.0, 6.0], &mut top);
    assert!(o[0].is_finite() && (o[0] - top[0]).abs() < 1e-5, "inf maps to the largest training value");
}

#[test]
fn robust_scaling_uses_median_and_iqr() {
    let s = Schema { features: vec![Feature::new("x", Kind::Numeric)] };
    let mut v: Vec<f32> = (1..=99).map(|i| i as f32).collect();
    v.push(1e9); // one huge outlier moves the mean, not the median
    let p = Pipeline::fit(&PipelineParams { scaling: Scaling::Robust, ..Default::default() }, &s, &v, &BTreeMap::new())
        .expect("fit");
    let mut o = Vec::new();
    p.transform_row(&[50.5], &mut o);
    assert!(o[0].abs() < 0.02, "{}", o[0]);
}

#[test]
fn saved_pipeline_round_trips_and_refuses_other_features() {
    let p = Pipeline::fit(&PipelineParams::default(), &schema(), &rows(), &BTreeMap::new()).expect("fit");
    let json = p.to_json();
    let back = Pipeline::load(json.as_bytes(), &schema()).expect("load");
    assert_eq!(back, p);
    assert_eq!(back.transform(&rows()), p.transform(&rows()));

    let mut other = schema();
    other.features[1] = Feature::new("share_of_voice", Kind::Numeric);
    match Pipeline::load(json.as_bytes(), &other) {
        Err(FeatureError::Mismatch { missing, unexpected }) => {
            assert_eq!(missing, ["share_of_voice"]);
            assert_eq!(unexpected, ["share"]);
        }
        r => panic!("expected a mismatch, got {r:?}"),
    }
    let newer = json.replace("\"format_version\": 1", "\"format_version\": 99");
    assert!(matches!(Pipeline::load(newer.as_bytes(), &schema()), Err(FeatureError::Version { found: 99, .. })));
    assert!(matches!(Pipeline::load(&json.as_bytes()[..json.len() / 2], &schema()), Err(FeatureError::Corrupt(_))));
    let zero = json.replacen("\"scale\": ", "\"scale\": 0.0, \"was\": ", 1);
    assert!(Pipeline::load(zero.as_bytes(), &schema()).is_err());
}

#[test]
fn params_list_every_problem() {
    let e =
        PipelineParams { max_categories: 0, min_category_share: 2.0, ..Default::default() }.check().expect_err("bad");
    let s = e.to_string();
    assert!(s.contains("max_categories") && s.contains("min_category_share"), "{s}");
}
