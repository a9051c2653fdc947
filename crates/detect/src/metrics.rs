//! Detection quality on labeled flows, defined as scikit-learn defines it, so
//! a number here and one from a notebook mean the same thing:
//! - ROC-AUC: area under the ROC curve with ties counted half (the
//!   Mann–Whitney statistic, `roc_auc_score`);
//! - PR-AUC: average precision, Σ (Rₙ − Rₙ₋₁) Pₙ over distinct score
//!   thresholds, high to low (`average_precision_score`, no interpolation);
//! - precision, recall, F1, accuracy and the false-positive rate from the
//!   flags at the calibrated thresholds; a ratio with a zero denominator is 0
//!   (scikit-learn's `zero_division=0`).
//!
//! A NaN score ranks as the most anomalous (the ensemble counts it as a flag).
//! ROC-AUC and PR-AUC are `None` when the input has only one class.

use std::collections::BTreeMap;

use serde::Serialize;

/// Counts at a threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// Flows of one attack category, and how many were flagged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Detected {
    pub n: u64,
    pub detected: u64,
}

/// Quality of one scorer (a detector or the ensemble).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quality {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// False-positive rate: benign flows flagged / benign flows.
    pub fpr: f64,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub confusion: Confusion,
    pub per_category: BTreeMap<String, Detected>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// NaN first among the highest: what cannot be scored is not passed.
fn key(s: f32) -> f32 {
    if s.is_nan() {
        f32::INFINITY
    } else {
        s
    }
}

/// Row indices ordered by descending score.
fn descending(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| key(scores[b]).total_cmp(&key(scores[a])));
    idx
}

/// Distinct-threshold steps from the highest score down: the cumulative
/// (true positives, false positives) after each group of tied scores.
pub fn steps(labels: &[bool], scores: &[f32]) -> Vec<(u64, u64)> {
    let idx = descending(scores);
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut out = Vec::new();
    for (n, &i) in idx.iter().enumerate() {
        if labels[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_group = idx.get(n + 1).is_none_or(|&j| key(scores[j]) != key(scores[i]));
        if last_of_group {
            out.push((tp, fp));
        }
    }
    out
}

/// ROC-AUC by the trapezoid over the threshold steps (ties give a diagonal
/// segment: counted half). `None` with a single class.
pub fn roc_auc(labels: &[bool], scores: &[f32]) -> Option<f64> {
    roc_from_steps(&steps(labels, scores))
}

fn roc_from_steps(s: &[(u64, u64)]) -> Option<f64> {
    let &(p, n) = s.last()?;
    if p == 0 || n == 0 {
        return None;
    }
    let (mut area, mut prev) = (0.0f64, (0u64, 0u64));
    for &(tp, fp) in s {
        area += (fp - prev.1) as f64 * (tp + prev.0) as f64 / 2.0;
        prev = (tp, fp);
    }
    Some(area / (p as f64 * n as f64))
}

/// Average precision (scikit-learn's). `None` without positives or negatives.
pub fn average_precision(labels: &[bool], scores: &[f32]) -> Option<f64> {
    ap_from_steps(&steps(labels, scores))
}

fn ap_from_steps(s: &[(u64, u64)]) -> Option<f64> {
    let &(p, n) = s.last()?;
    if p == 0 || n == 0 {
        return None;
    }
    let (mut ap, mut prev_tp) = (0.0f64, 0u64);
    for &(tp, fp) in s {
        ap += (tp - prev_tp) as f64 / p as f64 * (tp as f64 / (tp + fp) as f64);
        prev_tp = tp;
    }
    Some(ap)
}

/// Every number for one scorer: `labels` (malicious?), `categories` of the
/// malicious rows, the continuous `scores` and the `flags` at threshold.
pub fn quality(labels: &[bool], categories: &[Option<&str>], scores: &[f32], flags: &[bool]) -> Quality {
    let mut c = Confusion::default();
    let mut per_category: BTreeMap<String, Detected> = BTreeMap::new();
    for ((&y, &f), cat) in labels.iter().zip(flags).zip(categories) {
        match (y, f) {
            (true, true) => c.tp += 1,
            (true, false) => c.fn_ += 1,
            (false, true) => c.fp += 1,
            (false, false) => c.tn += 1,
        }
        if y {
            let d = per_category.entry(cat.unwrap_or("unknown").to_string()).or_default();
            d.n += 1;
            d.detected += u64::from(f);
        }
    }
    let (precision, recall) = (ratio(c.tp, c.tp + c.fp), ratio(c.tp, c.tp + c.fn_));
    // One sort of the scores serves both areas.
    let s = steps(labels, scores);
    Quality {
        accuracy: ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn_),
        precision,
        recall,
        f1: if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 },
        fpr: ratio(c.fp, c.fp + c.tn),
        roc_auc: roc_from_steps(&s),
        pr_auc: ap_from_steps(&s),
        confusion: c,
        per_category,
    }
}

