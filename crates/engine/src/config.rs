//! A run's settings, checked once: the model and its thresholds, the
//! findings (rules, allowlist, incidents), the alert sinks. Each `…Params`
//! is plain data a front end fills from its flags (the CLI), its environment
//! (the Lambda) or its page (the dashboard); `check`/`load`/`open` builds the
//! runtime part and lists every problem, not the first.
//!
//! Problems name the command-line flag they come from (`--threshold`,
//! `--incident-gap`): that is how users meet these settings, and the Lambda
//! documents which variable sets which flag.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{Kind, Severity};
use flowhound_explain::{Allowlist, ExplainParams, Explainer, IncidentParams, Incidents};
use flowhound_flow::labels::LabelTable;
use flowhound_flow::tabular::Mapping;
use flowhound_flow::Format;
use flowhound_sink::{Config, ConfigSpec, Dispatcher, Meta, SinkSpec};
use flowhound_source::{Input, ScanOptions};

use crate::step::Show;

/// A setting that cannot be used; exit code 2 in the CLI.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Problems with the settings, every one.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// A file the settings name cannot be read or used.
    #[error("{what}")]
    File {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ConfigError {
    fn one(s: impl Into<String>) -> ConfigError {
        ConfigError::Invalid(vec![s.into()])
    }

    fn file(what: impl Into<String>, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ConfigError {
        ConfigError::File { what: what.into(), source: e.into() }
    }
}

/// `what`: the kind of file, for the message (`rules`), or "".
fn read(path: &Path, what: &str) -> Result<String, ConfigError> {
    let sep = if what.is_empty() { "" } else { " " };
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(format!("cannot read {what}{sep}{}", path.display()), e))
}

/// A model folder and how its thresholds are moved.
#[derive(Debug, Clone, Default)]
pub struct ModelParams {
    pub dir: PathBuf,
    /// `NAME=VALUE` threshold overrides (raw score units).
    pub thresholds: Vec<String>,
    /// A false-positive budget instead of the one the model was trained with.
    pub fpr: Option<f64>,
}

impl ModelParams {
    /// Loads the model and applies the overrides.
    pub fn load(&self) -> Result<Bundle, ConfigError> {
        let dir = &self.dir;
        let mut bundle =
            Bundle::load(dir).map_err(|e| ConfigError::file(format!("cannot use model {}", dir.display()), e))?;
        let mut bad = Vec::new();
        for t in &self.thresholds {
            let parsed = t.split_once('=').and_then(|(k, v)| Some((Kind::parse(k)?, v.trim().parse::<f32>().ok()?)));
            match parsed {
                Some((k, v)) if v.is_finite() => {
                    if !bundle.ensemble.set_threshold(k, v) {
                        bad.push(format!("{t:?}: the model has no {} detector", k.name()));
                    }
                }
                _ => bad.push(format!("{t:?}: expected NAME=NUMBER, e.g. iforest=0.6")),
            }
        }
        if !bad.is_empty() {
            return Err(ConfigError::one(format!("--threshold: {}", bad.join("; "))));
        }
        if let Some(f) = self.fpr {
            if !(f > 0.0 && f < 0.5) {
                return Err(ConfigError::one(format!("--fpr {f}: a share in (0, 0.5), e.g. 0.001")));
            }
            if !bundle.ensemble.set_fpr(f) {
                return Err(ConfigError::one(format!(
                    "--fpr: model {} was trained with --contamination, without a false-positive budget; retrain it with --fpr",
                    dir.display()
                )));
            }
        }
        Ok(bundle)
    }
}

/// Explanations, suppression and incidents.
#[derive(Debug, Clone)]
pub struct FindingParams {
    /// TOML threat-class rules replacing the default table.
    pub rules: Option<PathBuf>,
    /// TOML allowlist: matching flows are scored but suppressed.
    pub allowlist: Option<PathBuf>,
    /// Quiet time that closes an incident outside its period (`15m`).
    pub incident_gap: String,
    /// The period one incident covers from midnight UTC (`1d`; `off`).
    pub incident_period: String,
    /// Features listed in each explanation.
    pub top_features: usize,
}

impl Default for FindingParams {
    fn default() -> Self {
        FindingParams {
            rules: None,
            allowlist: None,
            incident_gap: "15m".into(),
            incident_period: "1d".into(),
            top_features: 5,
        }
    }
}

/// The explainer, allowlist and incident builder of one run.
#[derive(Debug)]
pub struct Findings {
    pub explainer: Explainer,
    pub allow: Allowlist,
    pub incidents: Incidents,
}

impl FindingParams {
    /// Builds the run's explainer, allowlist (as of now) and incident
    /// builder; `warn` hears of allowlist entries that expired.
    pub fn build(&self, bundle: &Bundle, warn: &mut dyn FnMut(String)) -> Result<Findings, ConfigError> {
        let rules = self.rules.as_deref().map(|p| read(p, "rules")).transpose()?;
        let explainer = Explainer::new(bundle, rules.as_deref(), &ExplainParams { top: self.top_features })
            .map_err(|e| ConfigError::one(e.to_string()))?;
        let allow = load_allowlist(self.allowlist.as_deref(), warn)?;
        let mut bad = Vec::new();
        let gap =
            flowhound_features::schema::parse_window(&self.incident_gap).filter(|g| *g > 0).unwrap_or_else(|| {
                bad.push(format!("--incident-gap {:?}: expected a duration like 90s, 15m or 1h", self.incident_gap));
                0
            });
        let period = match self.incident_period.as_str() {
            "off" | "0" => Some(0),
            p => flowhound_features::schema::parse_window(p).filter(|p| *p > 0),
        }
        .unwrap_or_else(|| {
            bad.push(format!(
                "--incident-period {:?}: expected a duration like 1h or 1d, or off",
                self.incident_period
            ));
            0
        });
        if !bad.is_empty() {
            return Err(ConfigError::Invalid(bad));
        }
        let incidents =
            Incidents::new(IncidentParams { gap_secs: gap, period_secs: period, samples: 5, ..Default::default() });
        Ok(Findings { explainer, allow, incidents })
    }
}

/// An allowlist file checked as of now (bad entries list every problem;
/// `warn` hears of expired ones, which are not applied), or the empty list.
pub fn load_allowlist(path: Option<&Path>, warn: &mut dyn FnMut(String)) -> Result<Allowlist, ConfigError> {
    let Some(p) = path else { return Ok(Allowlist::default()) };
    let list = Allowlist::parse(&read(p, "allowlist")?, flowhound_explain::allow::now_secs())
        .map_err(|e| ConfigError::file(format!("in {}", p.display()), e))?;
    for e in list.expired() {
        warn(format!("allowlist {}: {e} has expired and is not applied", p.display()));
    }
    Ok(list)
}

/// Which flows a run shows, by name.
pub fn min_severity(name: &str) -> Option<Severity> {
    match name {
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        _ => None,
    }
}

impl Show {
    /// Flagged flows of at least `min_severity`, suppressed ones hidden.
    pub fn at_least(min_severity: Severity) -> Show {
        Show { min_severity, ..Show::default() }
    }
}

/// Where incidents are alerted, besides the run's own output.
#[derive(Debug, Clone, Default)]
pub struct SinkParams {
    /// TOML file with `[[sink]]` tables and a `[delivery]` table.
    pub config: Option<PathBuf>,
    /// `KIND[:TARGET]` sinks.
    pub sinks: Vec<String>,
    /// Where undeliverable alerts wait, and the dedup memory.
    pub spool_dir: Option<PathBuf>,
    /// Event time within which an incident of the same class and actor is not re-sent.
    pub dedup_window: Option<String>,
    /// The spool when neither the config nor `spool_dir` names one.
    pub default_spool: Option<PathBuf>,
}

impl SinkParams {
    /// The checked configuration, or `None` when no sink is configured.
    pub fn load(&self) -> Result<Option<Config>, ConfigError> {
        let mut spec = match &self.config {
            Some(p) => {
                ConfigSpec::parse(&read(p, "")?).map_err(|e| ConfigError::file(format!("in {}", p.display()), e))?
            }
            None => ConfigSpec::default(),
        };
        spec.sink.extend(self.sinks.iter().map(|s| SinkSpec::from_flag(s)));
        if let Some(w) = &self.dedup_window {
            spec.delivery.dedup_window = Some(w.clone());
        }
        if let Some(d) = &self.spool_dir {
            spec.delivery.spool_dir = Some(d.clone());
        }
        if spec.sink.is_empty() {
            return Ok(None);
        }
        let mut config = spec.check().map_err(|e| match e {
            flowhound_sink::SinkError::Config(p) => {
                ConfigError::one(format!("sink configuration:\n  {}", p.join("\n  ")))
            }
            e => ConfigError::one(e.to_string()),
        })?;
        if config.delivery.spool_dir.is_none() {
            config.delivery.spool_dir = self.default_spool.clone();
        }
        Ok(Some(config))
    }

    /// The configured sinks, opened before any work is done so a bad path
    /// or client fails the run at once; `None` without sinks. `command`'s
    /// own output (`output`, stdout when absent or `-`) and a sink cannot
    /// both take stdout. Alerts name the model folder and the `source`.
    pub fn open(
        &self,
        command: &str,
        output: Option<&Path>,
        model: &Path,
        source: impl FnOnce() -> String,
    ) -> Result<Option<Dispatcher>, ConfigError> {
        let Some(config) = self.load()? else { return Ok(None) };
        let to_stdout = output.is_none_or(|p| p.as_os_str() == "-");
        if to_stdout && config.sinks.iter().any(|s| s.target.is_stdout()) {
            return Err(ConfigError::one(format!(
                "a sink writes to stdout and so would {command}'s own output: give {command} -o FILE, or the sink a file"
            )));
        }
        let meta = Meta { model: file_name(&model.to_string_lossy()), source: source() };
        let d = Dispatcher::new(&config, meta).map_err(|e| ConfigError::one(format!("cannot open the sinks: {e}")))?;
        Ok(Some(d))
    }
}

/// A file's own name: the folders it sits in are nobody else's business.
pub fn file_name(path: &str) -> String {
    Path::new(path).file_name().map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

/// Durations of a live run's flags, every bad one listed.
pub fn durations<const N: usize>(flags: [(&str, &str); N]) -> Result<[Duration; N], ConfigError> {
    let mut bad = Vec::new();
    let out = flags.map(|(flag, v)| match flowhound_sink::config::parse_duration(v) {
        Some(d) => d,
        None => {
            bad.push(format!("{flag} {v:?}: expected a duration like 250ms, 10s, 5m"));
            Duration::ZERO
        }
    });
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError::Invalid(bad))
    }
}

