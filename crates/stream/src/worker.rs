//! `flowhound worker`: one member of a group that scores a stream
//! `publish` filled, with the findings one process would have
//! (docs/scale-out.md has the argument).
//!
//! A group splits the work by address. Partition `p` owns every address
//! whose [`partition`] is `p`, and a worker holding `p`'s lease runs its
//! three stages:
//!
//! ```text
//! STREAM.rec.p ──▶ windows of p's addresses (the extractor, in input order)
//!                     │ each flow's columns that p owns ─▶ STREAM.half.<pair partition>
//! STREAM.half.p ─▶ rows joined (pairs whose partition is p), scored, explained
//!                     ├─ scored flows ─▶ STREAM.out.p      (the group's output)
//!                     └─ findings ─────▶ STREAM.found.<actor's partition>
//! STREAM.found.p ─▶ incidents of p's actors on event time ─▶ STREAM.inc.p, sinks
//! ```
//!
//! Leases live in the key-value bucket `<STREAM>_leases` (compare-and-set,
//! expiring after `--lease`), checkpoints in the object store
//! `<STREAM>_state` with the stream sequences they cover; every message a
//! stage publishes carries an id JetStream de-duplicates, so a partition
//! replayed after a takeover publishes nothing twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, context::PublishAckFuture, kv};
use bytes::Bytes;
use flowhound_detect::bundle::Bundle;
use flowhound_detect::run::{extractor, score_rows};
use flowhound_detect::{Batch, Severity};
use flowhound_engine::live::{self, Changes, Clock};
use flowhound_engine::{Counts, Ending, Flow, IncidentNews, Output, OutputError, Pipeline, Show, Step};
use flowhound_explain::{Allowlist, Explainer, IncidentParams, Incidents};
use flowhound_features::{Extractor, Owner};
use futures_util::StreamExt;
use rustc_hash::FxHashMap;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::wire::{self, Checkpoint, Found, Half, BOTH, CHECKPOINT_VERSION, DST, SRC};
use crate::{nats, pair_partition, partition, StreamError, Subject, Target, FLOW_HEADER};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerParams {
    pub target: Target,
    /// This worker's name in the group (unique; `host-pid` by default).
    pub name: String,
    /// A lease not renewed for this long expires: the partition goes to
    /// another worker.
    pub lease: Duration,
    /// How often each partition's state is saved.
    pub checkpoint: Duration,
    /// Rows scored at once.
    pub batch: usize,
    /// Longest a joined row waits for its batch to fill.
    pub flush: Duration,
    /// Exit when no message has come for this long and nothing waits
    /// (replays, tests); open incidents end first.
    pub idle_exit: Option<Duration>,
    /// As `watch --lateness`: how late a finding may come on event time.
    pub lateness: Duration,
    /// How often the status line is made (`ZERO`: never).
    pub status: Duration,
    /// Copies of the leases and checkpoints a cluster keeps (JetStream
    /// replicas; 1 on a single server).
    pub replicas: usize,
}

/// How flows are judged: `watch`'s settings.
#[derive(Debug)]
pub struct Judging<'m> {
    pub bundle: &'m Bundle,
    pub explainer: Explainer,
    pub show: Show,
    pub allow: Allowlist,
    pub incidents: IncidentParams,
}

/// What a worker tells the person running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Info(String),
    Warning(String),
    /// The periodic status line.
    Status(String),
}

/// What a worker did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Records whose windows it computed (a record counts in each
    /// partition owning one of its addresses).
    pub records: u64,
    /// Rows it joined, scored and explained.
    pub scored: u64,
    /// Of them, flagged (at `--min-severity`).
    pub flagged: u64,
    /// Findings it grew incidents from, and incidents it ended.
    pub findings: u64,
    pub incidents_ended: u64,
    /// Alerts sent to the sinks, and those held back because the group had
    /// sent them already (a replay after a takeover).
    pub alerts: u64,
    pub alerts_repeated: u64,
    /// Partitions claimed (restored from a checkpoint, or fresh), lost.
    pub claimed: u64,
    pub restored: u64,
    pub lost: u64,
    /// Messages that did not read back (counted, skipped).
    pub bad: u64,
}

/// Which stage a message is for (index into a partition's sequences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Records = 0,
    Halves = 1,
    Findings = 2,
}

impl Stage {
    fn subject(self) -> Subject {
        match self {
            Stage::Records => Subject::Records,
            Stage::Halves => Subject::Halves,
            Stage::Findings => Subject::Findings,
        }
    }
}

/// A message for one of a partition's stages.
#[derive(Debug)]
struct Msg {
    part: u32,
    /// The claim it was read for: messages of an earlier claim of the same
    /// partition are dropped.
    claim: u64,
    stage: Stage,
    seq: u64,
    /// The flow number (records carry it in a header).
    n: Option<u64>,
    payload: Bytes,
}

/// A message to publish: subject, id, body.
type Out = (String, String, Bytes);

/// One partition held by this worker: the three stages' state.
struct Part<'m> {
    claim: u64,
    x: Extractor,
    /// Scores, explains (the explainer of this partition's pairs) and
    /// decides what is shown; incidents grow elsewhere.
    pipeline: Pipeline<'m>,
    pending: FxHashMap<u64, Half>,
    ready: Vec<Half>,
    oldest_ready: Option<Instant>,
    incidents: Incidents,
    clock: Clock,
    found_since_settle: bool,
    /// What the scoring stage counted, and how many flows the last counts
    /// published said.
    counts: Counts,
    counts_sent: u64,
    /// Last sequence applied per stage.
    seq: [u64; 3],
    saved_seq: [u64; 3],
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Part<'_> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The fields of [`Checkpoint`] by reference, for saving without a copy.
#[derive(Serialize)]
struct SaveRef<'a> {
    version: u32,
    seq: [u64; 3],
    windows: Vec<u8>,
    pending: Vec<&'a Half>,
    memory: flowhound_explain::Memory,
    incidents: &'a Incidents,
    watermark: i64,
    counts: &'a Counts,
}

