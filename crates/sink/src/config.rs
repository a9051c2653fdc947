//! Sink configuration: `[[sink]]` tables in a TOML file or `--sink KIND[:TARGET]`
//! flags, checked once into [`SinkConfig`]s (every problem listed, not the first).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use flowhound_detect::Severity;
use serde::Deserialize;

use crate::SinkError;

/// What a sink is and where it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Incidents as flowhound's own JSON lines; `None` is stdout.
    Jsonl(Option<PathBuf>),
    /// OCSF Detection Finding (class 2004) JSON lines.
    Ocsf(Option<PathBuf>),
    /// Elastic Common Schema JSON lines.
    Ecs(Option<PathBuf>),
    /// SNS Publish to a topic ARN.
    Sns(String),
    /// CloudWatch PutMetricData into a namespace.
    CloudWatch(String),
    /// A JSON POST of the incident.
    Webhook(String),
    /// A Slack incoming-webhook message.
    Slack(String),
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Jsonl(_) => "jsonl",
            Target::Ocsf(_) => "ocsf",
            Target::Ecs(_) => "ecs",
            Target::Sns(_) => "sns",
            Target::CloudWatch(_) => "cloudwatch",
            Target::Webhook(_) => "webhook",
            Target::Slack(_) => "slack",
        }
    }

    /// The target as written after `KIND:`.
    pub fn address(&self) -> String {
        match self {
            Target::Jsonl(p) | Target::Ocsf(p) | Target::Ecs(p) => {
                p.as_ref().map_or_else(|| "-".to_string(), |p| p.display().to_string())
            }
            Target::Sns(s) | Target::CloudWatch(s) | Target::Webhook(s) | Target::Slack(s) => s.clone(),
        }
    }

    /// A file sink writing to stdout.
    pub fn is_stdout(&self) -> bool {
        matches!(self, Target::Jsonl(None) | Target::Ocsf(None) | Target::Ecs(None))
    }

    /// Whether messages cross a network (and so are retried and spooled).
    pub fn remote(&self) -> bool {
        matches!(self, Target::Sns(_) | Target::CloudWatch(_) | Target::Webhook(_) | Target::Slack(_))
    }
}

/// The CloudWatch namespace when none is given.
pub const DEFAULT_NAMESPACE: &str = "Flowhound";

/// One checked sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Unique among the run's sinks; names the spool file.
    pub name: String,
    pub target: Target,
    /// Incidents below this severity are not sent.
    pub min_severity: Severity,
    /// Only these threat classes, when not empty.
    pub classes: Vec<String>,
    /// Sustained messages per second and the burst allowed above it.
    pub rate: f64,
    pub burst: u32,
    /// Attempts after the first, with exponential backoff and full jitter.
    pub retries: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Per request (network sinks).
    pub timeout: Duration,
    /// Extra HTTP headers (webhook, slack), e.g. an Authorization token.
    pub headers: BTreeMap<String, String>,
    /// Extra CloudWatch dimensions on every metric.
    pub dimensions: BTreeMap<String, String>,
}

/// Delivery settings shared by the sinks.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// The same incident (threat class and actor) is not re-sent within this
    /// much event time of its last alert; its counters are updated instead.
    pub dedup_window: Duration,
    /// Where undeliverable messages wait, and where the dedup state lives.
    /// `None`: no spool — what cannot be delivered is dropped (an error).
    pub spool_dir: Option<PathBuf>,
    /// Spool size per sink; past it messages are dropped (an error).
    pub spool_max_bytes: u64,
    /// At the end of a run, how long to keep trying a sink that is down
    /// before leaving its messages in the spool for the next run.
    pub flush_timeout: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            dedup_window: Duration::from_secs(3600),
            spool_dir: None,
            spool_max_bytes: 64 << 20,
            flush_timeout: Duration::from_secs(10),
        }
    }
}

/// A whole checked configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub sinks: Vec<SinkConfig>,
    pub delivery: DeliveryConfig,
}

