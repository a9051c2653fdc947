//! The fitted preprocessing: what turns raw feature rows into model input,
//! fitted once on training rows, saved, and applied unchanged at detection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::{Kind, Schema};
use crate::FeatureError;

/// Bumped whenever the saved form or the meaning of a transform changes.
pub const FORMAT_VERSION: u32 = 1;

/// How numeric columns are centred and scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// (x − mean) / standard deviation.
    #[default]
    Standard,
    /// (x − median) / interquartile range: unmoved by the outliers we hunt.
    Robust,
}

/// Preprocessing settings, validated by [`PipelineParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineParams {
    pub scaling: Scaling,
    /// Most one-hot columns per categorical feature (the rest go to `other`).
    pub max_categories: usize,
    /// A category needs this share of training rows to get its own column.
    pub min_category_share: f64,
}

impl Default for PipelineParams {
    fn default() -> Self {
        PipelineParams { scaling: Scaling::Standard, max_categories: 12, min_category_share: 0.001 }
    }
}

impl PipelineParams {
    pub fn check(&self) -> Result<(), FeatureError> {
        let mut p = Vec::new();
        if self.max_categories == 0 || self.max_categories > 256 {
            p.push(format!("max_categories {} must be 1..=256", self.max_categories));
        }
        if !(0.0..1.0).contains(&self.min_category_share) {
            p.push(format!("min_category_share {} must be in [0, 1)", self.min_category_share));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(FeatureError::Params(p))
        }
    }
}

/// One output group, from one input feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Column {
    Numeric {
        input: usize,
        log: bool,
        /// Imputed value (median of training values, after `log`).
        fill: f32,
        center: f32,
        scale: f32,
        /// Finite range seen in training (after `log`): ±inf maps to its ends.
        lo: f32,
        hi: f32,
        /// Emit a `<name>_missing` 0/1 column.
        indicator: bool,
    },
    OneHot {
        input: usize,
        /// Codes with their own column, in output order; then `<name>_other`.
        codes: Vec<f32>,
    },
}

/// A fitted pipeline. Serialized as JSON with its version and the feature
/// schema it was fitted on, so it refuses rows of another shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub format_version: u32,
    pub scaling: Scaling,
    pub input: Schema,
    pub columns: Vec<Column>,
    pub output_names: Vec<String>,
    /// Rows fitted on, and rows left out (a non-finite count or rate).
    pub fitted_rows: u64,
    pub invalid_rows: u64,
}

fn quantile(sorted: &[f32], q: f64) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract() as f32);
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + (next - sorted[i]) * frac
}

fn forward(x: f32, log: bool) -> f32 {
    if log {
        x.max(0.0).ln_1p()
    } else {
        x
    }
}

impl Pipeline {
    /// Fits on `rows` (row-major, `schema.len()` values per row). `names` gives
    /// readable names for category codes (`state=SF`); unnamed codes use the number.
    pub fn fit(
        params: &PipelineParams,
        schema: &Schema,
        rows: &[f32],
        names: &BTreeMap<u32, String>,
    ) -> Result<Self, FeatureError> {
        params.check()?;
        let w = schema.len();
        if w == 0 || !rows.len().is_multiple_of(w) {
            return Err(FeatureError::Shape { width: w, values: rows.len() });
        }
        // Invalid rows: a non-finite measurement means a division by zero in
        // the source (CIC's `Flow Bytes/s = Infinity`), not a real value.
        let valid: Vec<&[f32]> = rows.chunks_exact(w).filter(|r| Pipeline::is_valid_row(r)).collect();
        let invalid = (rows.len() / w - valid.len()) as u64;
        if valid.is_empty() {
            return Err(FeatureError::Empty);
        }
        let n = valid.len();
        let mut columns = Vec::with_capacity(w);
        let mut output_names = Vec::new();
        for (j, f) in schema.features.iter().enumerate() {
            if f.kind == Kind::Categorical {
                let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
                for r in &valid {
                    if !r[j].is_nan() {
                        *counts.entry(r[j] as u32).or_default() += 1;
                    }
                }
                let mut by_freq: Vec<(u32, usize)> = counts.into_iter().collect();
                by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let min = (params.min_category_share * n as f64).ceil().max(1.0) as usize;
                let codes: Vec<f32> = by_freq
                    .iter()
                    .filter(|(_, c)| *c >= min)
                    .take(params.max_categories)
                    .map(|(k, _)| *k as f32)
                    .collect();
                for c in &codes {
                    let label = names.get(&(*c as u32)).cloned().unwrap_or_else(|| format!("{}", *c as u32));
                    output_names.push(format!("{}={label}", f.name));
                }
                output_names.push(format!("{}=other", f.name));
                columns.push(Column::OneHot { input: j, codes });
                continue;
            }
            let log = f.kind == Kind::Count;
            let mut vals: Vec<f32> =
                valid.iter().map(|r| r[j]).filter(|v| !v.is_nan()).map(|v| forward(v, log)).collect();
            vals.sort_by(f32::total_cmp);
            let missing = n - vals.len();
            let fill = quantile(&vals, 0.5);
            let (lo, hi) = (vals.first().copied().unwrap_or(0.0), vals.last().copied().unwrap_or(0.0));
            // Statistics over the imputed column, as the model will see it.
            let filled = |v: f32| if v.is_nan() { fill } else { forward(v, log) };
            let (center, scale) = match params.scaling {
                Scaling::Standard => {
                    let mean = valid.iter().map(|r| f64::from(filled(r[j]))).sum::<f64>() / n as f64;
                    let var = valid.iter().map(|r| (f64::from(filled(r[j])) - mean).powi(2)).sum::<f64>() / n as f64;
                    (mean as f32, var.sqrt() as f32)
                }
                Scaling::Robust => {
                    let mut all: Vec<f32> = valid.iter().map(|r| filled(r[j])).collect();
                    all.sort_by(f32::total_cmp);
                    (quantile(&all, 0.5), quantile(&all, 0.75) - quantile(&all, 0.25))
                }
            };
            // A constant column would divide by zero: leave it unscaled.
            let scale = if scale.is_finite() && scale > 1e-12 { scale } else { 1.0 };
            // An indicator only where missingness varies: always-missing or
            // never-missing says nothing about a row.
            let indicator = missing > 0 && missing < n;
            output_names.push(f.name.clone());
            if indicator {
                output_names.push(format!("{}_missing", f.name));
            }
            columns.push(Column::Numeric { input: j, log, fill, center, scale, lo, hi, indicator });
        }
        Ok(Pipeline {
            format_version: FORMAT_VERSION,
            scaling: params.scaling,
            input: schema.clone(),
            columns,
            output_names,
            fitted_rows: n as u64,
            invalid_rows: invalid,
        })
    }