/// Runs a worker until `stop` (state saved, leases given back, open
/// incidents left to whoever holds the partition next) or the idle exit
/// (open incidents end first).
pub fn run(
    p: &WorkerParams,
    judging: Judging<'_>,
    alerts: Option<&mut dyn Output>,
    metrics: Arc<Metrics>,
    stop: &AtomicBool,
    note: &mut dyn FnMut(Note),
) -> Result<Report, StreamError> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().map_err(nats)?;
    let mut w = rt.block_on(Worker::connect(p, judging, alerts, metrics))?;
    let result = w.run(&rt, stop, note);
    // Consumers stop with their partitions.
    w.parts.clear();
    result.map(|()| w.report)
}

struct Worker<'m, 'a> {
    p: WorkerParams,
    judging: Judging<'m>,
    alerts: Option<&'a mut dyn Output>,
    js: jetstream::Context,
    /// The consumers' own connection: a consumer waiting for the loop to
    /// take its messages must not hold up the acknowledgements of what the
    /// loop publishes (one connection reads both, in order).
    reading: jetstream::Context,
    leases: kv::Store,
    alerted: kv::Store,
    /// Checkpoints, in chunks (a key-value bucket: read by direct gets, no
    /// consumer to lose with a node).
    state: kv::Store,
    partitions: u32,
    owners: Vec<Owner>,
    /// The model's voters, as output lines name them.
    names: Vec<&'static str>,
    /// Of them, the destination's.
    dst_columns: usize,
    /// The leases held, renewed by their own task ([`keep_leases`]).
    held: Shared,
    keeper: Option<tokio::task::JoinHandle<()>>,
    parts: BTreeMap<u32, Part<'m>>,
    claims: u64,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    outbox: Vec<Out>,
    /// Incident news whose alerts go out with the next publish.
    pending_alerts: Vec<Changes>,
    /// Published, acknowledgement not yet seen (the message kept to send
    /// again; no future: the send itself failed).
    acks: Vec<(Out, Option<PublishAckFuture>)>,
    report: Report,
    metrics: Arc<Metrics>,
}

/// The connections and buckets of a worker.
struct Opened {
    js: jetstream::Context,
    reading: jetstream::Context,
    partitions: u32,
    leases: kv::Store,
    alerted: kv::Store,
    state: kv::Store,
}

impl Opened {
    async fn open(p: &WorkerParams) -> Result<Opened, StreamError> {
        let js = jetstream::new(async_nats::connect(&p.target.server).await.map_err(nats)?);
        let reading = jetstream::new(async_nats::connect(&p.target.server).await.map_err(nats)?);
        let partitions = crate::open_stream(&js, &p.target, None, Duration::ZERO, 1).await?;
        let (s, r) = (&p.target.stream, p.replicas);
        let leases = key_value(&js, &bucket(s, "leases"), p.lease, r).await?;
        // Alerts the group has sent, for as long as the group runs.
        let alerted = key_value(&js, &bucket(s, "alerted"), Duration::ZERO, r).await?;
        let state = key_value(&js, &bucket(s, "state"), Duration::ZERO, r).await?;
        Ok(Opened { js, reading, partitions, leases, alerted, state })
    }
}

fn bucket(stream: &str, what: &str) -> String {
    format!("{stream}_{what}")
}

