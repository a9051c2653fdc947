//! Explanations, threat classes, suppression and incidents in `detect`'s
//! outputs (JSON lines and tables).

use std::path::{Path, PathBuf};

use crate::exit::CliResult;
use flowhound_detect::bundle::Bundle;
use flowhound_engine::config::FindingParams;
use flowhound_explain::Allowlist;

pub use flowhound_engine::config::Findings;

/// `detect`'s options for explanations, suppression and incidents.
#[derive(Debug, Clone, clap::Args)]
pub struct FindingArgs {
    /// Print incidents (flagged flows grouped by threat class and actor) instead of flows.
    #[arg(long)]
    pub incidents: bool,

    /// TOML allowlist (docs/explain.md): matching flows are still scored but
    /// reported as suppressed.
    #[arg(long, value_name = "FILE")]
    pub allowlist: Option<PathBuf>,

    /// Write suppressed anomalies and incidents too, marked `suppressed`.
    #[arg(long)]
    pub show_suppressed: bool,

    /// TOML threat-class rules replacing the default table (docs/explain.md).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Quiet time that closes an incident outside its period (`90s`, `15m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub incident_gap: String,

    /// The period one incident of an actor and class covers, from midnight
    /// UTC (`1d`, `1h`; `off`: the gap alone): a scanner is one incident for
    /// the day, its count and extent updated however it pauses.
    #[arg(long, value_name = "DURATION", default_value = "1d")]
    pub incident_period: String,

    /// Features listed in each flow's explanation.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top_features: usize,
}

impl Default for FindingArgs {
    fn default() -> Self {
        FindingArgs {
            incidents: false,
            allowlist: None,
            show_suppressed: false,
            rules: None,
            incident_gap: "15m".into(),
            incident_period: "1d".into(),
            top_features: 5,
        }
    }
}

impl FindingArgs {
    pub fn params(&self) -> FindingParams {
        FindingParams {
            rules: self.rules.clone(),
            allowlist: self.allowlist.clone(),
            incident_gap: self.incident_gap.clone(),
            incident_period: self.incident_period.clone(),
            top_features: self.top_features,
        }
    }

    /// Builds the run's explainer, allowlist and incident builder; bad files
    /// are usage errors listing every problem.
    pub fn build(&self, bundle: &Bundle) -> CliResult<Findings> {
        Ok(self.params().build(bundle, &mut |w| eprintln!("warning: {w}"))?)
    }
}

/// An `--allowlist` file, checked as of now (bad entries are usage errors
/// listing every problem; expired ones are warned about and not applied),
/// or the empty list.
pub fn load_allowlist(path: Option<&Path>) -> CliResult<Allowlist> {
    Ok(flowhound_engine::config::load_allowlist(path, &mut |w| eprintln!("warning: {w}"))?)
}
