//! The Lambda handler: each S3 ObjectCreated record names a new flow log
//! object; the engine's [`Detect`] scores it with the configured model and
//! sends the incidents to the configured sinks — the same job as `flowhound
//! detect s3://BUCKET/KEY --incidents --sink …`, without the command line
//! (no clap, no dashboard in this binary).
//!
//! Settings come from the function's environment (docs/lambda.md):
//! - `FLOWHOUND_MODEL`: a model folder in the package or a layer (`/opt/model`),
//!   or `s3://BUCKET/PREFIX/` fetched once per container into /tmp;
//! - `FLOWHOUND_SINKS`: sinks as `--sink` takes them, separated by spaces;
//! - `FLOWHOUND_CONFIG`: a TOML sink configuration in the package;
//! - `FLOWHOUND_MIN_SEVERITY`, `FLOWHOUND_FPR`, `FLOWHOUND_ALLOWLIST`,
//!   `FLOWHOUND_RULES`, `FLOWHOUND_INCIDENT_GAP`, `FLOWHOUND_INCIDENT_PERIOD`,
//!   `FLOWHOUND_DEDUP_WINDOW`: what `detect`'s flags of those names set.
//!
//! An invocation fails when an object could not be read or an alert could
//! not be delivered, so Lambda's own retry of the event gives at-least-once
//! delivery; the spool and dedup memory live in /tmp while the container does.

use std::path::PathBuf;

use aws_lambda_events::event::s3::S3Event;
use flowhound_detect::Severity;
use flowhound_engine::config::{min_severity, FindingParams, ModelParams, SinkParams};
use flowhound_engine::outfile::OutFile;
use flowhound_engine::write::Format;
use flowhound_engine::{Detect, Show};
use serde_json::{json, Value};

/// Settings read from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model: String,
    pub sinks: Vec<String>,
    pub config: Option<PathBuf>,
    /// Incidents below this are not alerted.
    pub min_severity: Severity,
    /// A false-positive budget instead of the model's.
    pub fpr: Option<f64>,
    /// Rules, allowlist and incident settings.
    pub findings: FindingParams,
    pub dedup_window: Option<String>,
    /// Scratch space: the fetched model, the spool, the last output.
    pub work: PathBuf,
}

impl Settings {
    /// Every problem of the environment, listed.
    pub fn from_env() -> Result<Settings, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut bad = Vec::new();
        if var("FLOWHOUND_ARGS").is_some() {
            bad.push("FLOWHOUND_ARGS is no longer read: set FLOWHOUND_MIN_SEVERITY, FLOWHOUND_FPR, FLOWHOUND_ALLOWLIST, FLOWHOUND_RULES, FLOWHOUND_INCIDENT_GAP, FLOWHOUND_INCIDENT_PERIOD or FLOWHOUND_DEDUP_WINDOW (docs/lambda.md)".to_string());
        }
        let model = var("FLOWHOUND_MODEL").unwrap_or_else(|| {
            bad.push("FLOWHOUND_MODEL is not set (a model folder or s3://BUCKET/PREFIX/)".into());
            String::new()
        });
        let min = var("FLOWHOUND_MIN_SEVERITY").map_or(Some(Severity::Low), |v| min_severity(v.trim()));
        let min_severity = min.unwrap_or_else(|| {
            bad.push("FLOWHOUND_MIN_SEVERITY: expected low, medium or high".into());
            Severity::Low
        });
        let fpr = var("FLOWHOUND_FPR").and_then(|v| match v.trim().parse::<f64>() {
            Ok(f) => Some(f),
            Err(_) => {
                bad.push(format!("FLOWHOUND_FPR {v:?}: expected a share like 0.001"));
                None
            }
        });
        let d = FindingParams::default();
        let findings = FindingParams {
            rules: var("FLOWHOUND_RULES").map(PathBuf::from),
            allowlist: var("FLOWHOUND_ALLOWLIST").map(PathBuf::from),
            incident_gap: var("FLOWHOUND_INCIDENT_GAP").unwrap_or(d.incident_gap),
            incident_period: var("FLOWHOUND_INCIDENT_PERIOD").unwrap_or(d.incident_period),
            top_features: d.top_features,
        };
        if !bad.is_empty() {
            return Err(bad.join("; "));
        }
        Ok(Settings {
            model,
            sinks: var("FLOWHOUND_SINKS")
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            config: var("FLOWHOUND_CONFIG").map(PathBuf::from),
            min_severity,
            fpr,
            findings,
            dedup_window: var("FLOWHOUND_DEDUP_WINDOW"),
            work: var("FLOWHOUND_WORK_DIR").map_or_else(|| std::env::temp_dir().join("flowhound"), PathBuf::from),
        })
    }
}

/// An S3 event key: URL-encoded, with `+` for a space.
pub fn decode_key(key: &str) -> String {
    let plus = key.replace('+', " ");
    percent_encoding::percent_decode_str(&plus).decode_utf8_lossy().into_owned()
}

