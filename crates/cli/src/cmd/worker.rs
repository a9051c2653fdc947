//! `flowhound worker`: a member of a worker group scoring a stream that
//! `publish` fills (`flowhound_stream::worker`; docs/scale-out.md).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use flowhound_engine::config::durations;
use flowhound_engine::write::Alerts;
use flowhound_engine::Output;
use flowhound_stream::worker::{run as run_worker, Judging, Metrics, Note, WorkerParams};
use flowhound_stream::{StreamError, Target};

use super::detect::ScoreArgs;
use super::findings::FindingArgs;
use super::sinks::SinkArgs;
use crate::exit::{CliError, CliResult};

/// Score a published stream as one of a group of workers: partitions are
/// claimed with leases, each address's windows are computed where that
/// address lives, and a dead worker's partitions are taken over from their
/// checkpoints.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Output (in the stream): STREAM.out.<p> scored flows as `detect` writes them (flagged ones;\nevery one with --all), STREAM.inc.<p> incidents as they open and end; incidents also go to\nthe sinks, each alerted once by the group. SIGINT/SIGTERM save every partition and hand it back.\n\nExamples:\n  flowhound publish flows/ --to nats://127.0.0.1:4222/FLOWS\n  flowhound worker -m model --nats nats://127.0.0.1:4222/FLOWS          # on each machine\n  flowhound worker -m model --nats nats://10.0.0.5:4222 --sink webhook:https://hooks.example/x"
)]
pub struct Args {
    /// Model folder written by `train` (every worker of a group uses the same).
    #[arg(short, long = "model", value_name = "MODEL_DIR")]
    pub model: PathBuf,

    /// The server and stream: nats://HOST:PORT[/STREAM] (stream FLOWS by default).
    #[arg(long, value_name = "URL")]
    pub nats: String,

    /// This worker's name in the group [default: HOST-PID].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    #[command(flatten)]
    pub score: ScoreArgs,

    #[command(flatten)]
    pub findings: FindingArgs,

    #[command(flatten)]
    pub sinks: SinkArgs,

    /// A worker silent for this long loses its partitions to the others.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub lease: String,

    /// How often each partition's state is saved (a takeover replays at most this much).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub checkpoint: String,

    /// Longest a joined row waits for its batch to fill before it is scored.
    #[arg(long, value_name = "DURATION", default_value = "250ms")]
    pub flush: String,

    /// As `watch --lateness`: how far behind the newest event time a finding may come.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub lateness: String,

    /// Copies a cluster keeps of the leases and checkpoints (JetStream replicas; 3 on a
    /// 3-node cluster so that losing a node loses neither).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub replicas: usize,

    /// Exit when nothing has come for this long (replays, tests); open incidents end first.
    #[arg(long, value_name = "DURATION")]
    pub idle_exit: Option<String>,

    /// Serve Prometheus metrics (per partition held: records, rows scored, lag; claims,
    /// restores, losses) at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,

    /// A one-line status on stderr this often (`0s`: never).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub status: String,

    /// No progress notes on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: Args) -> CliResult {
    let target = Target::parse(&a.nats).map_err(CliError::usage)?;
    let [status, lease, checkpoint, flush, lateness] = durations([
        ("--status", &a.status),
        ("--lease", &a.lease),
        ("--checkpoint", &a.checkpoint),
        ("--flush", &a.flush),
        ("--lateness", &a.lateness),
    ])?;
    let idle_exit = super::idle_exit(a.idle_exit.as_deref())?;
    if lease < std::time::Duration::from_millis(300) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--lease must be at least 300ms (it is renewed at a third of it)"
        )));
    }
    let name = a.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
        format!("{}-{}", if host.is_empty() { "worker" } else { &host }, std::process::id())
    });
    let bundle = super::detect::load_model(&a.model, &a.score.threshold, a.score.fpr)?;
    // The worker writes nothing on stdout: a sink may.
    let dispatcher = a.sinks.params().open("worker", Some(Path::new("stream")), &a.model, || a.nats.clone())?;
    let findings = a.findings.build(&bundle)?;
    let mut incidents = findings.incidents.params().clone();
    // A week-long flood must not keep every flow id.
    incidents.max_members = incidents.max_members.min(10_000);
    let judging = Judging {
        bundle: &bundle,
        explainer: findings.explainer,
        show: a.score.show(&a.findings),
        allow: findings.allow,
        incidents,
    };
    let params = WorkerParams {
        target,
        name: name.clone(),
        lease,
        checkpoint,
        batch: flowhound_engine::watch::LIVE_BATCH,
        flush,
        idle_exit,
        lateness,
        replicas: a.replicas,
        status: if a.quiet { std::time::Duration::ZERO } else { status },
    };
    let stop = Arc::new(AtomicBool::new(false));
    super::stop_on_signals(&stop)?;
    let quiet = a.quiet;
    let mut note = |n: Note| match n {
        Note::Warning(w) => eprintln!("warning: {w}"),
        Note::Info(s) | Note::Status(s) if !quiet => eprintln!("worker {name}: {s}"),
        Note::Info(_) | Note::Status(_) => {}
    };
    let metrics = Metrics::new(&name);
    if let Some(addr) = a.metrics {
        let m = Arc::clone(&metrics);
        flowhound_server::metrics::spawn(addr, Arc::new(move || m.prometheus())).map_err(CliError::usage)?;
    }
    let mut alerts = dispatcher.map(Alerts::new);
    let out = alerts.as_mut().map(|d| d as &mut dyn Output);
    let report = run_worker(&params, judging, out, metrics, &stop, &mut note).map_err(|e| match e {
        StreamError::Settings(_) => CliError::usage(e),
        e => CliError::from(anyhow::Error::from(e)),
    })?;
    let mut tally = flowhound_engine::Tally::default();
    if let Some(a) = alerts.as_mut() {
        a.finish(&mut tally).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if !quiet {
        eprintln!(
            "worker {}: {} records windowed, {} rows scored ({} flagged), {} findings into incidents, {} incidents ended, {} alerts sent ({} already sent by the group), partitions claimed {} (restored {}), lost {}, {} bad messages",
            params.name,
            report.records,
            report.scored,
            report.flagged,
            report.findings,
            report.incidents_ended,
            report.alerts,
            report.alerts_repeated,
            report.claimed,
            report.restored,
            report.lost,
            report.bad
        );
        if let Some(d) = &tally.delivery {
            eprint!("{}", d.render());
        }
    }
    if tally.delivery.as_ref().is_some_and(|d| d.dropped() > 0) {
        return Err(CliError::from(anyhow::anyhow!("alert(s) could not be delivered nor spooled")));
    }
    Ok(())
}
