//! Turning one model's raw scores into something comparable across models.
//!
//! Raw scores live on different scales (an isolation score near 0.5, a LOF
//! near 1, a reconstruction error near 0.01). Each model keeps the 1,001
//! quantiles of its scores on the training rows; a new score maps to its
//! position among them — the share of training rows scoring lower, in [0, 1]
//! — and beyond the highest training score to (1, 2), growing with the
//! distance past it in units of the training spread, so the most extreme rows
//! still rank above the merely unusual. The flag threshold is the training
//! score at quantile 1 − contamination, unless overridden.

use serde::{Deserialize, Serialize};

/// Quantile points kept (0.1 % steps).
const STEPS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Raw score above which a row is flagged.
    pub threshold: f32,
    /// Training-score quantiles at 0, 0.001, …, 1.
    pub quantiles: Vec<f32>,
}

fn quantile(sorted: &[f32], q: f64) -> f32 {
    let pos = q * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + (next - sorted[i]) * (pos - i as f64) as f32
}

impl Calibration {
    /// From training scores; `None` when no score is finite.
    pub fn fit(scores: &[f32], contamination: f64) -> Option<Self> {
        let mut s: Vec<f32> = scores.iter().copied().filter(|v| v.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f32::total_cmp);
        let quantiles = (0..=STEPS).map(|i| quantile(&s, i as f64 / STEPS as f64)).collect();
        Some(Calibration { threshold: quantile(&s, 1.0 - contamination), quantiles })
    }

    /// Whether the loaded values are usable (finite, sorted, full length).
    pub fn is_valid(&self) -> bool {
        self.quantiles.len() == STEPS + 1
            && self.threshold.is_finite()
            && self.quantiles.iter().all(|q| q.is_finite())
            && self.quantiles.windows(2).all(|w| w[0] <= w[1])
    }

    /// Flagged: above the threshold. A NaN score (a model that could not
    /// score the row) is flagged rather than silently passed.
    pub fn flags(&self, raw: f32) -> bool {
        raw > self.threshold || raw.is_nan()
    }

    /// The calibrated score (see the module docs): [0, 1] within the training
    /// range, (1, 2) beyond it.
    pub fn calibrated(&self, raw: f32) -> f32 {
        let q = &self.quantiles;
        let (lo, hi) = (q[0], q[STEPS]);
        if raw.is_nan() {
            return 2.0;
        }
        if raw <= lo {
            return 0.0;
        }
        if raw > hi {
            let spread = (hi - q[STEPS / 2]).max(hi.abs() * 1e-6).max(f32::MIN_POSITIVE);
            let past = f64::from((raw - hi) / spread);
            return (2.0 - 1.0 / (1.0 + past)) as f32;
        }
        // Last quantile ≤ raw, then linear between it and the next.
        let i = q.partition_point(|v| *v <= raw).saturating_sub(1).min(STEPS - 1);
        let (a, b) = (q[i], q[i + 1]);
        let frac = if b > a { (raw - a) / (b - a) } else { 1.0 };
        (i as f32 + frac) / STEPS as f32
    }
}

impl Calibration {
    /// The raw score whose calibrated score is `level` (the inverse of
    /// [`Calibration::calibrated`]): where a flag threshold goes so that the
    /// detector flags exactly the rows calibrated above `level`.
    pub fn raw_at(&self, level: f32) -> f32 {
        let q = &self.quantiles;
        let hi = q[STEPS];
        if level >= 1.0 {
            // calibrated = 2 − 1 / (1 + past), past = (raw − hi) / spread.
            let spread = (hi - q[STEPS / 2]).max(hi.abs() * 1e-6).max(f32::MIN_POSITIVE);
            let l = f64::from(level.min(2.0 - 1e-6));
            let past = 1.0 / (2.0 - l) - 1.0;
            return hi + (past * f64::from(spread)) as f32;
        }
        let pos = f64::from(level.max(0.0)) * STEPS as f64;
        let i = (pos.floor() as usize).min(STEPS - 1);
        let frac = (pos - i as f64) as f32;
        q[i] + (q[i + 1] - q[i]) * frac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_threshold_and_tail() {
        let scores: Vec<f32> = (0..=1000).map(|i| i as f32).collect();
        let c = Calibration::fit(&scores, 0.05).expect("finite");
        assert_eq!(c.threshold, 950.0);
        assert!(!c.flags(950.0) && c.flags(950.5));
        assert_eq!(c.calibrated(-5.0), 0.0);
        assert!((c.calibrated(500.0) - 0.5).abs() < 1e-6);
        assert!((c.calibrated(999.5) - 0.9995).abs() < 1e-6);
        // Past the maximum: above 1, below 2, increasing.
        let (a, b) = (c.calibrated(1100.0), c.calibrated(5000.0));
        assert!(1.0 < a && a < b && b < 2.0, "{a} {b}");
        assert!(c.flags(f32::NAN) && c.calibrated(f32::NAN) == 2.0);
        assert!(c.is_valid());
        // raw_at inverts calibrated, inside the training range and past it.
        for raw in [12.5f32, 500.0, 987.25, 1100.0, 5000.0] {
            let back = c.raw_at(c.calibrated(raw));
            assert!((back - raw).abs() < raw * 1e-3, "{raw} -> {} -> {back}", c.calibrated(raw));
        }
    }

    #[test]
    fn constant_scores_do_not_divide_by_zero() {
        let c = Calibration::fit(&[0.3; 50], 0.05).expect("finite");
        assert_eq!(c.calibrated(0.3), 0.0);
        let v = c.calibrated(0.31);
        assert!(v > 1.0 && v < 2.0, "{v}");
        assert!(Calibration::fit(&[f32::NAN], 0.05).is_none());
    }
}