    /// A row the fit uses: missing values (NaN) are fine, an infinite one is
    /// not (a division by zero in the source, e.g. CIC's `Flow Bytes/s = Infinity`).
    pub fn is_valid_row(row: &[f32]) -> bool {
        row.iter().all(|v| v.is_nan() || v.is_finite())
    }

    pub fn output_width(&self) -> usize {
        self.output_names.len()
    }

    /// Transforms one raw row (the input schema's width) into model input.
    pub fn transform_row(&self, row: &[f32], out: &mut Vec<f32>) {
        for c in &self.columns {
            match c {
                Column::Numeric { input, log, fill, center, scale, lo, hi, indicator } => {
                    let x = row[*input];
                    let v = if x.is_nan() {
                        *fill
                    } else if x.is_infinite() {
                        if x > 0.0 {
                            *hi
                        } else {
                            *lo
                        }
                    } else {
                        forward(x, *log)
                    };
                    out.push((v - center) / scale);
                    if *indicator {
                        out.push(if x.is_nan() { 1.0 } else { 0.0 });
                    }
                }
                Column::OneHot { input, codes } => {
                    let x = row[*input];
                    let hit = codes.iter().position(|c| *c == x);
                    out.extend(codes.iter().enumerate().map(|(i, _)| if hit == Some(i) { 1.0 } else { 0.0 }));
                    out.push(if hit.is_none() && !x.is_nan() { 1.0 } else { 0.0 });
                }
            }
        }
    }

    /// Transforms many rows (row-major) at once.
    pub fn transform(&self, rows: &[f32]) -> Vec<f32> {
        let w = self.input.len();
        let mut out = Vec::with_capacity(rows.len() / w.max(1) * self.output_width());
        for r in rows.chunks_exact(w) {
            self.transform_row(r, &mut out);
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Loads a saved pipeline and checks it fits `expected` (the extractor's
    /// schema): another version or another feature set is an error naming the
    /// differences, never silently wrong input.
    pub fn load(json: &[u8], expected: &Schema) -> Result<Self, FeatureError> {
        let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| FeatureError::Corrupt(e.to_string()))?;
        match v.get("format_version").and_then(serde_json::Value::as_u64) {
            Some(n) if n == u64::from(FORMAT_VERSION) => {}
            Some(n) => return Err(FeatureError::Version { found: n, expected: FORMAT_VERSION }),
            None => return Err(FeatureError::Corrupt("no format_version".into())),
        }
        let p: Pipeline = serde_json::from_value(v).map_err(|e| FeatureError::Corrupt(e.to_string()))?;
        if p.input != *expected {
            let have: Vec<&str> = p.input.names().collect();
            let want: Vec<&str> = expected.names().collect();
            return Err(FeatureError::Mismatch {
                missing: want.iter().filter(|n| !have.contains(n)).map(|s| s.to_string()).collect(),
                unexpected: have.iter().filter(|n| !want.contains(n)).map(|s| s.to_string()).collect(),
            });
        }
        let w = p.input.len();
        let bad = p.columns.iter().any(|c| match c {
            Column::Numeric { input, scale, .. } => *input >= w || !scale.is_finite() || *scale == 0.0,
            Column::OneHot { input, .. } => *input >= w,
        });
        if bad || p.output_names.is_empty() {
            return Err(FeatureError::Corrupt("column refers outside the schema or has no scale".into()));
        }
        Ok(p)
    }
}
