//! `flowhound serve`: the dashboard.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flowhound_server::live::{LiveFeed, LiveParams};
use flowhound_server::{AppState, ServerConfig, ServerError};

use super::detect::ScoreArgs;
use super::findings::FindingArgs;
use super::sinks::SinkArgs;
use super::watch::{self, LiveArgs};
use crate::exit::{CliError, CliResult};

/// Serve the dashboard: upload flow logs, see what was found and why, give
/// feedback, retrain with it. Analyses and feedback are kept in SQLite.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The API is described in docs/api.md.\n\nExamples:\n  flowhound serve -m model\n  flowhound serve -m model --db ./flowhound.db --max-upload 2GiB\n  FLOWHOUND_TOKEN=$(openssl rand -hex 24) flowhound serve -m model --addr 0.0.0.0:8080\n  flowhound serve -m model --watch netflow:0.0.0.0:2055 --watch file:/var/log/flows.log"
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

    /// Finished analyses kept; older ones are deleted with their flagged flows (those feedback
    /// names stay, for retraining).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub keep: usize,

    /// Most the database may hold (`4GiB`); past it the oldest finished analyses are deleted.
    #[arg(long, default_value = "4GiB", value_name = "SIZE")]
    pub max_db: String,

    /// Analyses run at once; more wait in the queue.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub workers: usize,

    /// Training rows each feedback verdict counts as when retraining.
    #[arg(long, default_value_t = flowhound_engine::retrain::DEFAULT_WEIGHT, value_name = "N")]
    pub feedback_weight: usize,

    /// Also watch this live source (as `flowhound watch --source`; repeatable): its findings
    /// appear on the page as they are made, in a `live` analysis. `nats://HOST:PORT/STREAM` shows
    /// what a worker group finds instead (alone; serve with the model the workers use).
    #[arg(long = "watch", value_name = "SPEC", help_heading = "Live sources")]
    pub watch: Vec<String>,

    /// Flagged flows the live analysis keeps (older ones go unless feedback names them).
    #[arg(long, default_value_t = 100_000, value_name = "N", help_heading = "Live sources")]
    pub live_keep: u64,

    #[command(flatten)]
    pub live: LiveArgs,

    #[command(flatten)]
    pub sinks: SinkArgs,
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
    let max_db_bytes = flowhound_sink::config::parse_size(&a.max_db)
        .ok_or_else(|| CliError::usage(anyhow::anyhow!("--max-db {:?}: expected a size like 4GiB", a.max_db)))?;
    let config = ServerConfig {
        addr: a.addr,
        model_dir: a.model.clone(),
        db: a.db.clone().unwrap_or_else(default_db),
        token: a.token.clone().filter(|t| !t.is_empty()),
        max_upload,
        workers: a.workers,
        feedback_weight: a.feedback_weight,
        keep: a.keep,
        max_db_bytes,
    };
    config.check().map_err(CliError::usage)?;
    if a.watch.is_empty() && (!a.sinks.sink.is_empty() || a.sinks.config.is_some()) {
        return Err(CliError::usage(anyhow::anyhow!("--sink and --config alert on live findings: give --watch too")));
    }
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
    let server_error = |e: ServerError| match e {
        ServerError::Model { .. } | ServerError::Config(_) => CliError::usage(e),
        other => CliError::from(anyhow::Error::from(other)),
    };
    if a.watch.is_empty() {
        return rt.block_on(flowhound_server::serve(config)).map_err(server_error);
    }
    let state = AppState::new(&config).map_err(server_error)?;
    let watcher = start_watch(&a, &state)?;
    // SIGINT/SIGTERM set the watch's flag (it stops the sources and drains);
    // the server stops with it, after the watch has finished its analysis.
    let stop = Arc::clone(&watcher.stop);
    let served = rt.block_on(flowhound_server::serve_state(Arc::clone(&state), config.addr, async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }));
    watcher.stop.store(true, Ordering::Relaxed);
    let watched = watcher.thread.join().unwrap_or_else(|_| {
        flowhound_server::live::end(&state, Some("the watch panicked"));
        Err(CliError::from(anyhow::anyhow!("the watch panicked")))
    });
    served.map_err(server_error)?;
    watched
}

/// The live watch beside the server.
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<CliResult>,
}

/// Starts `watch` over the `--watch` sources with the model the dashboard
/// uses now; returns once its sources run, or with the reason they cannot.
fn start_watch(a: &Args, state: &Arc<AppState>) -> CliResult<Watcher> {
    if let Some(target) = super::group::group_of(&a.watch, "--watch")? {
        return start_group(a, state, target);
    }
    let specs = flowhound_source::live::Spec::parse_all(&a.watch)
        .map_err(|e| CliError::usage(anyhow::anyhow!("--watch: {e}")))?;
    let names: Vec<String> = specs.iter().map(ToString::to_string).collect();
    let feed = LiveFeed::start(Arc::clone(state), names, LiveParams { keep: a.live_keep, ..Default::default() })
        .map_err(|e| CliError::from(anyhow::Error::from(e)))?;
    let args = watch::Args {
        model: state.current_model().path.clone(),
        sources: a.watch.clone(),
        output: None,
        score: ScoreArgs::default(),
        findings: FindingArgs::default(),
        sinks: a.sinks.clone(),
        live: a.live.clone(),
        metrics: None,
        status: "1m".into(),
        quiet: false,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let flag = Arc::clone(&stop);
    let st = Arc::clone(state);
    let thread = std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || {
            let r = watch::run_with(args, Some(feed), flag, move |_| {
                let _ = tx.send(());
            });
            // At once, not when the server stops: open event streams end with
            // the live analysis, and the server's shutdown waits for them.
            if let Err(e) = &r {
                let why = e.error.as_ref().map_or_else(|| "the watch failed".to_string(), |e| format!("{e:#}"));
                flowhound_server::live::end(&st, Some(&why));
            }
            r
        })
        .map_err(|e| CliError::from(anyhow::Error::from(e)))?;
    started(stop, thread, &rx)
}

/// Once the watch's sources run: its handle; when it returned before (its
/// error says why): the error.
fn started(
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<CliResult>,
    rx: &std::sync::mpsc::Receiver<()>,
) -> CliResult<Watcher> {
    if rx.recv().is_err() {
        let e = thread.join().unwrap_or_else(|_| Err(CliError::from(anyhow::anyhow!("the watch panicked"))));
        return Err(e.err().unwrap_or_else(|| CliError::from(anyhow::anyhow!("the watch ended before it started"))));
    }
    Ok(Watcher { stop, thread })
}

/// The live analysis of a worker group: its results read from the stream
/// (the workers score and alert; sinks here would alert twice).
fn start_group(a: &Args, state: &Arc<AppState>, target: flowhound_stream::Target) -> CliResult<Watcher> {
    if !a.sinks.sink.is_empty() || a.sinks.config.is_some() {
        return Err(CliError::usage(anyhow::anyhow!(
            "--watch {}: a worker group's workers send its alerts; give --sink to `flowhound worker`",
            a.watch[0]
        )));
    }
    let feed =
        LiveFeed::start(Arc::clone(state), a.watch.clone(), LiveParams { keep: a.live_keep, ..Default::default() })
            .map_err(|e| CliError::from(anyhow::Error::from(e)))?;
    let stop = Arc::new(AtomicBool::new(false));
    super::stop_on_signals(&stop)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("group".into())
        .spawn(move || {
            super::group::dashboard(&target, feed, &flag, move || {
                let _ = tx.send(());
            })
        })
        .map_err(|e| CliError::from(anyhow::Error::from(e)))?;
    started(stop, thread, &rx)
}
