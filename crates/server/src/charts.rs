//! What the page draws, gathered in one pass over the scored flows: score
//! over time, traffic distributions, an hour × port heatmap, a 2-D PCA
//! projection and a feature correlation matrix (both on a sample), and the
//! detectors' agreement. Memory is bounded whatever the upload's size: fixed
//! histograms, and samples of at most [`SAMPLE`] rows.

use std::collections::BTreeMap;

use flowhound_detect::{Severity, Verdict};
use flowhound_explain::json::jnum;
use flowhound_flow::FlowRecord;
use serde_json::{json, Value};

/// Rows kept for the projection and the correlations, per side (normal /
/// anomalous): enough for a readable scatter, small enough for the page.
const SAMPLE: usize = 1500;
/// Rows kept for the correlation matrix.
const CORR_SAMPLE: usize = 20_000;
/// Time bins of the score chart.
const TIME_BINS: usize = 240;
/// Most features in the correlation matrix.
const CORR_FEATURES: usize = 16;
/// log10 bins of byte and packet counts: 0 = 0, then [10^(k-1), 10^k).
const LOG_BINS: usize = 12;

/// A seeded reservoir sample (deterministic: the same upload gives the same
/// charts).
#[derive(Debug)]
struct Reservoir<T> {
    cap: usize,
    seen: u64,
    items: Vec<T>,
    state: u64,
}

impl<T> Reservoir<T> {
    fn new(cap: usize, seed: u64) -> Self {
        Reservoir { cap, seen: 0, items: Vec::new(), state: seed ^ 0x9e37_79b9_7f4a_7c15 }
    }

    fn next(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn offer(&mut self, make: impl FnOnce() -> T) {
        self.seen += 1;
        if self.items.len() < self.cap {
            self.items.push(make());
        } else {
            let j = self.next() % self.seen;
            if (j as usize) < self.cap {
                self.items[j as usize] = make();
            }
        }
    }
}

#[derive(Debug)]
struct Point {
    flow: u64,
    severity: Severity,
    input: Vec<f32>,
}

/// Accumulates the charts of one analysis.
#[derive(Debug)]
pub struct Charts {
    /// Per flow: (event time s, score, flagged), thinned to bins at the end.
    times: Vec<(i64, f32, bool)>,
    bytes: [[u64; LOG_BINS]; 2],
    packets: [[u64; LOG_BINS]; 2],
    ports: BTreeMap<u16, [u64; 2]>,
    protocols: BTreeMap<u8, [u64; 2]>,
    /// (hour, port) → [flows, anomalies]
    heat: BTreeMap<(u8, u16), [u64; 2]>,
    points: [Reservoir<Point>; 2],
    corr: Reservoir<Vec<f32>>,
    names: Vec<&'static str>,
    flagged_by: Vec<u64>,
    /// Both models flagged, per pair.
    agree: Vec<Vec<u64>>,
    votes: BTreeMap<u8, u64>,
}

fn log_bin(v: Option<u64>) -> usize {
    match v {
        None | Some(0) => 0,
        Some(v) => ((v as f64).log10().floor() as usize + 1).min(LOG_BINS - 1),
    }
}

impl Charts {
    pub fn new(names: Vec<&'static str>) -> Self {
        let k = names.len();
        Charts {
            times: Vec::new(),
            bytes: [[0; LOG_BINS]; 2],
            packets: [[0; LOG_BINS]; 2],
            ports: BTreeMap::new(),
            protocols: BTreeMap::new(),
            heat: BTreeMap::new(),
            points: [Reservoir::new(SAMPLE, 1), Reservoir::new(SAMPLE, 2)],
            corr: Reservoir::new(CORR_SAMPLE, 3),
            names,
            flagged_by: vec![0; k],
            agree: vec![vec![0; k]; k],
            votes: BTreeMap::new(),
        }
    }