/// Where records come from in a batch run, and how they are read.
#[derive(Debug, Clone, Default)]
pub struct InputParams {
    /// Files, directories, globs, `s3://BUCKET/PREFIX`, or `-`.
    pub inputs: Vec<String>,
    /// Only paths dated on or after this day (YYYY-MM-DD) …
    pub since: Option<String>,
    /// … and on or before this one.
    pub until: Option<String>,
    /// Skip format detection.
    pub input_format: Option<String>,
    /// A column mapping (TOML) for an unknown CSV.
    pub map_file: Option<PathBuf>,
    /// `FIELD=COLUMN` mappings.
    pub map: Vec<String>,
    /// The mapped CSV has no header line.
    pub no_header: bool,
    /// Ground truth for a single input, by line.
    pub labels: Option<PathBuf>,
    /// Read everything first and take the flows oldest first.
    pub sort_time: bool,
}

/// Checked inputs, to resolve into files and objects.
#[derive(Debug)]
pub struct Resolve {
    inputs: Vec<String>,
    days: flowhound_source::DayRange,
    labels: bool,
}

impl Resolve {
    /// The files and objects to read, in order.
    pub fn resolve(self) -> Result<Vec<Input>, InputError> {
        let inputs = flowhound_source::resolve_in(&self.inputs, &self.days)?;
        if self.labels && inputs.len() != 1 {
            return Err(InputError::Labels(inputs.len()));
        }
        Ok(inputs)
    }
}