/// A `[[sink]]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    pub kind: String,
    /// Path, `-`, topic ARN, namespace or URL, by kind.
    pub target: Option<String>,
    pub name: Option<String>,
    pub min_severity: Option<String>,
    pub classes: Option<Vec<String>>,
    /// Messages per second.
    pub rate: Option<f64>,
    pub burst: Option<u32>,
    pub retries: Option<u32>,
    /// Durations: `250ms`, `2s`, `1m`.
    pub backoff: Option<String>,
    pub max_backoff: Option<String>,
    pub timeout: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub dimensions: Option<BTreeMap<String, String>>,
}

/// The `[delivery]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySpec {
    pub dedup_window: Option<String>,
    pub spool_dir: Option<PathBuf>,
    /// `64MiB`, `500KiB`, `1GiB` or bytes.
    pub spool_max: Option<String>,
    pub flush_timeout: Option<String>,
}

/// A configuration file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    #[serde(default)]
    pub sink: Vec<SinkSpec>,
    #[serde(default)]
    pub delivery: DeliverySpec,
}

impl SinkSpec {
    /// `KIND[:TARGET]` as given to `--sink`: split at the first colon only,
    /// since URLs and ARNs carry colons of their own.
    pub fn from_flag(s: &str) -> SinkSpec {
        let (kind, target) = match s.split_once(':') {
            Some((k, t)) => (k, Some(t.to_string())),
            None => (s, None),
        };
        SinkSpec { kind: kind.trim().to_ascii_lowercase(), target, ..Default::default() }
    }
}

/// `250ms`, `2s`, `90s`, `15m`, `1h`, `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.')?);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// `64MiB`, `512MiB`, `2GiB`, `100MB`, `10 kb`, `4096` (bytes); units are
/// binary and case-insensitive. Also `serve --max-upload`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn severity(s: &str) -> Option<Severity> {
    match s.to_ascii_lowercase().as_str() {
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        _ => None,
    }
}

fn file_target(t: Option<&str>) -> Option<PathBuf> {
    match t {
        None | Some("") | Some("-") => None,
        Some(p) => Some(PathBuf::from(p)),
    }
}

fn http_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://")) && u.len() > "http://".len()
}

impl ConfigSpec {
    /// Parses a TOML configuration; syntax errors name the line.
    pub fn parse(text: &str) -> Result<ConfigSpec, SinkError> {
        toml::from_str(text).map_err(|e| SinkError::Config(vec![e.to_string()]))
    }

