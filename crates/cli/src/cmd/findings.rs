//! Explanations, threat classes, suppression and incidents in `detect`'s
//! outputs (JSON lines and tables).

use std::path::{Path, PathBuf};

use crate::exit::{Classify, CliError, CliResult};
use flowhound_detect::bundle::Bundle;
use flowhound_explain::json::time;
use flowhound_explain::{Allowlist, ExplainParams, Explainer, Incident, IncidentParams, Incidents};

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

fn read(path: &Path, what: &str) -> CliResult<String> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(anyhow::Error::from(e).context(format!("cannot read {what} {}", path.display()))))
}

/// The explainer, allowlist and incident builder for one `detect` run.
#[derive(Debug)]
pub struct Findings {
    pub explainer: Explainer,
    pub allow: Allowlist,
    pub incidents: Incidents,
}

impl FindingArgs {
    /// Builds the run's explainer, allowlist and incident builder; bad files
    /// are usage errors listing every problem.
    pub fn build(&self, bundle: &Bundle) -> CliResult<Findings> {
        let rules = self.rules.as_deref().map(|p| read(p, "rules")).transpose()?;
        let explainer = Explainer::new(bundle, rules.as_deref(), &ExplainParams { top: self.top_features })
            .map_err(anyhow::Error::from)
            .usage()?;
        let allow = load_allowlist(self.allowlist.as_deref())?;
        let gap = flowhound_features::schema::parse_window(&self.incident_gap)
            .filter(|g| *g > 0)
            .ok_or_else(|| {
                anyhow::anyhow!("--incident-gap {:?}: expected a duration like 90s, 15m or 1h", self.incident_gap)
            })
            .usage()?;
        let period = match self.incident_period.as_str() {
            "off" | "0" => Some(0),
            p => flowhound_features::schema::parse_window(p).filter(|p| *p > 0),
        }
        .ok_or_else(|| {
            anyhow::anyhow!("--incident-period {:?}: expected a duration like 1h or 1d, or off", self.incident_period)
        })
        .usage()?;
        Ok(Findings {
            explainer,
            allow,
            incidents: Incidents::new(IncidentParams {
                gap_secs: gap,
                period_secs: period,
                samples: 5,
                ..Default::default()
            }),
        })
    }
}

/// An `--allowlist` file, checked as of now (bad entries are usage errors
/// listing every problem; expired ones are warned about and not applied),
/// or the empty list.
pub fn load_allowlist(path: Option<&Path>) -> CliResult<Allowlist> {
    let Some(p) = path else { return Ok(Allowlist::default()) };
    let list = Allowlist::parse(&read(p, "allowlist")?, flowhound_explain::allow::now_secs())
        .map_err(|e| anyhow::Error::from(e).context(format!("in {}", p.display())))
        .usage()?;
    for e in list.expired() {
        eprintln!("warning: allowlist {}: {e} has expired and is not applied", p.display());
    }
    Ok(list)
}

/// `1h 02m`, `41s`.
fn span(i: &Incident) -> String {
    match (i.first_seen, i.last_seen) {
        (Some(a), Some(b)) => {
            let s = (b - a) / 1_000_000;
            if s >= 3600 {
                format!("{}h {:02}m", s / 3600, s % 3600 / 60)
            } else if s >= 60 {
                format!("{}m {:02}s", s / 60, s % 60)
            } else {
                format!("{s}s")
            }
        }
        _ => "-".into(),
    }
}

pub fn incident_table_head() -> String {
    format!(
        "{:>4} {:<6} {:<18} {:<39} {:>7} {:>7} {:>6} {:<20} {:>8}  {}\n",
        "id", "sev", "class", "actor", "flows", "targets", "ports", "first seen", "span", "reason"
    )
}

pub fn incident_table_row(i: &Incident) -> String {
    let first = time(i.first_seen);
    let first = first.as_str().map_or("-", |t| t.get(..19).unwrap_or(t));
    format!(
        "{:>4} {:<6} {:<18} {:<39} {:>7} {:>7} {:>6} {:<20} {:>8}  {}\n",
        i.id,
        i.peak_severity.name(),
        i.class.as_ref(),
        i.actor.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
        i.flows,
        i.targets.len(),
        i.ports.len(),
        first,
        span(i),
        i.reason
    )
}