/// Points of a curve in the unit square, (x, y).
pub type Curve = Vec<(f64, f64)>;

/// Points of the ROC curve (false-positive rate, true-positive rate) and the
/// PR curve (recall, precision), at most `max` of each, for plots.
pub fn curves(labels: &[bool], scores: &[f32], max: usize) -> (Curve, Curve) {
    let s = steps(labels, scores);
    let Some(&(p, n)) = s.last() else { return (Vec::new(), Vec::new()) };
    let every = s.len().div_ceil(max.max(2)).max(1);
    let picked = s.iter().enumerate().filter(|(i, _)| i % every == 0 || *i == s.len() - 1).map(|(_, v)| *v);
    let mut roc = vec![(0.0, 0.0)];
    let mut pr = Vec::new();
    for (tp, fp) in picked {
        roc.push((ratio(fp, n), ratio(tp, p)));
        pr.push((ratio(tp, p), ratio(tp, tp + fp)));
    }
    (roc, pr)
}

/// Precision, recall and F1 of one class, and its support (true rows).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassQuality {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// A multi-class prediction against the truth, as scikit-learn's
/// `classification_report`: labels are every class in the truth or the
/// predictions; macro F1 is their plain mean, weighted F1 weighs by support.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub weighted_f1: f64,
    pub per_class: BTreeMap<String, ClassQuality>,
    /// truth → predicted → rows.
    pub confusion: BTreeMap<String, BTreeMap<String, u64>>,
}