    /// One scored flow, with its raw feature row and model input row.
    pub fn add(&mut self, flow: u64, r: &FlowRecord, v: &Verdict, raw: &[f32], input: &[f32]) {
        let a = usize::from(v.severity != Severity::None);
        if let Some(t) = r.start {
            // Seconds are plenty for a chart; 16 bytes a flow keeps 1M flows at 16 MB.
            self.times.push((t.secs(), v.score, a == 1));
        }
        self.bytes[a][log_bin(r.bytes.total)] += 1;
        self.packets[a][log_bin(r.packets.total)] += 1;
        if let Some(p) = r.dst_port {
            self.ports.entry(p).or_default()[a] += 1;
        }
        if let Some(p) = r.protocol {
            self.protocols.entry(p).or_default()[a] += 1;
        }
        if let (Some(t), Some(p)) = (r.start, r.dst_port) {
            let hour = (t.secs().rem_euclid(86_400) / 3600) as u8;
            self.heat.entry((hour, p)).or_default()[a] += 1;
        }
        self.points[a].offer(|| Point { flow, severity: v.severity, input: input.to_vec() });
        self.corr.offer(|| raw.to_vec());
        *self.votes.entry(v.votes).or_default() += 1;
        for (i, (_, fi)) in v.models.iter().enumerate() {
            if !*fi || i >= self.flagged_by.len() {
                continue;
            }
            self.flagged_by[i] += 1;
            for (j, (_, fj)) in v.models.iter().enumerate().skip(i) {
                if *fj && j < self.flagged_by.len() {
                    self.agree[i][j] += 1;
                    if i != j {
                        self.agree[j][i] += 1;
                    }
                }
            }
        }
    }

    /// The charts as JSON. `threshold`: the ensemble score above which a
    /// flow is an anomaly (the operating point's level; without one, where
    /// a flow with every detector at its own threshold sits, 1 − contamination).
    /// `raw_names`: raw feature names; `numeric`: which raw features are
    /// numbers (not category codes).
    pub fn finish(mut self, threshold: f64, raw_names: &[String], numeric: &[bool]) -> Value {
        json!({
            "timeline": self.timeline(threshold),
            "distributions": self.distributions(),
            "heatmap": self.heatmap(),
            "pca": self.pca(),
            "correlation": self.correlation(raw_names, numeric),
            "models": self.models(),
        })
    }

    fn timeline(&mut self, threshold: f64) -> Value {
        if self.times.is_empty() {
            return json!({"bins": [], "threshold": threshold});
        }
        let lo = self.times.iter().map(|t| t.0).min().unwrap_or(0);
        let hi = self.times.iter().map(|t| t.0).max().unwrap_or(0);
        let width = ((hi - lo) / TIME_BINS as i64 + 1).max(1);
        let n = ((hi - lo) / width + 1) as usize;
        // flows, anomalies, max score, score sum
        let mut bins = vec![(0u64, 0u64, f32::NEG_INFINITY, 0f64); n];
        for &(t, s, a) in &self.times {
            let b = &mut bins[((t - lo) / width) as usize];
            b.0 += 1;
            b.1 += u64::from(a);
            if s.is_finite() {
                b.2 = b.2.max(s);
                b.3 += f64::from(s);
            }
        }
        let bins: Vec<Value> = bins
            .iter()
            .enumerate()
            .filter(|(_, b)| b.0 > 0)
            .map(|(i, b)| {
                json!({
                    "t": lo + i as i64 * width,
                    "flows": b.0,
                    "anomalies": b.1,
                    "max_score": jnum(if b.2.is_finite() { b.2 } else { 0.0 }),
                    "mean_score": jnum((b.3 / b.0 as f64) as f32),
                })
            })
            .collect();
        json!({"bins": bins, "bin_seconds": width, "threshold": threshold})
    }

