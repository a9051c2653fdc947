//! How a rendered message leaves: a file or stdout, an HTTP POST, SNS
//! Publish, CloudWatch PutMetricData. Messages are JSON values, so the same
//! bytes can wait in the spool and be replayed later.
//!
//! An enum rather than a `dyn Sink` trait: the sends are async and the set of
//! kinds is closed (the config names them), so a match is the whole dispatch.

use std::io::Write;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_sns::types::MessageAttributeValue;
use serde_json::Value;

use crate::config::{SinkConfig, Target};

/// A failed send: whether trying again can help, and what happened.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub retryable: bool,
    pub message: String,
}

impl Failure {
    fn retry(message: impl Into<String>) -> Failure {
        Failure { retryable: true, message: message.into() }
    }
    fn fatal(message: impl Into<String>) -> Failure {
        Failure { retryable: false, message: message.into() }
    }
}

pub(crate) enum Transport {
    File(Box<dyn Write + Send>),
    Http { client: reqwest::Client, url: String, headers: reqwest::header::HeaderMap },
    Sns { client: aws_sdk_sns::Client, topic: String },
    CloudWatch { client: aws_sdk_cloudwatch::Client, namespace: String },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::File(_) => "File",
            Transport::Http { .. } => "Http",
            Transport::Sns { .. } => "Sns",
            Transport::CloudWatch { .. } => "CloudWatch",
        })
    }
}

/// The AWS configuration from the standard chain (environment, profiles,
/// SSO, web identity, container and instance metadata; `AWS_ENDPOINT_URL`
/// and `AWS_ENDPOINT_URL_<SERVICE>` redirect it). The SDK's own retries are
/// off: delivery retries with its own backoff and counts them.
pub(crate) async fn aws_config(timeout: Duration, region: Option<String>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(timeout)
                .connect_timeout(timeout)
                .build(),
        );
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r));
    }
    loader.load().await
}

impl Transport {
    /// Opens files and builds clients; nothing is sent yet.
    pub(crate) async fn open(cfg: &SinkConfig) -> Result<Transport, String> {
        Ok(match &cfg.target {
            Target::Jsonl(p) | Target::Ocsf(p) | Target::Ecs(p) => match p {
                None => Transport::File(Box::new(std::io::stdout())),
                Some(p) => {
                    // Append: a security log is never overwritten by the next run.
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
                    Transport::File(Box::new(std::io::BufWriter::new(f)))
                }
            },
            Target::Webhook(url) | Target::Slack(url) => {
                let mut headers = reqwest::header::HeaderMap::new();
                for (k, v) in &cfg.headers {
                    let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|e| format!("header {k}: {e}"))?;
                    let mut value =
                        reqwest::header::HeaderValue::from_str(v).map_err(|e| format!("header {k}: {e}"))?;
                    value.set_sensitive(true);
                    headers.insert(name, value);
                }
                let client = reqwest::Client::builder()
                    .timeout(cfg.timeout)
                    .connect_timeout(cfg.timeout)
                    .user_agent(concat!("flowhound/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("HTTP client: {e}"))?;
                Transport::Http { client, url: url.clone(), headers }
            }
            Target::Sns(topic) => {
                // The topic's ARN names its region; a default region elsewhere would miss it.
                let region = topic.split(':').nth(3).filter(|r| !r.is_empty()).map(str::to_string);
                let conf = aws_config(cfg.timeout, region).await;
                Transport::Sns { client: aws_sdk_sns::Client::new(&conf), topic: topic.clone() }
            }
            Target::CloudWatch(ns) => {
                let conf = aws_config(cfg.timeout, None).await;
                Transport::CloudWatch { client: aws_sdk_cloudwatch::Client::new(&conf), namespace: ns.clone() }
            }
        })
    }

    pub(crate) async fn send(&mut self, m: &Value) -> Result<(), Failure> {
        match self {
            Transport::File(w) => {
                let mut line = serde_json::to_vec(m).map_err(|e| Failure::fatal(e.to_string()))?;
                line.push(b'\n');
                w.write_all(&line).and_then(|()| w.flush()).map_err(|e| Failure::fatal(e.to_string()))
            }
            Transport::Http { client, url, headers } => {
                let res = client.post(url.as_str()).headers(headers.clone()).json(m).send().await;
                match res {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        let msg = format!("HTTP {status}: {}", text.chars().take(200).collect::<String>());
                        // 408/429 and server errors may pass; other client errors will not.
                        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                            Err(Failure::retry(msg))
                        } else {
                            Err(Failure::fatal(msg))
                        }
                    }
                    Err(e) => Err(Failure::retry(error_chain(&e))),
                }
            }
            Transport::Sns { client, topic } => {
                let mut req = client
                    .publish()
                    .topic_arn(topic.as_str())
                    .message_structure("json")
                    .message(m["message"].to_string())
                    .subject(m["subject"].as_str().unwrap_or("flowhound"));
                if let Some(attrs) = m["attributes"].as_object() {
                    for (k, v) in attrs {
                        let value = MessageAttributeValue::builder()
                            .data_type("String")
                            .string_value(v.as_str().unwrap_or_default())
                            .build()
                            .map_err(|e| Failure::fatal(e.to_string()))?;
                        req = req.message_attributes(k, value);
                    }
                }
                req.send().await.map(drop).map_err(|e| aws_failure(&e))
            }
            Transport::CloudWatch { client, namespace } => {
                let time = m["time_ms"].as_i64().map(aws_sdk_cloudwatch::primitives::DateTime::from_millis);
                let mut data = Vec::new();
                for d in m["metrics"].as_array().into_iter().flatten() {
                    let dims = d["dimensions"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| Dimension::builder().name(k).value(v.as_str().unwrap_or_default()).build());
                    data.push(
                        MetricDatum::builder()
                            .metric_name(d["name"].as_str().unwrap_or_default())
                            .set_dimensions(Some(dims.collect()))
                            .value(d["value"].as_f64().unwrap_or(0.0))
                            .unit(StandardUnit::Count)
                            .set_timestamp(time)
                            .build(),
                    );
                }
                // PutMetricData takes at most 1000 data per call.
                for chunk in data.chunks(1000) {
                    client
                        .put_metric_data()
                        .namespace(namespace.as_str())
                        .set_metric_data(Some(chunk.to_vec()))
                        .send()
                        .await
                        .map_err(|e| aws_failure(&e))?;
                }
                Ok(())
            }
        }
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}

/// AWS errors: throttling, server errors, timeouts and connection failures
/// may pass on a retry; the rest (no such topic, access denied) will not.
fn aws_failure<E>(e: &aws_sdk_sns::error::SdkError<E>) -> Failure
where
    E: std::error::Error + aws_sdk_sns::error::ProvideErrorMetadata + 'static,
{
    use aws_sdk_sns::error::SdkError;
    let message = aws_sdk_sns::error::DisplayErrorContext(e).to_string();
    match e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or_default();
            // The code and message, not the whole response dump.
            let message = format!(
                "HTTP {} {}: {}",
                s.raw().status().as_u16(),
                if code.is_empty() { "error" } else { code },
                s.err().message().unwrap_or("no message")
            );
            let throttled = code.contains("Throttl") || code.contains("TooManyRequests") || code.contains("Limit");
            if throttled || s.raw().status().is_server_error() || code.contains("ServiceUnavailable") {
                Failure::retry(message)
            } else {
                Failure::fatal(message)
            }
        }
        // Building the request (no credentials, bad input) does not get better by waiting.
        SdkError::ConstructionFailure(_) => Failure::fatal(message),
        _ => Failure::retry(message),
    }
}
