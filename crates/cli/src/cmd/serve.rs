//! `flowhound serve`: the dashboard.

use std::net::SocketAddr;
use std::path::PathBuf;

use flowhound_server::ServerConfig;

use crate::exit::{CliError, CliResult};

/// Serve the dashboard: upload flow logs, see what was found and why, give
/// feedback, retrain with it. Analyses and feedback are kept in SQLite.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The API is described in docs/api.md.\n\nExamples:\n  flowhound serve -m model\n  flowhound serve -m model --db ./flowhound.db --max-upload 2GiB\n  FLOWHOUND_TOKEN=$(openssl rand -hex 24) flowhound serve -m model --addr 0.0.0.0:8080"
)]
pub struct Args {
    /// Address to listen on; anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub addr: SocketAddr,

    /// Model folder written by `train` (version 1; retraining adds versions).
    #[arg(short, long = "model", value_name = "MODEL_DIR")]
    pub model: PathBuf,

    /// SQLite database of analyses and feedback; uploads and retrained models
    /// go next to it [default: <data dir>/flowhound/flowhound.db].
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,

    /// Bearer token every API call must carry (the page asks for it).
    #[arg(long, env = "FLOWHOUND_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Largest upload accepted (`512MiB`, `2GiB`, bytes).
    #[arg(long, default_value = "512MiB", value_name = "SIZE")]
    pub max_upload: String,

    /// Analyses run at once; more wait in the queue.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub workers: usize,

    /// Training rows each feedback verdict counts as when retraining.
    #[arg(long, default_value_t = flowhound_server::retrain::DEFAULT_WEIGHT, value_name = "N")]
    pub feedback_weight: usize,
}

/// `512MiB`, `2GiB`, `100MB`, `4096`: the sizes the sink configuration takes.
pub fn parse_size(s: &str) -> Option<usize> {
    flowhound_sink::config::parse_size(s).and_then(|n| usize::try_from(n).ok())
}

pub fn default_db() -> PathBuf {
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("flowhound").join("flowhound.db")
}

pub fn run(a: Args) -> CliResult {
    let max_upload = parse_size(&a.max_upload).ok_or_else(|| {
        CliError::usage(anyhow::anyhow!("--max-upload {:?}: expected a size like 512MiB", a.max_upload))
    })?;
    let config = ServerConfig {
        addr: a.addr,
        model_dir: a.model,
        db: a.db.unwrap_or_else(default_db),
        token: a.token.filter(|t| !t.is_empty()),
        max_upload,
        workers: a.workers,
        feedback_weight: a.feedback_weight,
    };
    config.check().map_err(CliError::usage)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLOWHOUND_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::from(anyhow::Error::from(e)))?;
    rt.block_on(flowhound_server::serve(config)).map_err(|e| match e {
        flowhound_server::ServerError::Model { .. } | flowhound_server::ServerError::Config(_) => CliError::usage(e),
        other => CliError::from(anyhow::Error::from(other)),
    })
}