/// The model folder: as given, or fetched from S3 once per container.
fn model_dir(s: &Settings) -> Result<PathBuf, String> {
    if !s.model.starts_with("s3://") {
        return Ok(PathBuf::from(&s.model));
    }
    let dir = s.work.join("model");
    let marker = dir.join(".fetched-from");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(s.model.as_str()) {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let n = flowhound_source::s3::fetch(&s.model, &dir)?;
    std::fs::write(&marker, &s.model).map_err(|e| format!("{}: {e}", marker.display()))?;
    tracing::info!("fetched the model ({n} files) from {}", s.model);
    Ok(dir)
}

/// Scores every object of the event and delivers its incidents; the
/// summary per object, or the first failure.
pub fn process(event: &S3Event, s: &Settings) -> Result<Value, String> {
    std::fs::create_dir_all(&s.work).map_err(|e| format!("{}: {e}", s.work.display()))?;
    let model = model_dir(s)?;
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for r in &event.records {
        let (Some(bucket), Some(key)) = (r.s3.bucket.name.as_deref(), r.s3.object.key.as_deref()) else {
            failures.push("a record without bucket or key".to_string());
            continue;
        };
        let url = format!("s3://{bucket}/{}", decode_key(key));
        match detect_one(&url, &model, s) {
            Ok((summary, problems)) => {
                failures.extend(problems.into_iter().map(|p| format!("{url}: {p}")));
                out.push(summary);
            }
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(json!({"objects": out}))
    } else {
        Err(failures.join("; "))
    }
}

/// One object through the engine's `detect`: its summary, and what makes
/// the invocation fail (an unreadable object, alerts left in the spool).
fn detect_one(url: &str, model: &std::path::Path, s: &Settings) -> Result<(Value, Vec<String>), String> {
    // The whole chain of causes, as the command line prints errors.
    let err = |e: anyhow::Error| format!("{e:#}");
    let bundle =
        ModelParams { dir: model.to_path_buf(), thresholds: vec![], fpr: s.fpr }.load().map_err(|e| err(e.into()))?;
    let sinks = SinkParams {
        config: s.config.clone(),
        sinks: s.sinks.clone(),
        spool_dir: Some(s.work.join("spool")),
        dedup_window: s.dedup_window.clone(),
        default_spool: None,
    };
    let output = s.work.join("last-incidents.jsonl");
    let alerts = sinks.open("detect", Some(&output), model, || url.to_string()).map_err(|e| err(e.into()))?;
    let findings = s.findings.build(&bundle, &mut |w| tracing::warn!("{w}")).map_err(|e| err(e.into()))?;
    let show = Show { incidents: true, ..Show::at_least(s.min_severity) };
    let job = Detect { bundle: &bundle, findings, show, format: Format::Jsonl, alerts };
    let inputs = flowhound_source::resolve_in(&[url.to_string()], &Default::default()).map_err(|e| err(e.into()))?;
    let out = OutFile::create(Some(&output)).map_err(|e| err(e.into()))?;
    let (tally, report) = job.run(out, &inputs, &Default::default(), &mut ()).map_err(|e| err(e.into()))?;
    let mut problems: Vec<String> =
        report.failed_files().map(|f| f.error.clone().unwrap_or_else(|| "unreadable".into())).collect();
    if let Some(d) = &tally.delivery {
        if d.pending() > 0 {
            problems.push(format!("{} alert(s) wait in the spool", d.pending()));
        }
        if d.dropped() > 0 {
            problems.push(format!("{} alert(s) could not be delivered nor spooled", d.dropped()));
        }
    }
    let summary = json!({
        "object": url,
        "flows": tally.flows,
        "rejected": tally.rejected,
        "anomalies": tally.anomalies(),
        "incidents": tally.incidents.len(),
        "delivery": tally.delivery.as_ref().map(|d| serde_json::to_value(d).unwrap_or(Value::Null)),
    });
    Ok((summary, problems))
}

/// The async entry point: the work runs on its own thread, since `detect`
/// and the sinks drive runtimes of their own.
pub async fn handle(event: S3Event, settings: Settings) -> Result<Value, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(process(&event, &settings));
    });
    rx.await.map_err(|_| "the detection thread ended without an answer".to_string())?
}

#[cfg(test)]
mod tests {
    /// The only test of this binary that touches the environment.
    #[test]
    fn settings_come_from_the_environment_and_every_problem_is_listed() {
        for (k, v) in [
            ("FLOWHOUND_MODEL", "/opt/model"),
            ("FLOWHOUND_SINKS", "sns:arn:aws:sns:us-east-1:1:a  jsonl:-"),
            ("FLOWHOUND_MIN_SEVERITY", "medium"),
            ("FLOWHOUND_INCIDENT_GAP", "5m"),
        ] {
            std::env::set_var(k, v);
        }
        let s = super::Settings::from_env().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.sinks, ["sns:arn:aws:sns:us-east-1:1:a", "jsonl:-"]);
        assert_eq!(s.min_severity, flowhound_detect::Severity::Medium);
        assert_eq!((s.findings.incident_gap.as_str(), s.findings.incident_period.as_str()), ("5m", "1d"));
        std::env::set_var("FLOWHOUND_MIN_SEVERITY", "loud");
        std::env::set_var("FLOWHOUND_FPR", "a lot");
        std::env::set_var("FLOWHOUND_ARGS", "--min-severity high");
        let e = super::Settings::from_env().expect_err("three problems");
        assert!(
            e.contains("FLOWHOUND_ARGS is no longer read")
                && e.contains("FLOWHOUND_MIN_SEVERITY")
                && e.contains("FLOWHOUND_FPR \"a lot\""),
            "{e}"
        );
    }

    #[test]
    fn event_keys_are_url_decoded() {
        assert_eq!(super::decode_key("a/flow+log%2B1%3D.gz"), "a/flow log+1=.gz");
    }
}
