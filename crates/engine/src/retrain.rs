//! Feedback that makes the next run better: analyst verdicts become training
//! rows. A false positive joins the benign training data (its external
//! addresses become known); a true positive becomes a labeled example for the
//! Random Forest (when the model has one). The dashboard refits from the
//! model's saved training sample (`flowhound_detect::sample`); `flowhound
//! train --feedback DB` adds the same rows to training on full logs.
//!
//! A retrained model always starts from its root model (the one given with
//! `--model`) plus all feedback so far, so verdicts are never counted twice.
//! A root without a Random Forest gets one once there are true positives.

use std::time::Duration;

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{BundleError, DetectError, Feedback, Trainer};
use flowhound_features::PipelineParams;

use crate::feedback::{Judgement, TrainingExample};

/// Rows each verdict counts as, by default: one labeled flow among
/// thousands of training rows would not move a detector.
pub const DEFAULT_WEIGHT: usize = 10;

/// What feedback went into a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeedbackUse {
    /// False positives added as benign rows.
    pub benign: usize,
    /// True positives added as Random Forest examples.
    pub attacks: usize,
    /// True positives left out: the model has no Random Forest.
    pub unused: usize,
}

/// Adds every example to `trainer`, each as `weight` rows.
pub fn add_examples(
    trainer: &mut Trainer,
    examples: &[TrainingExample],
    weight: usize,
) -> Result<FeedbackUse, DetectError> {
    let mut u = FeedbackUse::default();
    for e in examples {
        let fb = match e.verdict {
            Judgement::FalsePositive => Feedback::Benign { row: &e.raw, external: &e.external },
            Judgement::TruePositive => Feedback::Attack { row: &e.raw, class: &e.class },
        };
        match (trainer.add_feedback(fb, weight)?, e.verdict) {
            (true, Judgement::FalsePositive) => u.benign += 1,
            (true, Judgement::TruePositive) => u.attacks += 1,
            (false, _) => u.unused += 1,
        }
    }
    Ok(u)
}

/// Refits `root`'s detectors (same settings and seed) on its training sample
/// plus the feedback. True positives give a model without a Random Forest
/// one: the sample is its benign class, the confirmed attacks its other
/// classes (by threat class). The vote rule stays the root's (the forest is
/// an extra voter; the votes needed count the detectors only).
pub fn retrain(
    root: &Bundle,
    examples: &[TrainingExample],
    weight: usize,
) -> Result<(Bundle, FeedbackUse), BundleError> {
    let attacks = examples.iter().any(|e| e.verdict == Judgement::TruePositive);
    let mut t = Trainer::from_bundle(root, attacks)?;
    let used = add_examples(&mut t, examples, weight)?;
    let pp = PipelineParams { scaling: root.pipeline.scaling, ..Default::default() };
    let (b, _) = t.finish(&pp, &root.params, &root.ensemble_params, root.training.seed, Duration::ZERO, &|_, _| {})?;
    Ok((b, used))
}