impl<'m, 'a> Worker<'m, 'a> {
    async fn connect(
        p: &WorkerParams,
        judging: Judging<'m>,
        alerts: Option<&'a mut dyn Output>,
        metrics: Arc<Metrics>,
    ) -> Result<Worker<'m, 'a>, StreamError> {
        // A server that times out (a cluster electing its leaders) is asked
        // again for 30 s.
        let deadline = Instant::now() + Duration::from_secs(30);
        let opened = loop {
            match Opened::open(p).await {
                Ok(o) => break o,
                Err(StreamError::Nats(e)) if Instant::now() < deadline && e.contains("timed out") => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let Opened { js, reading, partitions, leases, alerted, state } = opened;
        let owners = extractor(judging.bundle).map_err(|e| StreamError::Settings(e.to_string()))?.column_owners();
        let (tx, rx) = mpsc::channel(16_384);
        Ok(Worker {
            p: p.clone(),
            names: judging.bundle.ensemble.model_names(),
            judging,
            alerts,
            js,
            reading,
            leases,
            alerted,
            state,
            partitions,
            dst_columns: owners.iter().filter(|o| **o == Owner::Dst).count(),
            owners,
            held: Shared::default(),
            keeper: None,
            parts: BTreeMap::new(),
            claims: 0,
            tx,
            rx,
            outbox: Vec::new(),
            pending_alerts: Vec::new(),
            acks: Vec::new(),
            report: Report::default(),
            metrics,
        })
    }

    fn run(
        &mut self,
        rt: &tokio::runtime::Runtime,
        stop: &AtomicBool,
        note: &mut dyn FnMut(Note),
    ) -> Result<(), StreamError> {
        let tick_every = (self.p.lease / 3).max(Duration::from_millis(100));
        let mut next_tick = Instant::now();
        let mut last_msg = Instant::now();
        let mut last_save = Instant::now();
        let mut last_status = Instant::now();
        loop {
            if !self.p.status.is_zero() && last_status.elapsed() >= self.p.status {
                last_status = Instant::now();
                let r = &self.report;
                let pending: usize = self.parts.values().map(|p| p.pending.len()).sum();
                let ready: usize = self.parts.values().map(|p| p.ready.len()).sum();
                note(Note::Status(format!(
                    "{} partitions, {} records windowed, {} rows scored ({} flagged), {} halves waiting, {} rows ready, {} findings, {} incidents ended",
                    self.parts.len(), r.records, r.scored, r.flagged, pending, ready, r.findings, r.incidents_ended
                )));
            }
            if Instant::now() >= next_tick {
                self.tick(rt, note)?;
                next_tick = Instant::now() + tick_every;
            }
            let mut batch = Vec::new();
            rt.block_on(async {
                if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(20), self.rx.recv()).await {
                    batch.push(m);
                }
            });
            while batch.len() < 4096 {
                match self.rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                last_msg = Instant::now();
            }
            for m in batch {
                self.apply(m)?;
            }
            self.score(false)?;
            self.settle();
            self.publish(rt, false)?;
            if last_save.elapsed() >= self.p.checkpoint {
                self.save_all(rt, note)?;
                last_save = Instant::now();
            }
            if stop.load(Ordering::Relaxed) {
                self.save_all(rt, note)?;
                self.give_back_all(rt);
                return Ok(());
            }
            let waiting = self.parts.values().any(|p| !p.pending.is_empty() || !p.ready.is_empty());
            if self.p.idle_exit.is_some_and(|d| last_msg.elapsed() >= d) && !waiting && !self.parts.is_empty() {
                // The replay is over: every open incident ends now.
                let mut news = Vec::new();
                for part in self.parts.values_mut() {
                    let c = Changes { ended: live::drain(&mut part.incidents), ..Default::default() };
                    if !c.ended.is_empty() {
                        news.push(c);
                        // The partition's state changed: it is saved below.
                        part.saved_seq = [u64::MAX; 3];
                    }
                }
                news.into_iter().for_each(|c| self.announce(c));
                self.publish(rt, true)?;
                self.save_all(rt, note)?;
                self.give_back_all(rt);
                if let Some(a) = self.alerts.as_deref_mut() {
                    a.batch_done(None).map_err(output)?;
                }
                return Ok(());
            }
        }
    }

    /// Drops the partitions whose lease was lost, claims a fair share of the
    /// rest, gives one back when more workers than before share the group.
    fn tick(&mut self, rt: &tokio::runtime::Runtime, note: &mut dyn FnMut(Note)) -> Result<(), StreamError> {
        if self.keeper.is_none() {
            let every = (self.p.lease / 3).max(Duration::from_millis(100));
            let task = keep_leases(self.leases.clone(), self.p.name.clone(), self.held.clone(), every, self.p.lease);
            self.keeper = Some(rt.spawn(task));
        }
        let (lost, alive, held) = rt.block_on(async {
            let mut h = self.held.lock().await;
            (std::mem::take(&mut h.lost), h.alive, h.revs.len())
        });
        // Nothing is claimed before the keeper has announced this worker
        // and counted the others once: workers started together then share
        // the partitions from the start instead of handing them over.
        if alive == 0 {
            return Ok(());
        }
        for p in lost {
            self.parts.remove(&p);
            self.report.lost += 1;
            self.metrics.with(|m| {
                m.lost += 1;
                m.parts.remove(&p);
            });
            note(Note::Warning(format!("partition {p}: lease lost (another worker holds it now)")));
        }
        let mut held = held;
        let share = self.partitions.div_ceil(alive) as usize;
        let name = Bytes::from(self.p.name.clone());
        if held < share {
            // Start where this worker's name points, so workers starting
            // together try different partitions first.
            let start = crate::fnv(crate::FNV_START, self.p.name.as_bytes()) % u64::from(self.partitions);
            for k in 0..self.partitions {
                if held >= share {
                    break;
                }
                let p = ((start + u64::from(k)) % u64::from(self.partitions)) as u32;
                if self.parts.contains_key(&p) {
                    continue;
                }
                let claimed = rt.block_on(async {
                    let rev = self.leases.create(format!("p.{p}"), name.clone()).await.ok()?;
                    self.held.lock().await.revs.insert(p, (rev, Instant::now()));
                    Some(())
                });
                if claimed.is_some() {
                    held += 1;
                    if let Err(e) = self.claim(rt, p, note) {
                        // The server may be electing a leader: try again later.
                        note(Note::Warning(format!("partition {p}: not taken on: {e}")));
                        self.give_back(rt, p);
                        held -= 1;
                    }
                }
            }
        } else if held > share {
            if let Some(&p) = self.parts.keys().next_back() {
                self.save(rt, p, note)?;
                self.give_back(rt, p);
                note(Note::Info(format!("partition {p}: handed over ({alive} workers share the group)")));
            }
        }
        Ok(())
    }

    /// Takes partition `p` on: its checkpoint, then consumers from the
    /// sequences it covers.
    fn claim(&mut self, rt: &tokio::runtime::Runtime, p: u32, note: &mut dyn FnMut(Note)) -> Result<(), StreamError> {
        self.claims += 1;
        self.report.claimed += 1;
        self.metrics.with(|m| {
            m.claimed += 1;
            m.parts.insert(p, PartMetrics::default());
        });
        let bundle = self.judging.bundle;
        let x = extractor(bundle).map_err(|e| StreamError::Settings(e.to_string()))?;
        let pipeline = Pipeline::new(
            bundle,
            Step::new(self.judging.explainer.clone()),
            self.judging.show,
            self.judging.allow.clone(),
            Incidents::new(IncidentParams::default()),
            Ending::Elsewhere,
        );
        let mut part = Part {
            claim: self.claims,
            x,
            pipeline,
            pending: FxHashMap::default(),
            ready: Vec::new(),
            oldest_ready: None,
            incidents: Incidents::new(self.judging.incidents.clone()),
            clock: Clock::new(self.p.lateness),
            found_since_settle: false,
            counts: Counts::default(),
            counts_sent: 0,
            seq: [0; 3],
            saved_seq: [0; 3],
            tasks: Vec::new(),
        };
        // No checkpoint yet is a fresh start; a checkpoint that cannot be
        // read now (a cluster electing a leader) is no reason to start over.
        let saved =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), load_state(&self.state, p)).await });
        let saved = saved.map_err(|_| StreamError::Nats("reading the checkpoint timed out".into()))??;
        if let Some(b) = saved {
            match restore(&mut part, &b) {
                Ok(()) => {
                    self.report.restored += 1;
                    self.metrics.with(|m| m.restored += 1);
                    note(Note::Info(format!(
                        "partition {p}: claimed, resuming after records {} / halves {} / findings {}",
                        part.seq[0], part.seq[1], part.seq[2]
                    )));
                }
                Err(e) => {
                    note(Note::Warning(format!(
                        "partition {p}: checkpoint unusable ({e}); starting from the stream's start"
                    )));
                    part.x = extractor(bundle).map_err(|e| StreamError::Settings(e.to_string()))?;
                    part.seq = [0; 3];
                    part.pending.clear();
                    part.incidents = Incidents::new(self.judging.incidents.clone());
                    part.counts = Counts::default();
                }
            }
        } else {
            note(Note::Info(format!("partition {p}: claimed, no checkpoint yet")));
        }
        part.saved_seq = part.seq;
        let stream = rt.block_on(self.reading.get_stream(&self.p.target.stream)).map_err(nats)?;
        for stage in [Stage::Records, Stage::Halves, Stage::Findings] {
            let subject = self.p.target.of(stage.subject(), p);
            let task = consume(
                stream.clone(),
                subject,
                part.seq[stage as usize],
                (p, part.claim, stage),
                self.tx.clone(),
                Arc::clone(&self.metrics),
            );
            part.tasks.push(rt.spawn(task));
        }
        self.parts.insert(p, part);
        Ok(())
    }

    fn give_back(&mut self, rt: &tokio::runtime::Runtime, p: u32) {
        self.parts.remove(&p);
        self.metrics.with(|m| {
            m.parts.remove(&p);
        });
        rt.block_on(async {
            if self.held.lock().await.revs.remove(&p).is_some() {
                let _ = self.leases.delete(format!("p.{p}")).await;
            }
        });
    }

    fn give_back_all(&mut self, rt: &tokio::runtime::Runtime) {
        if let Some(k) = self.keeper.take() {
            k.abort();
        }
        let held: Vec<u32> = self.parts.keys().copied().collect();
        for p in held {
            self.give_back(rt, p);
        }
        let _ = rt.block_on(self.leases.delete(format!("w.{}", self.p.name)));
    }

    /// One message through its stage.
    fn apply(&mut self, m: Msg) -> Result<(), StreamError> {
        let Some(part) = self.parts.get_mut(&m.part) else { return Ok(()) };
        let s = m.stage as usize;
        if part.claim != m.claim || m.seq <= part.seq[s] {
            return Ok(());
        }
        part.seq[s] = m.seq;
        let n_parts = self.partitions;
        match m.stage {
            Stage::Records => {
                let (Some(n), Ok(r)) = (m.n, crate::decode(&m.payload)) else {
                    self.report.bad += 1;
                    return Ok(());
                };
                let mut row = Vec::with_capacity(self.owners.len());
                part.x.extract(&r, &mut row);
                let mut parts = 0;
                if partition(r.src, n_parts) == m.part {
                    parts |= SRC;
                }
                if partition(r.dst, n_parts) == m.part {
                    parts |= DST;
                }
                if parts == 0 {
                    self.report.bad += 1;
                    return Ok(());
                }
                self.report.records += 1;
                self.metrics.part(m.part, |x| x.records += 1);
                // A destination's half alone carries its own columns only:
                // the source's half brings the record and the rest.
                let (row, record) = if parts == DST {
                    let own = row.iter().zip(&self.owners).filter(|(_, o)| **o == Owner::Dst).map(|(v, _)| *v);
                    (own.collect(), String::new())
                } else {
                    (row, String::from_utf8_lossy(&m.payload).into_owned())
                };
                let half = Half { n, parts, row, unseen: part.x.last_unseen_parts(), record };
                let j = pair_partition(r.src, r.dst, n_parts);
                self.outbox.push((
                    self.p.target.of(Subject::Halves, j),
                    format!("h{n}.{parts}"),
                    Bytes::from(wire::encode(&half)),
                ));
            }
            Stage::Halves => {
                let Ok(h) = wire::decode::<Half>(&m.payload) else {
                    self.report.bad += 1;
                    return Ok(());
                };
                let width = if h.parts == DST { self.dst_columns } else { self.owners.len() };
                if h.row.len() != width || h.parts == 0 || h.parts > BOTH {
                    self.report.bad += 1;
                    return Ok(());
                }
                let joined = match part.pending.remove(&h.n) {
                    None if h.parts == BOTH => Some(h),
                    None => {
                        part.pending.insert(h.n, h);
                        None
                    }
                    Some(prev) if prev.parts & h.parts != 0 => {
                        // The same half twice: keep the first.
                        part.pending.insert(prev.n, prev);
                        None
                    }
                    Some(prev) => Some(join(prev, h, &self.owners)),
                };
                if let Some(h) = joined {
                    part.oldest_ready.get_or_insert_with(Instant::now);
                    part.ready.push(h);
                }
            }
            Stage::Findings => {
                let Ok(f) = wire::decode::<Found>(&m.payload) else {
                    self.report.bad += 1;
                    return Ok(());
                };
                // Flows the allowlist hides are here for the dashboard only.
                if !f.grows {
                    return Ok(());
                }
                let Ok(r) = crate::decode(f.record.as_bytes()) else {
                    self.report.bad += 1;
                    return Ok(());
                };
                self.report.findings += 1;
                self.metrics.part(m.part, |x| x.findings += 1);
                part.clock.observe(r.start.map(|t| t.micros()));
                part.incidents.push(f.n, &r, &f.verdict, &f.finding, f.entry.is_some());
                part.found_since_settle = true;
            }
        }
        Ok(())
    }

    /// Scores the joined rows of every partition whose batch is full (or
    /// waited `flush`; every one with `all`).
    fn score(&mut self, all: bool) -> Result<(), StreamError> {
        let bundle = self.judging.bundle;
        for (&p, part) in self.parts.iter_mut() {
            let due = part.ready.len() >= self.p.batch.max(1)
                || part.oldest_ready.is_some_and(|t| t.elapsed() >= self.p.flush)
                || (all && !part.ready.is_empty());
            if !due {
                continue;
            }
            let ready = std::mem::take(&mut part.ready);
            part.oldest_ready = None;
            let mut recs = Vec::with_capacity(ready.len());
            let mut ids = Vec::with_capacity(ready.len());
            let mut raw = Vec::with_capacity(ready.len() * self.owners.len());
            for h in &ready {
                match crate::decode(h.record.as_bytes()) {
                    Ok(r) => {
                        recs.push(r);
                        ids.push(h.n);
                        raw.extend_from_slice(&h.row);
                    }
                    Err(_) => self.report.bad += 1,
                }
            }
            if recs.is_empty() {
                continue;
            }
            let mut input = Vec::new();
            let verdicts = score_rows(bundle, &raw, &mut input).map_err(flowhound_engine::RunError::from)?;
            let b = Batch { recs: &recs, verdicts: &verdicts, raw: &raw, input: &input };
            let mut emit = Emit {
                target: &self.p.target,
                partitions: self.partitions,
                names: &self.names,
                classes: bundle.ensemble.supervised().map(|s| s.classes.as_slice()),
                outbox: &mut self.outbox,
                counts: &mut part.counts,
                flagged: 0,
            };
            part.pipeline.batch_numbered(&b, &ids, &mut [&mut emit])?;
            self.report.flagged += emit.flagged;
            self.report.scored += recs.len() as u64;
            let (flagged, scored) = (emit.flagged, recs.len() as u64);
            if part.counts.flows != part.counts_sent {
                part.counts_sent = part.counts.flows;
                let c = wire::Counted { part: p, counts: part.counts.clone() };
                // Named by how far it counted: a replay's same counts are stored once.
                let id = format!("c{p}.{}", part.counts.flows);
                self.outbox.push((self.p.target.of(Subject::Counts, p), id, Bytes::from(wire::encode(&c))));
            }
            self.metrics.part(p, |x| {
                x.flagged += flagged;
                x.scored += scored;
            });
        }
        Ok(())
    }

    /// Incidents after new findings: opened or grown worse (alerted), ended.
    fn settle(&mut self) {
        let mut news = Vec::new();
        for part in self.parts.values_mut() {
            // Event time moves with findings only: settle when some came.
            if std::mem::take(&mut part.found_since_settle) {
                news.push(live::settle(&mut part.incidents, &part.clock));
            }
        }
        news.into_iter().for_each(|c| self.announce(c));
    }

    /// What happened to a partition's incidents, on its way out: their
    /// lines to the output (now), their alerts to the sinks (with the next
    /// publish).
    fn announce(&mut self, mut c: Changes) {
        name_incidents(&mut c);
        // The dashboard's incidents, whole. A growing incident's message is
        // named by its size, an ended one's by its end: a replay that ends it
        // again stores nothing (a replay's growth may be cut at other sizes:
        // the dashboard keeps the largest).
        let ended: std::collections::HashSet<u64> = c.ended.iter().map(|i| i.id).collect();
        let grown = c.touched.iter().filter(|i| !ended.contains(&i.id)).map(|i| (i, false));
        for (i, end) in grown.chain(c.ended.iter().map(|i| (i, true))) {
            let p = partition(i.actor, self.partitions);
            let id = if end { format!("n{}.end", i.id) } else { format!("n{}.{}", i.id, i.members.len()) };
            let news = wire::News { incident: i.clone(), ended: end };
            self.outbox.push((self.p.target.of(Subject::News, p), id, Bytes::from(wire::encode(&news))));
        }
        for (list, status) in [(&c.alerts, "open"), (&c.ended, "closed")] {
            for i in list {
                let mut v = flowhound_explain::json::incident_json(i);
                if let Some(o) = v.as_object_mut() {
                    o.insert("status".into(), status.into());
                }
                let p = partition(i.actor, self.partitions);
                let id = format!("i{}.{status}.{}", i.id, i.peak_severity.name());
                self.outbox.push((self.p.target.of(Subject::Incidents, p), id, Bytes::from(v.to_string())));
            }
        }
        self.report.incidents_ended += c.ended.len() as u64;
        self.pending_alerts.push(c);
    }

    /// Publishes what the stages made; with `wait`, until the server has
    /// stored all of it.
    fn publish(&mut self, rt: &tokio::runtime::Runtime, wait: bool) -> Result<(), StreamError> {
        let outbox = std::mem::take(&mut self.outbox);
        let pending = std::mem::take(&mut self.pending_alerts);
        for c in &pending {
            let sent = send_alerts(rt, &self.alerted, self.alerts.as_deref_mut(), c)?;
            self.report.alerts += sent.0;
            self.report.alerts_repeated += sent.1;
        }
        let (js, acks) = (&self.js, &mut self.acks);
        rt.block_on(async {
            for out in outbox {
                let ack = send(js, &out).await.ok();
                acks.push((out, ack));
                // Under the client's own limit of acknowledgements awaited (5,000).
                if acks.len() >= 4096 {
                    confirm(js, std::mem::take(acks)).await?;
                }
            }
            if wait {
                confirm(js, std::mem::take(acks)).await?;
            }
            Ok::<_, StreamError>(())
        })
    }

    /// Saves every partition that moved since its last save.
    fn save_all(&mut self, rt: &tokio::runtime::Runtime, note: &mut dyn FnMut(Note)) -> Result<(), StreamError> {
        let held: Vec<u32> = self.parts.keys().copied().collect();
        for p in held {
            self.save(rt, p, note)?;
        }
        Ok(())
    }

    /// Saves partition `p`: what it has read is scored and published (and
    /// stored by the server) first, so the checkpoint's sequences cover
    /// exactly what its state holds.
    fn save(&mut self, rt: &tokio::runtime::Runtime, p: u32, note: &mut dyn FnMut(Note)) -> Result<(), StreamError> {
        if self.parts.get(&p).is_none_or(|part| part.seq == part.saved_seq) {
            return Ok(());
        }
        self.score(true)?;
        self.settle();
        self.publish(rt, true)?;
        let Some(part) = self.parts.get_mut(&p) else { return Ok(()) };
        let mut pending: Vec<&Half> = part.pending.values().collect();
        pending.sort_unstable_by_key(|h| h.n);
        let save = SaveRef {
            version: CHECKPOINT_VERSION,
            seq: part.seq,
            windows: part.x.checkpoint(),
            pending,
            memory: part.pipeline.step.explainer.memory(),
            incidents: &part.incidents,
            watermark: part.clock.watermark(),
            counts: &part.counts,
        };
        let bytes = wire::encode(&save);
        // Only the lease holder writes the partition's state: the lease is
        // renewed (compare-and-set) with the renewals held off, then the state
        // written.
        let name = Bytes::from(self.p.name.clone());
        let r = rt.block_on(async {
            {
                let mut h = self.held.lock().await;
                let Some(&(rev, _)) = h.revs.get(&p) else {
                    return Err(StreamError::Nats("the lease is no longer held".into()));
                };
                let rev = self.leases.update(format!("p.{p}"), name, rev).await.map_err(nats)?;
                h.revs.insert(p, (rev, Instant::now()));
            }
            // Written without holding up the renewals. Should the lease go
            // meanwhile, the next holder may read this state or the one
            // before: each covers exactly its sequences, so either resumes
            // right.
            save_state(&self.state, p, &bytes).await?;
            Ok::<_, StreamError>(())
        });
        match r {
            Ok(()) => part.saved_seq = part.seq,
            Err(e) => note(Note::Warning(format!("partition {p}: state not saved: {e}"))),
        }
        Ok(())
    }
}

