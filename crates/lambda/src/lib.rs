//! The Lambda handler: each S3 ObjectCreated record names a new flow log
//! object; `detect` scores it with the configured model and sends the
//! incidents to the configured sinks — the same code as `flowhound detect
//! s3://BUCKET/KEY --sink …`.
//!
//! Settings come from the function's environment (docs/lambda.md):
//! - `FLOWHOUND_MODEL`: a model folder in the package or a layer (`/opt/model`),
//!   or `s3://BUCKET/PREFIX/` fetched once per container into /tmp;
//! - `FLOWHOUND_SINKS`: sinks as `--sink` takes them, separated by spaces;
//! - `FLOWHOUND_CONFIG`: a TOML sink configuration in the package;
//! - `FLOWHOUND_ARGS`: any other `detect` flags (`--min-severity medium`).
//!
//! An invocation fails when an object could not be read or an alert could
//! not be delivered, so Lambda's own retry of the event gives at-least-once
//! delivery; the spool and dedup memory live in /tmp while the container does.

use std::path::{Path, PathBuf};

use aws_lambda_events::event::s3::S3Event;
use clap::Parser;
use flowhound::cmd::detect;
use serde_json::{json, Value};

/// Settings read from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model: String,
    pub sinks: Vec<String>,
    pub config: Option<PathBuf>,
    pub args: Vec<String>,
    /// Scratch space: the fetched model, the spool, the last output.
    pub work: PathBuf,
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let model =
            var("FLOWHOUND_MODEL").ok_or("FLOWHOUND_MODEL is not set (a model folder or s3://BUCKET/PREFIX/)")?;
        let words = |k: &str| var(k).map(|v| v.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
        Ok(Settings {
            model,
            sinks: words("FLOWHOUND_SINKS"),
            config: var("FLOWHOUND_CONFIG").map(PathBuf::from),
            args: words("FLOWHOUND_ARGS"),
            work: var("FLOWHOUND_WORK_DIR").map_or_else(|| std::env::temp_dir().join("flowhound"), PathBuf::from),
        })
    }
}

/// `detect`'s flags, parsed as the command line parses them.
#[derive(Debug, Parser)]
#[command(name = "detect", no_binary_name = true)]
struct DetectCli {
    #[command(flatten)]
    args: detect::Args,
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
        let mut argv: Vec<String> =
            vec!["-m".into(), model.display().to_string(), "--quiet".into(), "--incidents".into()];
        argv.extend(["-o".into(), path_str(&s.work.join("last-incidents.jsonl"))]);
        argv.extend(["--spool-dir".into(), path_str(&s.work.join("spool"))]);
        if let Some(c) = &s.config {
            argv.extend(["--config".into(), path_str(c)]);
        }
        for k in &s.sinks {
            argv.extend(["--sink".into(), k.clone()]);
        }
        argv.extend(s.args.iter().cloned());
        argv.push(url.clone());
        let cli = DetectCli::try_parse_from(&argv).map_err(|e| format!("detect flags: {e}"))?;
        match detect::detect(&cli.args) {
            Ok((tally, verdict)) => {
                let delivery = tally.delivery.as_ref().map(|d| serde_json::to_value(d).unwrap_or(Value::Null));
                if let Err(e) = verdict {
                    failures.push(format!(
                        "{url}: {}",
                        e.error.map_or_else(|| "unreadable".to_string(), |e| format!("{e:#}"))
                    ));
                }
                if let Some(d) = &tally.delivery {
                    if d.pending() > 0 {
                        failures.push(format!("{url}: {} alert(s) wait in the spool", d.pending()));
                    }
                }
                out.push(json!({
                    "object": url,
                    "flows": tally.flows,
                    "rejected": tally.rejected,
                    "anomalies": tally.anomalies(),
                    "incidents": tally.incidents.len(),
                    "delivery": delivery,
                }));
            }
            Err(e) => {
                failures.push(format!("{url}: {}", e.error.map_or_else(|| "failed".to_string(), |e| format!("{e:#}"))))
            }
        }
    }
    if failures.is_empty() {
        Ok(json!({"objects": out}))
    } else {
        Err(failures.join("; "))
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
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
    #[test]
    fn event_keys_are_url_decoded() {
        assert_eq!(super::decode_key("a/flow+log%2B1%3D.gz"), "a/flow log+1=.gz");
    }
}
