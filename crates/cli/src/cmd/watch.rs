//! `flowhound watch`: the engine's live run ([`flowhound_engine::watch`])
//! over `--source` specs, with its findings on stdout or a file, its
//! incidents to the sinks, and its metrics on `--metrics`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use flowhound_engine::config::durations;
use flowhound_engine::live::Clock;
use flowhound_engine::watch::{Note, Watch, WatchParams, LIVE_BATCH};
use flowhound_engine::write::{Alerts, Appending, FlowWriter, Format};
use flowhound_engine::{Ending, Output, Pipeline, Step};
use flowhound_server::live::LiveFeed;
use flowhound_source::live::Spec;

use super::detect::ScoreArgs;
use super::findings::FindingArgs;
use super::sinks::SinkArgs;
use crate::exit::{Classify, CliError, CliResult};

/// Watch live flow sources and report anomalies as they happen.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Sources (--source, repeatable):\n  file:PATH          follow a growing log (rotation, truncation, resume after restart)\n  dir:PATH           read every file that appears below PATH\n  s3://BUCKET/PREFIX read new objects as they are delivered\n  -                  standard input\n  netflow:ADDR:PORT  NetFlow v5/v9/IPFIX collector (UDP)\n  pcap:FILE          a packet capture's flows\n  nats://HOST:PORT/STREAM  a worker group's output (alone): its lines as the workers write them\n\nOutput: JSON lines of flagged flows as `detect` writes them (with --incidents: incidents, as they\nend). Incidents go to the sinks (--sink/--config) as soon as they are classed. SIGINT/SIGTERM\nscore what was read, end open incidents, deliver and save state, then exit 0.\n\nExamples:\n  flowhound watch -m model --source file:/var/log/flows.log\n  flowhound watch -m model --source netflow:0.0.0.0:2055 --sink sns:arn:aws:sns:us-east-1:1:alerts --metrics 127.0.0.1:9102\n  flowhound watch -m model --source dir:/data/vpc --incidents -o incidents.jsonl"
)]
pub struct Args {
    /// Model folder written by `train`.
    #[arg(short, long = "model", value_name = "MODEL_DIR")]
    pub model: PathBuf,

    /// Where flows come from (see below); repeatable.
    #[arg(short, long = "source", value_name = "SPEC", required = true)]
    pub sources: Vec<String>,

    /// Append findings to this file (flushed after every batch); stdout when absent or `-`.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub score: ScoreArgs,

    #[command(flatten)]
    pub findings: FindingArgs,

    #[command(flatten)]
    pub sinks: SinkArgs,

    #[command(flatten)]
    pub live: LiveArgs,

    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// A one-line status on stderr this often (`0s`: never).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub status: String,

    /// No status lines or warnings on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// How live sources are read and batched: shared by `watch` and `serve --watch`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Live sources")]
pub struct LiveArgs {
    /// Skip format detection for line sources: vpc, zeek, zeek-json, zeek-csv, unsw, cic, csv, jsonl.
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<String>,

    /// How far behind the newest event time a record may arrive and still be counted on time;
    /// incidents end this much later than their gap (records later than this are scored and
    /// counted as late).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub lateness: String,

    /// Longest a record waits for its batch to fill before it is scored.
    #[arg(long, value_name = "DURATION", default_value = "250ms")]
    pub flush: String,

    /// Chunks of records waiting between the sources and the detector (backpressure beyond it).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub queue: usize,

    /// How often followed files and directories are checked.
    #[arg(long, value_name = "DURATION", default_value = "200ms")]
    pub poll: String,

    /// How often S3 prefixes are listed.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub s3_poll: String,

    /// A NetFlow v9/IPFIX template not refreshed for this long is forgotten.
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub template_timeout: String,

    /// Offsets of followed files and what was read from directories and S3
    /// [default: <state dir>/flowhound/watch].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Exit when no record has arrived for this long (replays, cron runs).
    #[arg(long, value_name = "DURATION")]
    pub idle_exit: Option<String>,