/// Checkpoint bytes per chunk: under a server's 1 MB message limit.
const CHUNK: usize = 512 * 1024;

/// Saves partition `p`'s checkpoint: its chunks under a new generation,
/// then the manifest naming it, then the old generation's chunks go — a
/// crash at any point leaves a manifest and the chunks it names.
async fn save_state(kv: &kv::Store, p: u32, bytes: &[u8]) -> Result<(), StreamError> {
    let old = manifest(kv, p).await?;
    let generation = old.map_or(1, |(g, _)| g + 1);
    let chunks: Vec<&[u8]> = bytes.chunks(CHUNK).collect();
    for (i, c) in chunks.iter().enumerate() {
        kv.put(format!("c.{p}.{generation}.{i}"), Bytes::copy_from_slice(c)).await.map_err(nats)?;
    }
    kv.put(format!("m.{p}"), Bytes::from(format!("{generation} {}", chunks.len()))).await.map_err(nats)?;
    if let Some((g, n)) = old {
        for i in 0..n {
            let _ = kv.purge(format!("c.{p}.{g}.{i}")).await;
        }
    }
    Ok(())
}

/// The generation and chunk count of partition `p`'s checkpoint.
async fn manifest(kv: &kv::Store, p: u32) -> Result<Option<(u64, usize)>, StreamError> {
    let Some(m) = kv.get(format!("m.{p}")).await.map_err(nats)? else { return Ok(None) };
    let text = String::from_utf8_lossy(&m);
    let mut it = text.split(' ').map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(g)), Some(Ok(n))) => Ok(Some((g, n as usize))),
        _ => Err(StreamError::Decode(format!("checkpoint manifest {text:?}"))),
    }
}