    /// Checks every sink and the delivery settings; the error lists every
    /// problem found.
    pub fn check(&self) -> Result<Config, SinkError> {
        let mut problems = Vec::new();
        let mut sinks = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, s) in self.sink.iter().enumerate() {
            let at = format!("sink {} ({})", i + 1, s.kind);
            let before = problems.len();
            let target = s.target.as_deref().map(str::trim);
            let target = match (s.kind.as_str(), target) {
                ("jsonl", t) => Some(Target::Jsonl(file_target(t))),
                ("ocsf", t) => Some(Target::Ocsf(file_target(t))),
                ("ecs", t) => Some(Target::Ecs(file_target(t))),
                ("sns", Some(t)) if t.starts_with("arn:") && t.split(':').count() >= 6 => Some(Target::Sns(t.into())),
                ("sns", t) => {
                    problems.push(format!("{at}: needs a topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME), got {t:?}"));
                    None
                }
                ("cloudwatch", None | Some("")) => Some(Target::CloudWatch(DEFAULT_NAMESPACE.into())),
                ("cloudwatch", Some(t)) if !t.starts_with("AWS/") && t.len() <= 255 => {
                    Some(Target::CloudWatch(t.into()))
                }
                ("cloudwatch", Some(t)) => {
                    problems.push(format!("{at}: namespace {t:?} is reserved or too long"));
                    None
                }
                ("webhook" | "slack", Some(t)) if http_url(t) => {
                    Some(if s.kind == "slack" { Target::Slack(t.into()) } else { Target::Webhook(t.into()) })
                }
                ("webhook" | "slack", t) => {
                    problems.push(format!("{at}: needs an http(s) URL, got {t:?}"));
                    None
                }
                (k, _) => {
                    problems.push(format!(
                        "sink {}: unknown kind {k:?} (jsonl, ocsf, ecs, sns, cloudwatch, webhook, slack)",
                        i + 1
                    ));
                    None
                }
            };
            let min_severity = match s.min_severity.as_deref() {
                None => Severity::Low,
                Some(v) => severity(v).unwrap_or_else(|| {
                    problems.push(format!("{at}: min_severity {v:?} is not low, medium or high"));
                    Severity::Low
                }),
            };
            let mut duration = |field: &str, v: Option<&String>, default: Duration| match v {
                None => default,
                Some(v) => parse_duration(v).unwrap_or_else(|| {
                    problems.push(format!("{at}: {field} {v:?} is not a duration like 250ms, 2s or 1m"));
                    default
                }),
            };
            let backoff = duration("backoff", s.backoff.as_ref(), Duration::from_millis(200));
            let max_backoff = duration("max_backoff", s.max_backoff.as_ref(), Duration::from_secs(5));
            let timeout = duration("timeout", s.timeout.as_ref(), Duration::from_secs(10));
            if timeout.is_zero() {
                problems.push(format!("{at}: timeout must be above zero"));
            }
            let rate = s.rate.unwrap_or(50.0);
            if !(rate.is_finite() && rate > 0.0) {
                problems.push(format!("{at}: rate {rate} must be a positive number of messages per second"));
            }
            let retries = s.retries.unwrap_or(4);
            if retries > 20 {
                problems.push(format!("{at}: retries {retries} is more than 20"));
            }
            let headers = s.headers.clone().unwrap_or_default();
            for (k, v) in &headers {
                let name_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if !name_ok || v.bytes().any(|b| b == b'\r' || b == b'\n') {
                    problems.push(format!("{at}: header {k:?} is not a valid header name and value"));
                }
            }
            if !headers.is_empty() && !matches!(s.kind.as_str(), "webhook" | "slack") {
                problems.push(format!("{at}: headers apply to webhook and slack sinks only"));
            }
            let dimensions = s.dimensions.clone().unwrap_or_default();
            if !dimensions.is_empty() && s.kind != "cloudwatch" {
                problems.push(format!("{at}: dimensions apply to cloudwatch sinks only"));
            }
            if dimensions.len() > 28 {
                problems.push(format!("{at}: at most 28 extra dimensions (CloudWatch allows 30 in all)"));
            }
            // Default: kind and a hash of the target, so a sink keeps its
            // spool file when others are added or reordered.
            let name = s.name.clone().unwrap_or_else(|| {
                use sha2::Digest as _;
                let h = sha2::Sha256::digest(target.as_ref().map(Target::address).unwrap_or_default().as_bytes());
                format!("{}-{:02x}{:02x}{:02x}{:02x}", s.kind, h[0], h[1], h[2], h[3])
            });
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) || name.is_empty() {
                problems.push(format!("{at}: name {name:?} may hold only letters, digits, '-', '_' and '.'"));
            } else if !names.insert(name.clone()) {
                problems.push(format!("{at}: name {name:?} is used twice (give each sink its own `name`)"));
            }
            if let (Some(target), true) = (target, problems.len() == before) {
                sinks.push(SinkConfig {
                    name,
                    target,
                    min_severity,
                    classes: s.classes.clone().unwrap_or_default(),
                    rate,
                    burst: s.burst.unwrap_or(10).max(1),
                    retries,
                    backoff,
                    max_backoff: max_backoff.max(backoff),
                    timeout,
                    headers,
                    dimensions,
                });
            }
        }
        let mut delivery = DeliveryConfig { spool_dir: self.delivery.spool_dir.clone(), ..Default::default() };
        if let Some(w) = &self.delivery.dedup_window {
            match parse_duration(w) {
                Some(d) => delivery.dedup_window = d,
                None => problems.push(format!("delivery: dedup_window {w:?} is not a duration like 15m or 1h")),
            }
        }
        if let Some(w) = &self.delivery.flush_timeout {
            match parse_duration(w) {
                Some(d) => delivery.flush_timeout = d,
                None => problems.push(format!("delivery: flush_timeout {w:?} is not a duration like 10s")),
            }
        }
        if let Some(m) = &self.delivery.spool_max {
            match parse_size(m) {
                Some(n) if n > 0 => delivery.spool_max_bytes = n,
                _ => problems.push(format!("delivery: spool_max {m:?} is not a size like 64MiB")),
            }
        }
        let stdout = sinks.iter().filter(|s| s.target.is_stdout()).count();
        if stdout > 1 {
            problems.push(format!("{stdout} sinks write to stdout; give all but one a file"));
        }
        if problems.is_empty() {
            Ok(Config { sinks, delivery })
        } else {
            Err(SinkError::Config(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_split_at_the_first_colon() {
        let s = SinkSpec::from_flag("webhook:https://hooks.example/x?a=b:c");
        assert_eq!((s.kind.as_str(), s.target.as_deref()), ("webhook", Some("https://hooks.example/x?a=b:c")));
        let s = SinkSpec::from_flag("cloudwatch");
        assert_eq!((s.kind.as_str(), s.target), ("cloudwatch", None));
        let c = ConfigSpec {
            sink: vec![
                SinkSpec::from_flag("sns:arn:aws:sns:us-east-1:123456789012:alerts"),
                SinkSpec::from_flag("cloudwatch"),
                SinkSpec::from_flag("jsonl:-"),
            ],
            ..Default::default()
        }
        .check()
        .expect("valid");
        assert_eq!(c.sinks[0].target, Target::Sns("arn:aws:sns:us-east-1:123456789012:alerts".into()));
        assert_eq!(c.sinks[1].target, Target::CloudWatch("Flowhound".into()));
        assert_eq!(c.sinks[2].target, Target::Jsonl(None));
        let names: Vec<&str> = c.sinks.iter().map(|s| s.name.as_str()).collect();
        assert!(names[0].starts_with("sns-") && names[0].len() == 12, "{names:?}");
        assert_ne!(names[1], names[2]);
        // Stable: the same target gives the same name (and spool file) next run.
        let again = ConfigSpec {
            sink: vec![SinkSpec::from_flag("sns:arn:aws:sns:us-east-1:123456789012:alerts")],
            ..Default::default()
        };
        assert_eq!(again.check().expect("valid").sinks[0].name, names[0]);
    }

    #[test]
    fn every_problem_is_listed() {
        let text = r#"
[delivery]
dedup_window = "soon"
spool_max = "lots"

[[sink]]
kind = "sns"
target = "my-topic"

[[sink]]
kind = "webhook"
target = "ftp://x"
min_severity = "critical"
headers = { "Bad Header" = "x" }

[[sink]]
kind = "pager"

[[sink]]
kind = "jsonl"
rate = -1
timeout = "0s"
"#;
        let SinkError::Config(p) = ConfigSpec::parse(text).expect("TOML").check().expect_err("invalid") else {
            panic!("not a config error")
        };
        assert_eq!(p.len(), 9, "{p:#?}");
        for want in
            ["topic ARN", "http(s) URL", "critical", "Bad Header", "unknown kind", "rate -1", "timeout", "soon", "lots"]
        {
            assert!(p.iter().any(|m| m.contains(want)), "{want}: {p:#?}");
        }
        assert!(ConfigSpec::parse("[[sink]]\nkind = \"jsonl\"\ncolour = 1\n").is_err());
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("10 kb"), Some(10 << 10));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5TB"), None);
    }
}
