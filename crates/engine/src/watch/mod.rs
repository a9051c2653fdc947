//! A live run: sources on their own threads send chunks of records through
//! one bounded channel; this loop gathers them into batches (scored when
//! full or after `flush`), drives the [`Pipeline`] — which explains, counts,
//! grows incidents and settles them on event time, handing everything to
//! the outputs — and saves the sources' offsets together with the window
//! state they lead to. Records are scored in arrival order, exactly as
//! `detect` scores a file, so replaying a file gives the same findings.
//!
//! ```text
//! sources ─ chunks ─▶ Batches ─▶ Pipeline ─▶ outputs (file, sinks, dashboard)
//!    ▲                   │            └─▶ Monitor (metrics, status line)
//!    └── offsets ◀─ checkpoint (offsets + windows, every `checkpoint`)
//! ```

pub mod checkpoint;
pub mod monitor;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowhound_detect::{Batch, Batches};
use flowhound_source::live::{self, Chunk, Feed, LiveOptions, Mark, SourceStats, Spec};

use self::checkpoint::{windows_path, State, Windows};
use self::monitor::{Latency, Monitor};
use crate::run::{Outputs, Pipeline, RunError};
use crate::Tally;

/// Flows scored at once live: half of `detect`'s batch. A full batch is
/// handed over two batches after it filled (the pipeline in
/// `flowhound_detect::run::Batches`), so at 100k flows/s a batch of 16,384
/// waits ~0.5 s before it is judged; halving it halves that, at the same
/// throughput (the models work in chunks of 2,048 rows either way).
pub const LIVE_BATCH: usize = 8_192;

/// How a live run reads and batches its sources.
#[derive(Debug, Clone)]
pub struct WatchParams {
    pub sources: Vec<Spec>,
    /// Skip format detection for line sources.
    pub format: Option<flowhound_flow::Format>,
    /// Longest a record waits for its batch to fill before it is scored.
    pub flush: Duration,
    /// Chunks waiting between the sources and the detector.
    pub queue: usize,
    /// How often followed files and directories are checked.
    pub poll: Duration,
    /// How often S3 prefixes are listed.
    pub s3_poll: Duration,
    /// A NetFlow v9/IPFIX template not refreshed for this long is forgotten.
    pub template_timeout: Duration,
    /// Where offsets and window checkpoints are kept.
    pub state_dir: PathBuf,
    /// Exit when no record has arrived for this long.
    pub idle_exit: Option<Duration>,
    /// How often offsets and windows are saved together.
    pub checkpoint: Duration,
    /// How often the status line is made (`ZERO`: never).
    pub status: Duration,
    /// Flows per batch.
    pub batch: usize,
}

/// Why a live run could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Sources that cannot be opened, every one (a usage error).
    #[error("{0}")]
    Sources(String),
    #[error(transparent)]
    Run(#[from] RunError),
}

impl From<flowhound_detect::BundleError> for WatchError {
    fn from(e: flowhound_detect::BundleError) -> Self {
        WatchError::Run(RunError::Bundle(e))
    }
}

/// What a live run tells the person running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Something went wrong and was worked around (a checkpoint not saved).
    Warning(String),
    /// What it is doing (sources started, windows restored).
    Info(String),
    /// The periodic status line.
    Status(String),
}

/// Records pushed but not yet scored, per chunk, in order.
struct Pending {
    received: Instant,
    left: usize,
    source: usize,
    mark: Mark,
}

/// A live run whose sources run.
pub struct Watch<'m> {
    params: WatchParams,
    pipeline: Pipeline<'m>,
    monitor: Arc<Monitor>,
    rx: Receiver<Chunk>,
    /// Sources stop on their own flag: the caller's also ends the detector,
    /// which must keep draining while they finish.
    source_stop: Arc<AtomicBool>,
    state: State,
    state_file: PathBuf,
}

impl std::fmt::Debug for Watch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("sources", &self.monitor.names).finish_non_exhaustive()
    }
}

/// The loop's side of the batches: the pipeline and outputs, what waits to
/// be scored, and the marks of chunks fully scored.
struct Scoring<'a, 'm, 'o> {
    pipeline: &'a mut Pipeline<'m>,
    outs: &'a mut Outputs<'o>,
    pending: VecDeque<Pending>,
    marks: Vec<Vec<Mark>>,
    latency: Latency,
    monitor: &'a Monitor,
}

