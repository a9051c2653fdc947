//! flowhound-synth: seeded, realistic, labeled traffic of a small AWS VPC.
//!
//! The network: web servers behind the Internet, app servers, databases, caches,
//! a bastion, monitoring and batch workers in one VPC, talking to each other, to
//! the VPC resolver, to external APIs and to Internet clients. Security groups
//! decide ACCEPT/REJECT; volume follows a diurnal curve; sizes and client
//! popularity are heavy-tailed. Attack scenarios, one per threat class flowhound
//! detects, are injected at `anomaly_ratio` of all records and labeled with their
//! [`Scenario`] name.
//!
//! Same parameters and seed → the same records in the same order, on any machine
//! (ChaCha8 is portable; nothing depends on hash order or the clock).

mod scenario;
mod world;

use flowhound_flow::{FlowRecord, GroundTruth, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use scenario::Scenario;
use world::World;

/// What to generate. Validated by [`GenParams::check`].
#[derive(Debug, Clone)]
pub struct GenParams {
    /// Number of flow records (each direction of a connection is one record, as
    /// VPC Flow Logs write them).
    pub flows: u64,
    /// Share of records that belong to attack scenarios, in [0, 1).
    pub anomaly_ratio: f64,
    pub seed: u64,
    /// First second of the generated period.
    pub start: Timestamp,
    /// Length of the period in hours.
    pub hours: u32,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            flows: 100_000,
            anomaly_ratio: 0.05,
            seed: 42,
            // 2026-11-02T00:00:00Z, a Monday.
            start: Timestamp(1_793_577_600_000_000),
            hours: 24,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid generator parameters: {}", .0.join("; "))]
pub struct GenError(pub Vec<String>);

impl GenParams {
    /// Lists every problem, not the first.
    pub fn check(&self) -> Result<(), GenError> {
        let mut p = Vec::new();
        if self.flows == 0 {
            p.push("--flows must be at least 1".to_string());
        }
        if self.flows > 1_000_000_000 {
            p.push("--flows must be at most 1e9".to_string());
        }
        if !(0.0..1.0).contains(&self.anomaly_ratio) || self.anomaly_ratio.is_nan() {
            p.push(format!("--anomaly-ratio {} must be in [0, 1)", self.anomaly_ratio));
        }
        if self.hours == 0 || self.hours > 24 * 366 {
            p.push(format!("--hours {} must be 1..=8784", self.hours));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(GenError(p))
        }
    }
}

/// Counts of what was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenSummary {
    pub records: u64,
    pub malicious: u64,
    /// Records per scenario, in [`Scenario::ALL`] order.
    pub by_scenario: Vec<(Scenario, u64)>,
}

/// Diurnal weight of an hour of day (UTC): low at night, peak mid-afternoon.
fn diurnal(hour: f64) -> f64 {
    0.3 + 0.7 * (0.5 - 0.5 * ((hour - 3.0) / 24.0 * std::f64::consts::TAU).cos())
}

/// Records as a VPC Flow Logs file (header included) and its labels file,
/// as `flowhound generate` writes them (labels name log lines, the header is
/// line 1).
pub fn vpc_with_labels(recs: &[FlowRecord]) -> (Vec<u8>, Vec<u8>) {
    let w = flowhound_flow::write::VpcWriter::default();
    let mut text = Vec::new();
    w.header(&mut text);
    let mut labels = format!("{}\n", flowhound_flow::labels::LabelTable::HEADER);
    for (i, r) in recs.iter().enumerate() {
        w.write(r, &mut text);
        flowhound_flow::labels::LabelTable::write_line(&mut labels, i as u64 + 2, r.truth.as_ref());
    }
    (text, labels.into_bytes())
}

/// Generates the traffic in time order, handing batches (one per minute) to
/// `sink`. Every record carries `truth`; writers decide where it goes.
pub fn generate<E>(params: &GenParams, mut sink: impl FnMut(&[FlowRecord]) -> Result<(), E>) -> Result<GenSummary, E> {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let world = World::new(&mut rng);
    let minutes = u64::from(params.hours) * 60;
    let t0 = params.start.secs();
    let malicious_budget = ((params.flows as f64) * params.anomaly_ratio).round() as u64;
    let normal_budget = params.flows - malicious_budget.min(params.flows);

    // Attacks first: their records are few enough to hold, then merged by time.
    let mut attacks = scenario::plan(&world, &mut rng, malicious_budget, t0, minutes);
    attacks.sort_by_key(|r| r.start);
    let mut by_scenario: Vec<(Scenario, u64)> = Scenario::ALL.iter().map(|s| (*s, 0)).collect();
    for r in &attacks {
        if let Some(i) = r.truth.as_ref().and_then(|t| t.category.as_deref()).and_then(Scenario::index_of) {
            by_scenario[i].1 += 1;
        }
    }

    // Normal records per minute: diurnal weights with a little noise, rounded
    // cumulatively so they add up to the budget exactly.
    let weights: Vec<f64> = (0..minutes)
        .map(|m| {
            let hour = ((t0 + m as i64 * 60).rem_euclid(86_400)) as f64 / 3600.0;
            diurnal(hour) * rng.gen_range(0.85..1.15)
        })
        .collect();
    let total_w: f64 = weights.iter().sum();
    let mut acc = 0.0;
    let mut assigned = 0u64;
    let mut ai = 0;
    let mut batch: Vec<FlowRecord> = Vec::new();
    let mut summary = GenSummary { by_scenario, ..Default::default() };
    for (m, w) in weights.iter().enumerate() {
        acc += w;
        let upto = if m as u64 + 1 == minutes {
            normal_budget
        } else {
            ((acc / total_w) * normal_budget as f64).round() as u64
        };
        let n = upto.saturating_sub(assigned);
        assigned += n;
        let minute_start = t0 + m as i64 * 60;
        batch.clear();
        world.normal_minute(&mut rng, minute_start, n as usize, &mut batch);
        let minute_end = Timestamp::from_secs(minute_start + 60);
        while ai < attacks.len() && (attacks[ai].start < minute_end || m as u64 + 1 == minutes) {
            batch.push(std::mem::take(&mut attacks[ai]));
            ai += 1;
        }
        // Stable: records of one second keep generation order, so output is a
        // pure function of the seed.
        batch.sort_by_key(|r| r.start);
        for r in &batch {
            summary.records += 1;
            if r.truth.as_ref().is_some_and(|t| t.malicious) {
                summary.malicious += 1;
            }
        }
        sink(&batch)?;
    }
    Ok(summary)
}

pub(crate) fn benign() -> Option<GroundTruth> {
    Some(GroundTruth { malicious: false, category: None })
}