/// `truth` and `predicted` are class names per row.
pub fn classification(truth: &[&str], predicted: &[&str]) -> Classification {
    let mut confusion: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut labels: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut right = 0u64;
    for (&t, &p) in truth.iter().zip(predicted) {
        *confusion.entry(t.to_string()).or_default().entry(p.to_string()).or_default() += 1;
        labels.insert(t);
        labels.insert(p);
        right += u64::from(t == p);
    }
    let mut per_class = BTreeMap::new();
    let (mut macro_sum, mut weighted_sum, mut support_sum) = (0.0, 0.0, 0u64);
    for l in &labels {
        let tp = confusion.get(*l).and_then(|m| m.get(*l)).copied().unwrap_or(0);
        let support: u64 = confusion.get(*l).map_or(0, |m| m.values().sum());
        let predicted_n: u64 = confusion.values().filter_map(|m| m.get(*l)).sum();
        let (precision, recall) = (ratio(tp, predicted_n), ratio(tp, support));
        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        macro_sum += f1;
        weighted_sum += f1 * support as f64;
        support_sum += support;
        per_class.insert(l.to_string(), ClassQuality { precision, recall, f1, support });
    }
    Classification {
        accuracy: ratio(right, truth.len() as u64),
        macro_f1: if labels.is_empty() { 0.0 } else { macro_sum / labels.len() as f64 },
        weighted_f1: if support_sum == 0 { 0.0 } else { weighted_sum / support_sum as f64 },
        per_class,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_matches_scikit_learn() {
        // scikit-learn 1.9.1: f1_score(average="macro") 0.56, "weighted" 0.6375;
        // per class (0..4) precision .5 .667 1 1 0, recall .5 1 .333 1 0.
        let n = ["a", "b", "c", "d", "e"];
        let t: Vec<&str> = [0, 0, 1, 1, 2, 2, 2, 3].iter().map(|i| n[*i]).collect();
        let p: Vec<&str> = [0, 1, 1, 1, 2, 0, 4, 3].iter().map(|i| n[*i]).collect();
        let c = classification(&t, &p);
        assert!((c.macro_f1 - 0.56).abs() < 1e-12 && (c.weighted_f1 - 0.6375).abs() < 1e-12, "{c:?}");
        assert!((c.per_class["b"].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.per_class["c"].recall - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(c.per_class["e"], ClassQuality { precision: 0.0, recall: 0.0, f1: 0.0, support: 0 });
        assert_eq!(c.confusion["c"]["e"], 1);
        assert!((c.accuracy - 5.0 / 8.0).abs() < 1e-12);
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn match_scikit_learn() {
        // Expected values from scikit-learn 1.9.1's roc_auc_score and
        // average_precision_score on the same inputs.
        let cases: [(&[u8], &[f32], f64, f64); 4] = [
            (&[0, 0, 1, 1], &[0.1, 0.4, 0.35, 0.8], 0.75, 0.833_333_333_333_333_3),
            (&[0, 1, 0, 1], &[0.5, 0.5, 0.5, 0.5], 0.5, 0.5),
            (
                &[1, 0, 1, 0, 1, 0, 0],
                &[0.9, 0.9, 0.7, 0.3, 0.3, 0.3, 0.1],
                0.708_333_333_333_333_3,
                0.555_555_555_555_555_6,
            ),
            (
                &[0, 0, 0, 1, 0, 1, 1, 0],
                &[3.0, 1.0, 2.0, 2.0, 5.0, 2.0, 7.0, 0.0],
                0.666_666_666_666_666_6,
                0.666_666_666_666_666_7,
            ),
        ];
        for (y, s, roc, ap) in cases {
            let y: Vec<bool> = y.iter().map(|v| *v == 1).collect();
            assert!(close(roc_auc(&y, s), roc), "{y:?} {s:?}: roc {:?} want {roc}", roc_auc(&y, s));
            assert!(close(average_precision(&y, s), ap), "{y:?} {s:?}: ap {:?} want {ap}", average_precision(&y, s));
        }
    }

    #[test]
    fn one_class_and_nan() {
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
        assert_eq!(average_precision(&[false, false], &[0.1, 0.2]), None);
        assert_eq!(roc_auc(&[], &[]), None);
        // A NaN score ranks above everything.
        assert!(close(roc_auc(&[false, true, false], &[0.9, f32::NAN, 0.1]), 1.0));
    }

    #[test]
    fn counts_at_threshold_and_per_category() {
        let y = [true, true, true, false, false, false, false];
        let cats = [Some("dos"), Some("dos"), None, None, None, None, None];
        let flags = [true, false, true, true, false, false, false];
        let s = [0.9, 0.2, 0.8, 0.7, 0.1, 0.3, 0.0];
        let q = quality(&y, &cats, &s, &flags);
        assert_eq!(q.confusion, Confusion { tp: 2, fp: 1, tn: 3, fn_: 1 });
        assert!((q.precision - 2.0 / 3.0).abs() < 1e-12 && (q.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((q.f1 - 2.0 / 3.0).abs() < 1e-12 && (q.accuracy - 5.0 / 7.0).abs() < 1e-12);
        assert!((q.fpr - 0.25).abs() < 1e-12);
        assert_eq!(q.per_category["dos"], Detected { n: 2, detected: 1 });
        assert_eq!(q.per_category["unknown"], Detected { n: 1, detected: 1 });
        // Nothing flagged: precision and F1 are 0, not NaN.
        let none = quality(&y, &cats, &s, &[false; 7]);
        assert_eq!((none.precision, none.f1, none.recall), (0.0, 0.0, 0.0));
        let json = serde_json::to_value(&q).unwrap_or_default();
        assert_eq!(json["confusion"]["fn"], 1);
    }

    #[test]
    fn curves_run_from_the_origin_to_the_corner() {
        let y = [true, false, true, false];
        let (roc, pr) = curves(&y, &[0.9, 0.8, 0.3, 0.1], 100);
        assert_eq!(roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
        assert_eq!(pr.first(), Some(&(0.5, 1.0)));
        assert_eq!(pr.len(), 4);
        let (roc, _) =
            curves(&[true; 3].iter().chain(&[false; 997]).copied().collect::<Vec<_>>(), &vec![0.5; 1000], 10);
        assert_eq!(roc, vec![(0.0, 0.0), (1.0, 1.0)]);
    }
}
