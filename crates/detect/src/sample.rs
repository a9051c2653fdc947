//! A seeded sample of the training rows, saved with the model, so the model
//! can be refitted with analyst feedback (the dashboard's "retrain with
//! feedback") without the logs it was first trained on.
//!
//! Raw feature rows (the extractor's schema, before preprocessing), the
//! ground-truth class of each (for the Random Forest) and whether the
//! unsupervised detectors saw it. At most [`SAMPLE_MAX`] rows, every k-th of
//! the training rows in input order: deterministic, and spread over the
//! whole training period. 20 000 rows × ~45 features is ~3.6 MB per model.

use crate::tensors::{Reader, Writer};
use crate::DetectError;

/// Most rows kept.
pub const SAMPLE_MAX: usize = 20_000;

/// `class` of a row without ground truth.
const NO_CLASS: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingSample {
    pub width: usize,
    /// Row-major raw features; NaN = missing.
    pub rows: Vec<f32>,
    pub class: Vec<Option<u16>>,
    pub unsupervised: Vec<bool>,
}

impl TrainingSample {
    /// Every k-th row of `rows` (k chosen so at most [`SAMPLE_MAX`] remain).
    /// `class`/`unsupervised` are per row, or empty when every row is an
    /// unlabeled unsupervised row.
    pub(crate) fn take(rows: &[f32], width: usize, class: &[Option<u16>], unsupervised: &[bool]) -> Self {
        let n = rows.len() / width.max(1);
        let step = n.div_ceil(SAMPLE_MAX).max(1);
        let mut s = TrainingSample { width, ..Default::default() };
        for i in (0..n).step_by(step) {
            s.rows.extend_from_slice(&rows[i * width..(i + 1) * width]);
            s.class.push(class.get(i).copied().flatten());
            s.unsupervised.push(unsupervised.get(i).copied().unwrap_or(true));
        }
        s
    }

    pub fn len(&self) -> usize {
        self.class.len()
    }

    pub fn is_empty(&self) -> bool {
        self.class.is_empty()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.len();
        let class: Vec<u32> = self.class.iter().map(|c| c.map_or(NO_CLASS, u32::from)).collect();
        let unsup: Vec<u32> = self.unsupervised.iter().map(|u| u32::from(*u)).collect();
        Writer::default()
            .f32("rows", &[n, self.width], &self.rows)
            .u32("class", &[n], &class)
            .u32("unsupervised", &[n], &unsup)
            .finish()
    }

    /// Reads a sample of rows `width` wide; anything else is corrupt.
    pub fn from_bytes(bytes: &[u8], width: usize) -> Result<Self, DetectError> {
        const NAME: &str = "training sample";
        let r = Reader::new(NAME, bytes)?;
        let (shape, rows) = r.f32_or_nan("rows", &[None, Some(width)])?;
        let n = shape[0];
        let (_, class) = r.u32("class", &[Some(n)])?;
        let (_, unsup) = r.u32("unsupervised", &[Some(n)])?;
        let class = class
            .into_iter()
            .map(|c| match c {
                NO_CLASS => Ok(None),
                c => u16::try_from(c).map(Some).map_err(|_| DetectError::corrupt(NAME, format!("class {c}"))),
            })
            .collect::<Result<_, _>>()?;
        if rows.iter().any(|v| v.is_infinite()) {
            return Err(DetectError::corrupt(NAME, "an infinite value"));
        }
        Ok(TrainingSample { width, rows, class, unsupervised: unsup.into_iter().map(|u| u != 0).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_kth_row_and_round_trips_with_missing_values() {
        let width = 3;
        let n = SAMPLE_MAX * 2 + 7;
        let rows: Vec<f32> = (0..n * width).map(|i| if i % 11 == 0 { f32::NAN } else { i as f32 }).collect();
        let class: Vec<Option<u16>> = (0..n).map(|i| (i % 3 != 0).then_some((i % 2) as u16)).collect();
        let unsup: Vec<bool> = (0..n).map(|i| i % 5 != 0).collect();
        let s = TrainingSample::take(&rows, width, &class, &unsup);
        // step 3 over 40 007 rows.
        assert_eq!(s.len(), n.div_ceil(3));
        assert!(s.len() <= SAMPLE_MAX);
        assert_eq!(s.rows[width], (3 * width) as f32);
        assert_eq!(s.class[1], class[3]);
        assert_eq!(s.unsupervised[5], unsup[15]);
        let back = TrainingSample::from_bytes(&s.to_bytes(), width).expect("round trip");
        assert_eq!(back.class, s.class);
        assert_eq!(back.unsupervised, s.unsupervised);
        assert!(back.rows.iter().zip(&s.rows).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(TrainingSample::from_bytes(&s.to_bytes(), width + 1).is_err(), "wrong width is refused");
        assert!(TrainingSample::from_bytes(&s.to_bytes()[..100], width).is_err(), "truncated is refused");
    }
}