    fn distributions(&self) -> Value {
        let labels: Vec<String> = (0..LOG_BINS)
            .map(|k| match k {
                0 => "0".to_string(),
                k if k == LOG_BINS - 1 => format!("≥1e{}", k - 1),
                k => format!("1e{}–1e{}", k - 1, k),
            })
            .collect();
        let mut ports: Vec<(&u16, &[u64; 2])> = self.ports.iter().collect();
        ports.sort_by(|a, b| (b.1[0] + b.1[1]).cmp(&(a.1[0] + a.1[1])).then(a.0.cmp(b.0)));
        ports.truncate(20);
        let proto = |p: u8| flowhound_flow::record::protocol_name(p).map_or_else(|| p.to_string(), str::to_string);
        json!({
            "log_bins": labels,
            "bytes": {"normal": self.bytes[0], "anomalous": self.bytes[1]},
            "packets": {"normal": self.packets[0], "anomalous": self.packets[1]},
            "ports": ports.iter().map(|(p, c)| json!({"port": p, "normal": c[0], "anomalous": c[1]})).collect::<Vec<_>>(),
            "protocols": self.protocols.iter().map(|(p, c)| json!({"protocol": proto(*p), "normal": c[0], "anomalous": c[1]})).collect::<Vec<_>>(),
        })
    }

    /// Hour of day (UTC) × the 15 busiest destination ports.
    fn heatmap(&self) -> Value {
        let mut totals: BTreeMap<u16, u64> = BTreeMap::new();
        for ((_, p), c) in &self.heat {
            *totals.entry(*p).or_default() += c[0] + c[1];
        }
        let mut ports: Vec<(u16, u64)> = totals.into_iter().collect();
        ports.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ports.truncate(15);
        let ports: Vec<u16> = ports.into_iter().map(|(p, _)| p).collect();
        let mut cells = Vec::new();
        for ((h, p), c) in &self.heat {
            if let Some(j) = ports.iter().position(|q| q == p) {
                cells.push(json!([h, j, c[0] + c[1], c[1]]));
            }
        }
        json!({"ports": ports, "cells": cells})
    }

    /// The sampled rows of both sides projected on the first two principal
    /// components of the sample (model-input space, already scaled).
    fn pca(&self) -> Value {
        let rows: Vec<&Point> = self.points.iter().flat_map(|r| &r.items).collect();
        let Some(w) = rows.first().map(|p| p.input.len()) else { return json!({"points": []}) };
        let clean = |v: f32| if v.is_finite() { f64::from(v) } else { 0.0 };
        let n = rows.len() as f64;
        let mean: Vec<f64> = (0..w).map(|j| rows.iter().map(|p| clean(p.input[j])).sum::<f64>() / n).collect();
        let centered: Vec<Vec<f64>> =
            rows.iter().map(|p| p.input.iter().zip(&mean).map(|(v, m)| clean(*v) - m).collect()).collect();
        let mut cov = vec![vec![0.0; w]; w];
        for r in &centered {
            for (ci, ri) in cov.iter_mut().zip(r) {
                for (c, rj) in ci.iter_mut().zip(r) {
                    *c += ri * rj;
                }
            }
        }
        cov.iter_mut().flatten().for_each(|c| *c /= n.max(1.0));
        let (c1, v1) = top_eigen(&cov, None);
        let (c2, v2) = top_eigen(&cov, Some(&c1));
        let total: f64 = (0..w).map(|i| cov[i][i]).sum::<f64>().max(1e-12);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let points: Vec<Value> = rows
            .iter()
            .zip(&centered)
            .map(|(p, r)| json!([jnum(dot(r, &c1) as f32), jnum(dot(r, &c2) as f32), p.severity.name(), p.flow]))
            .collect();
        json!({"points": points, "explained": [jnum((v1 / total) as f32), jnum((v2 / total) as f32)]})
    }