async fn load_state(kv: &kv::Store, p: u32) -> Result<Option<Vec<u8>>, StreamError> {
    let Some((g, n)) = manifest(kv, p).await? else { return Ok(None) };
    let mut b = Vec::new();
    for i in 0..n {
        let c = kv.get(format!("c.{p}.{g}.{i}")).await.map_err(nats)?;
        let c = c.ok_or_else(|| StreamError::Decode(format!("checkpoint chunk {i} of {n} is missing")))?;
        b.extend_from_slice(&c);
    }
    Ok(Some(b))
}

/// The leases a worker holds: partition → (revision, last renewed); those
/// lost since the loop last looked; the workers alive.
#[derive(Debug, Default)]
struct Held {
    revs: BTreeMap<u32, (u64, Instant)>,
    lost: Vec<u32>,
    alive: u32,
}

type Shared = Arc<tokio::sync::Mutex<Held>>;

/// Renews the worker's presence and its leases every `every`, on the
/// runtime's thread: a loop busy with a long batch or a checkpoint keeps
/// its partitions; only a dead or cut-off process loses them. A lease
/// another worker took (the revision moved on) is lost at once; one that
/// cannot be renewed (a cluster electing a leader) is kept until `lease`
/// has passed since its last renewal, when the others may have taken it.
async fn keep_leases(kv: kv::Store, name: String, held: Shared, every: Duration, lease: Duration) {
    let value = Bytes::from(name.clone());
    loop {
        let _ = kv.put(format!("w.{name}"), value.clone()).await;
        {
            let mut h = held.lock().await;
            let revs: Vec<(u32, (u64, Instant))> = h.revs.iter().map(|(p, r)| (*p, *r)).collect();
            for (p, (rev, at)) in revs {
                match kv.update(format!("p.{p}"), value.clone(), rev).await {
                    Ok(r) => {
                        h.revs.insert(p, (r, Instant::now()));
                    }
                    Err(e) => {
                        let taken = e.to_string().contains("wrong last sequence");
                        if taken || at.elapsed() >= lease {
                            h.revs.remove(&p);
                            h.lost.push(p);
                        }
                    }
                }
            }
        }
        // Counted a round after announcing itself, so that workers started
        // together see each other (a key written while the list is read
        // can come twice).
        tokio::time::sleep(every).await;
        let mut alive = std::collections::BTreeSet::new();
        if let Ok(mut keys) = kv.keys().await {
            while let Some(k) = keys.next().await {
                if let Some(w) = k.ok().filter(|k| k.starts_with("w.")) {
                    alive.insert(w);
                }
            }
        }
        held.lock().await.alive = (alive.len() as u32).max(1);
    }
}