impl Scoring<'_, '_, '_> {
    fn batch(&mut self, b: &Batch<'_>) -> Result<(), RunError> {
        self.pipeline.batch(b, self.outs)?;
        // Every flow of this batch has its finding written: its latency ends here.
        let now = Instant::now();
        let mut left = b.recs.len();
        while left > 0 {
            let Some(p) = self.pending.front_mut() else { break };
            let k = p.left.min(left);
            self.latency.observe(now.duration_since(p.received).as_secs_f64(), k as u64);
            p.left -= k;
            left -= k;
            if p.left == 0 {
                if let Some(p) = self.pending.pop_front() {
                    self.marks[p.source].push(p.mark);
                }
            }
        }
        self.settle_empty();
        self.monitor.update(&self.pipeline.tally, &self.latency);
        Ok(())
    }

    /// Chunks without records at the front of the queue are done as soon as
    /// everything before them is.
    fn settle_empty(&mut self) {
        while self.pending.front().is_some_and(|p| p.left == 0) {
            if let Some(p) = self.pending.pop_front() {
                self.marks[p.source].push(p.mark);
            }
        }
    }
}

impl<'m> Watch<'m> {
    /// Starts the sources, resuming from the state saved for them; every
    /// source that cannot start is listed.
    pub fn start(params: WatchParams, pipeline: Pipeline<'m>, note: &mut dyn FnMut(Note)) -> Result<Self, WatchError> {
        let names: Vec<String> = params.sources.iter().map(ToString::to_string).collect();
        let state_file = checkpoint::state_path(&params.state_dir, &params.sources);
        let state = State::load(&state_file, &mut |w| note(Note::Warning(w)));
        let (tx, rx) = sync_channel::<Chunk>(params.queue.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let opts = LiveOptions {
            format: params.format.clone(),
            poll: params.poll,
            s3_poll: params.s3_poll,
            netflow: flowhound_flow::netflow::CollectorParams {
                template_timeout: params.template_timeout,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut stats = Vec::new();
        let mut problems = Vec::new();
        let source_stop = Arc::new(AtomicBool::new(false));
        for (i, spec) in params.sources.iter().enumerate() {
            let st = Arc::new(SourceStats::default());
            let feed = Feed { tx: tx.clone(), depth: Arc::clone(&depth), stop: Arc::clone(&source_stop) };
            let resume = state.sources.get(&names[i]).cloned().unwrap_or_default();
            if let Err(e) = live::spawn(i, spec, &opts, resume, feed, Arc::clone(&st)) {
                problems.push(e);
            }
            stats.push(st);
        }
        if !problems.is_empty() {
            source_stop.store(true, Ordering::Relaxed);
            return Err(WatchError::Sources(problems.join("; ")));
        }
        let monitor = Arc::new(Monitor::new(names, stats, depth));
        Ok(Watch { params, pipeline, monitor, rx, source_stop, state, state_file })
    }

    /// The run's metrics and status, for an endpoint that serves them.
    pub fn monitor(&self) -> Arc<Monitor> {
        Arc::clone(&self.monitor)
    }

    /// Runs until `stop`, the idle exit or the end of finite sources; then
    /// scores what was read, saves the state, ends every open incident and
    /// finishes the outputs. The final tally.
    pub fn run(
        self,
        outs: &mut Outputs<'_>,
        stop: &AtomicBool,
        note: &mut dyn FnMut(Note),
    ) -> Result<Tally, WatchError> {
        let Watch { params: p, mut pipeline, monitor, rx, source_stop, state, state_file } = self;
        let mut batches = Batches::new(pipeline.bundle(), p.batch.max(1))?;
        if let Some(g) = state.windows {
            let path = windows_path(&state_file, g);
            let restored = Windows::load(&path).map_err(|e| e.to_string()).and_then(|w| {
                batches.restore(&w.state).map_err(|e| e.to_string())?;
                Ok(w)
            });
            match restored {
                Ok(w) => {
                    pipeline.restore(w.flow, w.watermark);
                    if !w.memory.is_empty() {
                        match ciborium::from_reader::<flowhound_explain::Memory, _>(w.memory.as_slice()) {
                            Ok(m) => pipeline.step.explainer.set_memory(m),
                            Err(e) => note(Note::Warning(format!(
                                "{}: the explainer's memory does not read back ({e}); beacons start over",
                                path.display()
                            ))),
                        }
                    }
                    note(Note::Info(format!("watch: window state restored ({} flows scored before)", w.flow)));
                }
                Err(e) => note(Note::Warning(format!("{}: {e}; the windows start empty", path.display()))),
            }
        }
        let mut saver = Saver { state, file: state_file, saved: u64::MAX };
        let all_finite = p.sources.iter().all(Spec::finite);
        let depth = Arc::clone(&monitor.depth);
        let mut s = Scoring {
            pipeline: &mut pipeline,
            outs,
            pending: VecDeque::new(),
            marks: vec![Vec::new(); p.sources.len()],
            latency: Latency::default(),
            monitor: &monitor,
        };
        let started = Instant::now();
        let mut last_status = (Instant::now(), 0u64);
        let mut next_status = Instant::now() + p.status;
        let mut last_record = Instant::now();
        let mut last_save = Instant::now();
        let mut stopping_since: Option<Instant> = None;
        let mut filling: Option<Instant> = None;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(chunk) => {
                    depth.fetch_sub(1, Ordering::Relaxed);
                    last_record = Instant::now();
                    // Zero-record chunks still carry their mark (a file that
                    // held only a header): it is applied once what is ahead
                    // of it has been scored.
                    s.pending.push_back(Pending {
                        received: chunk.received,
                        left: chunk.records.len(),
                        source: chunk.source,
                        mark: chunk.mark,
                    });
                    if chunk.records.is_empty() {
                        s.settle_empty();
                    }
                    let before = batches.pending();
                    batches.push(&chunk.records, &mut |b: &Batch<'_>| s.batch(b))?;
                    if batches.pending() == 0 {
                        filling = None;
                    } else if before == 0 {
                        // The oldest record of the batch being filled waits from here.
                        filling = Some(Instant::now());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    batches.flush(&mut |b: &Batch<'_>| s.batch(b))?;
                    break;
                }
            }
            // Full batches move through the pipeline as records arrive. A
            // batch slow to fill, or batches left in flight when the traffic
            // pauses, are drained once `flush` has passed.
            let waited = |t: Instant| t.elapsed() >= p.flush;
            if filling.is_some_and(waited) || (batches.in_flight() && waited(last_record)) {
                batches.flush(&mut |b: &Batch<'_>| s.batch(b))?;
                filling = None;
            }
            let stopping = stop.load(Ordering::Relaxed)
                || p.idle_exit.is_some_and(|d| last_record.elapsed() >= d && !batches.in_flight())
                || (all_finite
                    && monitor.sources.iter().all(|s| s.done.load(Ordering::Relaxed))
                    && depth.load(Ordering::Relaxed) == 0);
            if stopping {
                source_stop.store(true, Ordering::Relaxed);
                let since = *stopping_since.get_or_insert_with(Instant::now);
                // Sources blocked on stdin cannot be woken: drain for a while.
                if since.elapsed() >= Duration::from_secs(2) && depth.load(Ordering::Relaxed) == 0 {
                    batches.flush(&mut |b: &Batch<'_>| s.batch(b))?;
                    break;
                }
            }
            if !p.status.is_zero() && Instant::now() >= next_status {
                note(Note::Status(monitor.status(started, &mut last_status)));
                next_status = Instant::now() + p.status;
            }
            if last_save.elapsed() >= p.checkpoint {
                // Everything received is scored first, so the window state
                // covers exactly the records the offsets do.
                if batches.in_flight() {
                    batches.flush(&mut |b: &Batch<'_>| s.batch(b))?;
                    filling = None;
                }
                saver.save(&mut s, &batches, note);
                last_save = Instant::now();
            }
        }
        saver.save(&mut s, &batches, note);
        let latency = std::mem::take(&mut s.latency);
        // Every open incident ends now, and goes out; then the outputs finish.
        s.pipeline.tally.rejected = monitor.rejected();
        s.pipeline.finish(s.outs)?;
        monitor.update(&pipeline.tally, &latency);
        note(Note::Status(monitor.status(started, &mut last_status)));
        Ok(std::mem::take(&mut pipeline.tally))
    }
}

/// The saved state of a run and where it goes.
struct Saver {
    state: State,
    file: PathBuf,
    /// The flow number at the last checkpoint: nothing new, nothing to save.
    saved: u64,
}

impl Saver {
    /// Saves the sources' offsets with the window state after exactly the
    /// records they cover (`batches` idle): the windows under a new
    /// generation first, then the offsets naming it, then the old generation
    /// goes — a crash at any point leaves a state file and the windows it
    /// names.
    fn save(&mut self, s: &mut Scoring<'_, '_, '_>, batches: &Batches<'_>, note: &mut dyn FnMut(Note)) {
        let changed = self.state.apply(&s.monitor.names, &mut s.marks);
        let old = self.state.windows;
        let flow = s.pipeline.next;
        if !changed && old.is_some() && flow == self.saved {
            return;
        }
        let Some(w) = batches.checkpoint() else { return };
        let g = old.map_or(1, |g| g + 1);
        let watermark = s.pipeline.clock().map_or(i64::MIN, |c| c.watermark());
        let mut memory = Vec::new();
        // Writing into a Vec fails only for a type serde cannot write.
        let _ = ciborium::into_writer(&s.pipeline.step.explainer.memory(), &mut memory);
        let windows = Windows { flow, watermark, state: w, memory };
        let file = &self.file;
        if let Err(e) = windows.save(&windows_path(file, g)) {
            note(Note::Warning(format!("cannot save the window state beside {}: {e}", file.display())));
            return;
        }
        self.state.windows = Some(g);
        match self.state.save(file) {
            Ok(()) => {
                self.saved = flow;
                if let Some(o) = old {
                    let _ = std::fs::remove_file(windows_path(file, o));
                }
            }
            Err(e) => {
                self.state.windows = old;
                let _ = std::fs::remove_file(windows_path(file, g));
                note(Note::Warning(format!("cannot save watch state {}: {e}", file.display())));
            }
        }
    }
}