    /// Pearson correlations of the numeric raw features with the most
    /// spread, on a sample of all flows.
    fn correlation(&self, names: &[String], numeric: &[bool]) -> Value {
        let rows = &self.corr.items;
        if rows.len() < 3 {
            return json!({"features": [], "matrix": []});
        }
        let w = names.len().min(rows[0].len());
        // Per column: mean and std over the finite values (NaN = missing).
        let stats: Vec<(usize, f64, f64)> = (0..w)
            .filter(|&j| numeric.get(j).copied().unwrap_or(false))
            .filter_map(|j| {
                let vals: Vec<f64> = rows.iter().map(|r| f64::from(r[j])).filter(|v| v.is_finite()).collect();
                if vals.len() < 3 {
                    return None;
                }
                let m = vals.iter().sum::<f64>() / vals.len() as f64;
                let sd = (vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / vals.len() as f64).sqrt();
                (sd > 1e-9).then_some((j, m, sd))
            })
            .collect();
        // Features in schema order, at most CORR_FEATURES of them, spread
        // evenly so every group (per flow, per source, per destination) shows.
        let step = stats.len().div_ceil(CORR_FEATURES).max(1);
        let picked: Vec<&(usize, f64, f64)> = stats.iter().step_by(step).collect();
        let mut matrix = Vec::new();
        for (a, (ja, ma, sa)) in picked.iter().copied().enumerate() {
            for (b, (jb, mb, sb)) in picked.iter().copied().enumerate() {
                let (mut sum, mut k) = (0.0, 0u64);
                for r in rows {
                    let (x, y) = (f64::from(r[*ja]), f64::from(r[*jb]));
                    if x.is_finite() && y.is_finite() {
                        sum += (x - ma) * (y - mb);
                        k += 1;
                    }
                }
                let c = if k > 0 { sum / k as f64 / (sa * sb) } else { 0.0 };
                matrix.push(json!([a, b, jnum(((c.clamp(-1.0, 1.0)) * 100.0).round() as f32 / 100.0)]));
            }
        }
        json!({
            "features": picked.iter().map(|(j, _, _)| names[*j].as_str()).collect::<Vec<_>>(),
            "matrix": matrix,
            "rows": rows.len(),
        })
    }

    fn models(&self) -> Value {
        json!({
            "names": self.names,
            "flagged": self.flagged_by,
            "agreement": self.agree,
            "votes": self.votes.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        })
    }
}

/// The dominant eigenvector of a symmetric matrix by power iteration (with
/// `orth` deflated away), and its eigenvalue. 60 dense iterations on a
/// ~50×50 matrix take well under a millisecond: no linear-algebra crate is
/// worth its build time for this.
fn top_eigen(m: &[Vec<f64>], orth: Option<&[f64]>) -> (Vec<f64>, f64) {
    let w = m.len();
    let mut v: Vec<f64> = (0..w).map(|i| 1.0 + (i as f64 * 0.37).sin() * 0.5).collect();
    let project = |v: &mut Vec<f64>| {
        if let Some(o) = orth {
            let d: f64 = v.iter().zip(o).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(o).for_each(|(a, b)| *a -= d * b);
        }
    };
    let mut lambda = 0.0;
    for _ in 0..60 {
        project(&mut v);
        let next: Vec<f64> = (0..w).map(|i| m[i].iter().zip(&v).map(|(a, b)| a * b).sum()).collect();
        let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm < 1e-12 {
            break;
        }
        lambda = norm;
        v = next.into_iter().map(|x| x / norm).collect();
    }
    project(&mut v);
    (v, lambda)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_iteration_finds_the_principal_axes() {
        // Variance 9 along x, 1 along y.
        let m = vec![vec![9.0, 0.0], vec![0.0, 1.0]];
        let (v1, l1) = top_eigen(&m, None);
        assert!((l1 - 9.0).abs() < 1e-6, "{l1}");
        assert!(v1[0].abs() > 0.999, "{v1:?}");
        let (v2, l2) = top_eigen(&m, Some(&v1));
        assert!((l2 - 1.0).abs() < 1e-6, "{l2}");
        assert!(v2[1].abs() > 0.999, "{v2:?}");
    }

    #[test]
    fn reservoir_keeps_its_size_and_is_seeded() {
        let mut a = Reservoir::new(10, 7);
        let mut b = Reservoir::new(10, 7);
        for i in 0..1000 {
            a.offer(|| i);
            b.offer(|| i);
        }
        assert_eq!(a.items.len(), 10);
        assert_eq!(a.items, b.items);
        assert!(a.items.iter().any(|&i| i >= 10), "later items get in");
    }

    #[test]
    fn log_bins_split_by_powers_of_ten() {
        assert_eq!(log_bin(None), 0);
        assert_eq!(log_bin(Some(0)), 0);
        assert_eq!(log_bin(Some(1)), 1);
        assert_eq!(log_bin(Some(9)), 1);
        assert_eq!(log_bin(Some(10)), 2);
        assert_eq!(log_bin(Some(u64::MAX)), LOG_BINS - 1);
    }
}