async fn send(js: &jetstream::Context, (subject, id, body): &Out) -> Result<PublishAckFuture, StreamError> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(NATS_MESSAGE_ID, id.as_str());
    js.publish_with_headers(subject.clone(), headers, body.clone()).await.map_err(nats)
}

/// Waits for the acknowledgements of published messages, all at once; those
/// that do not come (a cluster electing a new stream leader after a node
/// died, a reconnect) are sent again together — the same ids, so each is
/// stored once — for up to a minute.
async fn confirm(js: &jetstream::Context, mut batch: Vec<(Out, Option<PublishAckFuture>)>) -> Result<(), StreamError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let results = futures_util::future::join_all(batch.into_iter().map(|(out, ack)| async move {
            let ok = match ack {
                Some(a) => a.await.map(|_| ()).map_err(|e| e.to_string()),
                None => Err("not sent".to_string()),
            };
            (out, ok)
        }))
        .await;
        let failed: Vec<(Out, String)> = results.into_iter().filter_map(|(out, r)| r.err().map(|e| (out, e))).collect();
        let Some((first, why)) = failed.first() else { return Ok(()) };
        if Instant::now() >= deadline {
            return Err(StreamError::Nats(format!(
                "{} messages (first {}) not stored after a minute of retries: {why}",
                failed.len(),
                first.0
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        batch = Vec::with_capacity(failed.len());
        for (out, _) in failed {
            let ack = send(js, &out).await.ok();
            batch.push((out, ack));
        }
    }
}

/// A worker's numbers for its Prometheus endpoint (`--metrics`): per
/// partition held, what each stage did and how many messages of its subject
/// it has yet to read (its lag); claims, restores from a checkpoint and
/// losses (takeovers).
#[derive(Debug)]
pub struct Metrics {
    name: String,
    inner: std::sync::Mutex<MetricsInner>,
}

#[derive(Debug, Default)]
struct MetricsInner {
    parts: BTreeMap<u32, PartMetrics>,
    claimed: u64,
    restored: u64,
    lost: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PartMetrics {
    records: u64,
    scored: u64,
    flagged: u64,
    findings: u64,
    /// Messages left to read per stage (records, halves, findings), as the
    /// server reported with the last one read.
    lag: [u64; 3],
}

impl Metrics {
    pub fn new(worker: &str) -> Arc<Metrics> {
        // Label values are quoted: a name with quotes or backslashes is escaped.
        let name = worker.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " ");
        Arc::new(Metrics { name, inner: std::sync::Mutex::new(MetricsInner::default()) })
    }

    fn with(&self, f: impl FnOnce(&mut MetricsInner)) {
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g);
    }

    fn part(&self, p: u32, f: impl FnOnce(&mut PartMetrics)) {
        self.with(|m| {
            if let Some(x) = m.parts.get_mut(&p) {
                f(x);
            }
        });
    }

    /// Prometheus text.
    pub fn prometheus(&self) -> String {
        let g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let w = &self.name;
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
            s += &format!("# HELP flowhound_worker_{name} {help}\n# TYPE flowhound_worker_{name} {kind}\n");
            for (labels, v) in rows {
                s += &format!("flowhound_worker_{name}{{worker=\"{w}\"{labels}}} {v}\n");
            }
        };
        metric("partitions", "gauge", "Partitions this worker holds.", vec![(String::new(), g.parts.len() as u64)]);
        for (name, help, v) in [
            ("claims_total", "Partitions claimed.", g.claimed),
            ("restores_total", "Partitions claimed that resumed from a checkpoint (takeovers).", g.restored),
            ("losses_total", "Leases lost to another worker.", g.lost),
        ] {
            metric(name, "counter", help, vec![(String::new(), v)]);
        }
        let per = |f: fn(&PartMetrics) -> u64| -> Vec<(String, u64)> {
            g.parts.iter().map(|(p, x)| (format!(",partition=\"{p}\""), f(x))).collect()
        };
        metric("records_total", "counter", "Records windowed, per partition held (since claimed).", per(|x| x.records));
        metric("scored_total", "counter", "Rows joined, scored and explained.", per(|x| x.scored));
        metric("flagged_total", "counter", "Of them, flagged.", per(|x| x.flagged));
        metric("findings_total", "counter", "Findings grown into incidents.", per(|x| x.findings));
        let lag: Vec<(String, u64)> = g
            .parts
            .iter()
            .flat_map(|(p, x)| {
                ["records", "halves", "findings"]
                    .iter()
                    .zip(x.lag)
                    .map(move |(st, v)| (format!(",partition=\"{p}\",stage=\"{st}\""), v))
            })
            .collect();
        metric("lag_messages", "gauge", "Messages of the partition's subject not yet read.", lag);
        s
    }
}

