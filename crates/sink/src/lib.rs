//! flowhound-sink: where findings go. Incidents from `explain` become
//! alerts for JSON lines, OCSF (Security Lake), ECS (Elastic), SNS,
//! CloudWatch metrics, webhooks and Slack, delivered at least once: dedup,
//! per-sink severity and class filters, rate limits, retries with backoff and
//! jitter, and a disk spool replayed in order (docs/sinks.md).

pub mod config;
pub mod deliver;
pub mod format;
mod spool;
mod transport;

pub use config::{Config, ConfigSpec, DeliveryConfig, SinkConfig, SinkSpec, Target};
pub use deliver::{Dispatcher, RunStats, SinkStats, Summary};
pub use format::{Alert, Meta};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Every problem of a configuration, one per entry.
    #[error("{}", .0.join("; "))]
    Config(Vec<String>),
    #[error("{0}")]
    Io(String),
}