/// Inputs that cannot be read as given (exit code 3 in the CLI).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Source(#[from] flowhound_source::SourceError),
    #[error("--labels describes one log by line number, but {0} inputs were given")]
    Labels(usize),
}

impl InputParams {
    /// Checks every option (every problem listed) and reads the mapping
    /// and labels files: the scan options, and the inputs still to resolve
    /// (resolving lists directories and S3 prefixes: an input error, not a
    /// setting's).
    pub fn check(&self) -> Result<(ScanOptions, Resolve), ConfigError> {
        let mut problems: Vec<String> = Vec::new();
        let mut mapping: Option<Mapping> = None;
        if let Some(p) = &self.map_file {
            match std::fs::read_to_string(p) {
                Ok(text) => match toml::from_str::<Mapping>(&text) {
                    Ok(m) => mapping = Some(m),
                    Err(e) => problems.push(format!("{}: {e}", p.display())),
                },
                Err(e) => problems.push(format!("{}: {e}", p.display())),
            }
        }
        for m in &self.map {
            match m.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                    let map = mapping.get_or_insert_with(Mapping::default);
                    if k.trim() == "extra" {
                        map.extra.push(v.trim().to_string());
                    } else {
                        map.columns.insert(k.trim().to_string(), v.trim().to_string());
                    }
                }
                _ => problems.push(format!("--map {m:?}: expected FIELD=COLUMN")),
            }
        }
        if self.no_header {
            match &mut mapping {
                Some(m) => m.header = Some(false),
                None => problems.push("--no-header applies to a mapped CSV: give --map or --map-file too".into()),
            }
        }
        let mut format = None;
        if let Some(m) = mapping {
            match m.check() {
                Ok(()) => format = Some(Format::Mapped(Arc::new(m))),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if let Some(name) = &self.input_format {
            if format.is_some() {
                problems.push("--input-format and --map/--map-file both say how to read the input; give one".into());
            }
            match Format::from_name(name) {
                Some(f) => format = Some(f),
                None => problems.push(format!("--input-format {name:?}: expected one of {}", Format::NAMES.join(", "))),
            }
        }
        let mut days = flowhound_source::DayRange::default();
        for (flag, value, slot) in
            [("--since", &self.since, &mut days.since), ("--until", &self.until, &mut days.until)]
        {
            if let Some(v) = value {
                match chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
                    Ok(d) => *slot = Some(d),
                    Err(_) => problems.push(format!("{flag} {v:?}: expected a day as YYYY-MM-DD")),
                }
            }
        }
        if let (Some(a), Some(b)) = (days.since, days.until) {
            if a > b {
                problems.push(format!("--since {a} is after --until {b}"));
            }
        }
        let mut labels = None;
        if let Some(p) = &self.labels {
            match std::fs::read(p)
                .map_err(|e| e.to_string())
                .and_then(|b| LabelTable::parse(&b).map_err(|e| e.to_string()))
            {
                Ok(t) => labels = Some(Arc::new(t)),
                Err(e) => problems.push(format!("--labels {}: {e}", p.display())),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(vec![problems.join("\n  ")]));
        }
        let opts = ScanOptions { format, labels, sort_by_time: self.sort_time, ..Default::default() };
        let labels = opts.labels.is_some();
        Ok((opts, Resolve { inputs: self.inputs.clone(), days, labels }))
    }
}