/// Reads one stage's subject of a partition from after `after`, handing
/// its messages to the worker's loop and its lag to the metrics.
async fn consume(
    stream: jetstream::stream::Stream,
    subject: String,
    after: u64,
    (part, claim, stage): (u32, u64, Stage),
    tx: mpsc::Sender<Msg>,
    metrics: Arc<Metrics>,
) {
    crate::consume(stream, subject, after, tx, move |m, seq, pending| {
        metrics.part(part, |x| x.lag[stage as usize] = pending);
        let n = m.headers.as_ref().and_then(|h| h.get(FLOW_HEADER)).and_then(|v| v.as_str().parse().ok());
        Msg { part, claim, stage, seq, n, payload: m.payload.clone() }
    })
    .await;
}

/// The row of a flow from its source's half (a whole row, right in the
/// source's columns) and its destination's (the destination's columns, in
/// order).
fn join(a: Half, b: Half, owners: &[Owner]) -> Half {
    let (mut s, d) = if a.parts & SRC != 0 { (a, b) } else { (b, a) };
    let mut theirs = d.row.iter();
    for (i, o) in owners.iter().enumerate() {
        match o {
            Owner::Dst => s.row[i] = theirs.next().copied().unwrap_or(f32::NAN),
            Owner::Unseen => {
                // No address at all is a row of one partition: never joined.
                s.row[i] = if s.unseen[0] || d.unseen[1] { 1.0 } else { 0.0 };
            }
            Owner::Flow | Owner::Src => {}
        }
    }
    s.unseen = [s.unseen[0], d.unseen[1]];
    s.parts = BOTH;
    s
}

/// Incidents of a group are named by the flow that opened them (their
/// first member as their actor's partition took them): unique in the group
/// (a flow grows one incident), the same while the incident grows — the
/// smallest member would change when a flow numbered lower, published by
/// another partition, arrives later — and the same in a replay, which reads
/// the same findings in the same order.
fn name_incidents(c: &mut Changes) {
    for i in c.touched.iter_mut().chain(c.alerts.iter_mut()).chain(c.ended.iter_mut()) {
        if let Some(first) = i.members.first() {
            i.id = *first;
        }
    }
}

fn restore(part: &mut Part<'_>, b: &[u8]) -> Result<(), StreamError> {
    let c: Checkpoint = wire::decode(b)?;
    if c.version != CHECKPOINT_VERSION {
        return Err(StreamError::Decode(format!(
            "checkpoint version {} (this flowhound writes {CHECKPOINT_VERSION})",
            c.version
        )));
    }
    part.x.restore(&c.windows).map_err(|e| StreamError::Decode(e.to_string()))?;
    part.seq = c.seq;
    part.pending = c.pending.into_iter().map(|h| (h.n, h)).collect();
    part.pipeline.step.explainer.set_memory(c.memory);
    part.incidents = c.incidents;
    part.clock.restore(c.watermark);
    part.counts_sent = c.counts.flows;
    part.counts = c.counts;
    Ok(())
}