    /// How often the sources' offsets are saved together with the window state they lead to
    /// (a restart, even after kill -9, continues with the windows `detect` would have; up to this
    /// much input is read again).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub checkpoint: String,
}

impl Args {
    /// The live run's settings and lateness, every bad flag listed.
    fn params(&self) -> CliResult<(WatchParams, std::time::Duration)> {
        let l = &self.live;
        let [lateness, flush, poll, s3_poll, template_timeout, status, checkpoint] = durations([
            ("--lateness", &l.lateness),
            ("--flush", &l.flush),
            ("--poll", &l.poll),
            ("--s3-poll", &l.s3_poll),
            ("--template-timeout", &l.template_timeout),
            ("--status", &self.status),
            ("--checkpoint", &l.checkpoint),
        ])?;
        let idle_exit = super::idle_exit(l.idle_exit.as_deref())?;
        let mut bad = Vec::new();
        if l.queue == 0 {
            bad.push("--queue must be at least 1".to_string());
        }
        if poll.is_zero() {
            bad.push("--poll must be more than 0".into());
        }
        let sources =
            Spec::parse_all(&self.sources).map_err(|e| bad.push(format!("--source: {e}"))).unwrap_or_default();
        let format = l.input_format.as_ref().and_then(|n| {
            let f = flowhound_flow::Format::from_name(n);
            if f.is_none() {
                bad.push(format!("--input-format {n:?}: expected one of {}", flowhound_flow::Format::NAMES.join(", ")));
            }
            f
        });
        if !bad.is_empty() {
            return Err(CliError::usage(anyhow::anyhow!(bad.join("; "))));
        }
        let state_dir = l
            .state_dir
            .clone()
            .or_else(|| dirs::state_dir().or_else(dirs::data_local_dir).map(|d| d.join("flowhound").join("watch")))
            .unwrap_or_else(|| PathBuf::from(".flowhound-watch"));
        let status = if self.quiet { std::time::Duration::ZERO } else { status };
        let params = WatchParams {
            sources,
            format,
            flush,
            queue: l.queue,
            poll,
            s3_poll,
            template_timeout,
            state_dir,
            idle_exit,
            checkpoint,
            status,
            batch: LIVE_BATCH,
        };
        Ok((params, lateness))
    }
}

pub fn run(a: Args) -> CliResult {
    let stop = Arc::new(AtomicBool::new(false));
    run_with(a, None, stop, |_| {})
}

/// Runs the watch until `stop` (SIGINT/SIGTERM set it too), idle exit or
/// the end of finite sources. `started` hears once the sources run (a setup
/// error returns before it). With a dashboard, findings go to its live
/// analysis, and to stdout only when `-o -` asks for it.
pub fn run_with(
    a: Args,
    dashboard: Option<LiveFeed>,
    stop: Arc<AtomicBool>,
    started: impl FnOnce(&[String]),
) -> CliResult {
    if let Some(target) = super::group::group_of(&a.sources, "--source")? {
        return group_lines(&a, &target, &stop, started);
    }
    let (params, lateness) = a.params()?;
    let bundle = super::detect::load_model(&a.model, &a.score.threshold, a.score.fpr)?;
    let names: Vec<String> = params.sources.iter().map(ToString::to_string).collect();
    let dispatcher = a.sinks.params().open("watch", a.output.as_deref(), &a.model, || names.join(" "))?;
    let findings = a.findings.build(&bundle)?;
    let mut incidents = findings.incidents;
    // Feedback on a live incident names its first flows; a week-long flood
    // must not keep every flow id.
    incidents.limit_members(10_000);
    let mut writer = match (&dashboard, &a.output) {
        (Some(_), None) => None,
        _ => {
            let out = Appending::open(a.output.as_deref()).usage()?;
            let (names, classes) =
                (bundle.ensemble.model_names(), bundle.ensemble.supervised().map(|s| s.classes.clone()));
            Some(FlowWriter::new(out, Format::Jsonl, names, classes, a.findings.incidents, true)?)
        }
    };
    let show = a.score.show(&a.findings);
    let ending = Ending::Live(Clock::new(lateness));
    let pipeline = Pipeline::new(&bundle, Step::new(findings.explainer), show, findings.allow, incidents, ending);
    super::stop_on_signals(&stop)?;
    let quiet = a.quiet;
    let mut note = |n: Note| match n {
        Note::Warning(w) => eprintln!("warning: {w}"),
        Note::Info(s) | Note::Status(s) if !quiet => eprintln!("{s}"),
        _ => {}
    };
    let watch = Watch::start(params, pipeline, &mut note).map_err(CliError::usage)?;
    if let Some(addr) = a.metrics {
        let monitor = watch.monitor();
        flowhound_server::metrics::spawn(addr, Arc::new(move || monitor.prometheus())).usage()?;
    }
    if !quiet {
        eprintln!("watch: {} source(s): {}", names.len(), names.join(", "));
    }
    started(&names);
    let mut alerts = dispatcher.map(Alerts::new);
    let mut dashboard = dashboard;
    let mut outs: Vec<&mut dyn Output> = Vec::new();
    outs.extend(writer.as_mut().map(|w| w as &mut dyn Output));
    outs.extend(alerts.as_mut().map(|d| d as &mut dyn Output));
    outs.extend(dashboard.as_mut().map(|d| d as &mut dyn Output));
    let tally = watch.run(&mut outs, &stop, &mut note).map_err(anyhow::Error::from)?;
    if let Some(d) = &tally.delivery {
        if !quiet {
            eprint!("{}", d.render());
        }
        if d.dropped() > 0 {
            return Err(CliError::from(anyhow::anyhow!("{} alert(s) could not be delivered nor spooled", d.dropped())));
        }
    }
    Ok(())
}

/// `--source nats://…`: a worker group's lines, as its workers wrote them.
fn group_lines(
    a: &Args,
    target: &flowhound_stream::Target,
    stop: &Arc<AtomicBool>,
    started: impl FnOnce(&[String]),
) -> CliResult {
    if !a.sinks.sink.is_empty() || a.sinks.config.is_some() {
        return Err(CliError::usage(anyhow::anyhow!(
            "--source {}: a worker group's workers send its alerts; give --sink to `flowhound worker`",
            a.sources[0]
        )));
    }
    let idle_exit = super::idle_exit(a.live.idle_exit.as_deref())?;
    let mut out = Appending::open(a.output.as_deref()).usage()?;
    super::stop_on_signals(stop)?;
    if !a.quiet {
        eprintln!("watch: the output of worker group {} on {}", target.stream, target.server);
    }
    super::group::lines(target, a.findings.incidents, &mut out, (stop, idle_exit), || started(&a.sources))
}