/// Sends the alerts of `c` the group has not sent yet (a replay after a
/// takeover re-forms incidents already alerted: the bucket of alerts sent
/// holds them back). Returns (sent, held back).
fn send_alerts<'o>(
    rt: &tokio::runtime::Runtime,
    alerted: &kv::Store,
    out: Option<&mut (dyn Output + 'o)>,
    c: &Changes,
) -> Result<(u64, u64), StreamError> {
    let Some(out) = out else { return Ok((0, 0)) };
    let owed = live::owed(&c.ended);
    if c.alerts.is_empty() && owed.is_empty() {
        return Ok((0, 0));
    }
    let (mut send, mut held) = (Changes::default(), 0u64);
    rt.block_on(async {
        for (i, is_owed) in c.alerts.iter().map(|i| (i, false)).chain(owed.iter().map(|i| (i, true))) {
            // Compare-and-set: of two workers replaying the same partition
            // (a takeover not yet noticed by the old owner), one sends.
            let key = format!("a.{}", i.id);
            let value = Bytes::from(i.peak_severity.name());
            let won = match alerted.entry(key.as_str()).await {
                Ok(None) => alerted.create(key.as_str(), value).await.is_ok(),
                Ok(Some(e)) => {
                    let level = std::str::from_utf8(&e.value).ok().and_then(Severity::parse);
                    level.is_none_or(|l| l < i.peak_severity)
                        && alerted.update(key.as_str(), value, e.revision).await.is_ok()
                }
                // The bucket cannot be read: better an alert twice than none.
                Err(_) => true,
            };
            if !won {
                held += 1;
                continue;
            }
            if is_owed {
                send.ended.push(i.clone());
            } else {
                send.alerts.push(i.clone());
            }
        }
    });
    let sent = (send.alerts.len() + send.ended.len()) as u64;
    out.batch_done(Some(IncidentNews::Live(&send))).map_err(output)?;
    Ok((sent, held))
}

fn output(e: OutputError) -> StreamError {
    StreamError::Run(flowhound_engine::RunError::Output(e))
}

/// A key-value bucket, made when missing. Its stream is made here with the
/// settings the client would give it: the client's own `create_key_value`
/// first asks for the account's limits, and the answer of a 2.9 server (the
/// one Debian ships) does not parse.
async fn key_value(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, StreamError> {
    if let Ok(s) = js.get_key_value(bucket).await {
        return Ok(s);
    }
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        // The server refuses a de-duplication window longer than the age.
        duplicate_window: if max_age.is_zero() {
            Duration::from_secs(120)
        } else {
            max_age.min(Duration::from_secs(120))
        },
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas.max(1),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    js.get_or_create_stream(config).await.map_err(nats)?;
    js.get_key_value(bucket).await.map_err(nats)
}

/// The scoring stage's output: scored flows to the group's output subject,
/// findings to the stage keyed by actor.
struct Emit<'t> {
    target: &'t Target,
    partitions: u32,
    names: &'t [&'static str],
    classes: Option<&'t [String]>,
    outbox: &'t mut Vec<Out>,
    counts: &'t mut Counts,
    flagged: u64,
}

impl Output for Emit<'_> {
    fn flow(&mut self, f: &Flow<'_>) -> Result<(), OutputError> {
        let r = f.record;
        let j = pair_partition(r.src, r.dst, self.partitions);
        if f.shown.written {
            let m = flowhound_explain::json::flow_json(
                f.id,
                r,
                f.verdict,
                f.finding,
                f.shown.entry,
                self.names,
                self.classes,
            );
            let line = serde_json::Value::Object(m).to_string();
            self.outbox.push((self.target.of(Subject::Scored, j), format!("o{}", f.id), Bytes::from(line)));
        }
        self.flagged += u64::from(f.shown.flagged);
        self.counts.add(f);
        if let (Some(finding), true) = (f.finding, f.shown.flagged) {
            let found = Found {
                n: f.id,
                record: String::from_utf8_lossy(&crate::encode(r)).into_owned(),
                verdict: f.verdict.clone(),
                finding: finding.clone(),
                entry: f.shown.entry.cloned(),
                grows: f.shown.grows_incident(),
                raw: f.raw.to_vec(),
            };
            let a = partition(finding.actor, self.partitions);
            self.outbox.push((
                self.target.of(Subject::Findings, a),
                format!("f{}", f.id),
                Bytes::from(wire::encode(&found)),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_name_the_worker_and_each_partitions_numbers() {
        let m = Metrics::new("w\"1");
        m.with(|x| {
            x.claimed = 3;
            x.restored = 1;
            x.parts.insert(4, PartMetrics { records: 10, scored: 7, flagged: 2, findings: 1, lag: [5, 0, 9] });
        });
        m.part(4, |x| x.records += 1);
        m.part(9, |x| x.records += 1);
        let text = m.prometheus();
        for line in [
            "flowhound_worker_partitions{worker=\"w\\\"1\"} 1",
            "flowhound_worker_claims_total{worker=\"w\\\"1\"} 3",
            "flowhound_worker_restores_total{worker=\"w\\\"1\"} 1",
            "flowhound_worker_records_total{worker=\"w\\\"1\",partition=\"4\"} 11",
            "flowhound_worker_scored_total{worker=\"w\\\"1\",partition=\"4\"} 7",
            "flowhound_worker_lag_messages{worker=\"w\\\"1\",partition=\"4\",stage=\"findings\"} 9",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("partition=\"9\""), "a partition not held has no numbers");
    }

    #[test]
    fn a_row_joins_the_destination_columns_and_ors_the_unseen_parts() {
        let owners = [Owner::Flow, Owner::Src, Owner::Dst, Owner::Unseen];
        let src = Half { n: 4, parts: SRC, row: vec![1.0, 2.0, -1.0, 0.0], unseen: [false, true], record: "s".into() };
        let dst = Half { n: 4, parts: DST, row: vec![3.0], unseen: [true, true], record: String::new() };
        let j = join(dst.clone(), src.clone(), &owners);
        assert_eq!(j.row, vec![1.0, 2.0, 3.0, 1.0], "the source's columns from its half, the destination's from its");
        assert_eq!((j.parts, j.unseen, j.record.as_str()), (BOTH, [false, true], "s"));
        // Neither host's evidence says unseen: 0.
        let quiet = join(Half { unseen: [false, true], ..src }, Half { unseen: [true, false], ..dst }, &owners);
        assert_eq!(quiet.row[3], 0.0);
    }
}
