//! The live view: what `flowhound serve --watch` finds as it finds it.
//!
//! The engine's live run (`flowhound_engine::watch`) runs beside the server and
//! hands every scored batch to a [`LiveFeed`]. The feed keeps one analysis of
//! status `live` in the store (so the page's tables, detail panel and
//! feedback work on it exactly as on an upload) and tells every open page
//! what changed through server-sent events (`GET /api/live/events`):
//!
//! ```text
//! watch loop ─ batch ─▶ LiveFeed ─▶ store (anomalies, incidents, summary)
//!                                └▶ broadcast ─▶ SSE: summary / anomaly / incident
//! ```
//!
//! A page that falls behind the broadcast hears `lagged` and reloads from
//! the store; nothing is lost, only not pushed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowhound_detect::Severity;
use flowhound_engine::{Counts, Flow, IncidentNews, Output, OutputError, Tally};
use flowhound_explain::allow::now_secs;
use flowhound_explain::{Allowlist, Finding, Incident};
use flowhound_flow::net::Networks;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::analysis::{Anomaly, IncidentRow};
use crate::{AppState, ServerError};

/// Flagged flows pushed to pages per batch at most; the rest are in the
/// store (the page's next reload shows them).
pub const PUSH_PER_BATCH: usize = 200;

/// Flows named by an incident before they came, remembered at most.
const EARLY_KEPT: usize = 200_000;

/// Events a page can be told, buffered per page.
const CHANNEL: usize = 1024;

/// One pushed event: its SSE name and JSON text.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub kind: &'static str,
    pub data: Arc<str>,
}

/// What the server knows of its live analysis.
#[derive(Debug)]
pub struct LiveInfo {
    pub analysis_id: i64,
    pub sources: Vec<String>,
    pub started: String,
    pub tx: broadcast::Sender<LiveEvent>,
}

impl LiveInfo {
    pub fn json(&self) -> Value {
        json!({"analysis_id": self.analysis_id, "sources": self.sources, "started": self.started})
    }
}

/// Settings of the live analysis.
#[derive(Debug, Clone)]
pub struct LiveParams {
    /// Flagged flows kept in the store; older ones go (unless feedback
    /// names them), so a long watch does not fill the disk.
    pub keep: u64,
    /// How often the dashboard's allowlist is re-read.
    pub allow_every: Duration,
}

impl Default for LiveParams {
    fn default() -> Self {
        LiveParams { keep: 100_000, allow_every: Duration::from_secs(2) }
    }
}

/// The watch loop's handle on the dashboard. Not `Sync`: one loop owns it.
#[derive(Debug)]
pub struct LiveFeed {
    state: Arc<AppState>,
    id: i64,
    params: LiveParams,
    tx: broadcast::Sender<LiveEvent>,
    nets: Networks,
    model_version: i64,
    /// The model's voters and attack classes, as stored anomalies name them.
    names: Vec<&'static str>,
    classes: Option<Vec<String>>,
    anomalies: Vec<Anomaly>,
    /// Members of each incident already given their incident in the store.
    assigned: HashMap<u64, usize>,
    /// Incidents that ended, by peak severity (open ones are in `open`).
    ended_by_severity: [u64; 4],
    open: BTreeMap<u64, Severity>,
    /// Flows by severity; threat classes and suppression of the flagged ones.
    counts: Counts,
    /// Ended incidents of the digest (counted, not listed).
    digest: u64,
    /// The incident of each flow an incident named before the flow itself
    /// came (a worker group's incidents and flagged flows come by separate
    /// subjects, in either order): given to the flow when it is stored.
    early: HashMap<u64, u64>,
    stored: u64,
    allow_text: String,
    allow_checked: Instant,
}

impl LiveFeed {
    /// Opens the live analysis (named after its sources) and announces it.
    pub fn start(state: Arc<AppState>, sources: Vec<String>, params: LiveParams) -> Result<LiveFeed, ServerError> {
        let model = state.current_model();
        let name = format!("live: {}", sources.join(" "));
        let id = state.store.create_live(&name, model.version)?;
        let (tx, _) = broadcast::channel(CHANNEL);
        let info = LiveInfo { analysis_id: id, sources, started: crate::store::now(), tx: tx.clone() };
        *state.live.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(info);
        let feed = LiveFeed {
            nets: Networks::new(&model.bundle.features.internal),
            model_version: model.version,
            names: model.bundle.ensemble.model_names(),
            classes: model.bundle.ensemble.supervised().map(|s| s.classes.clone()),
            state,
            id,
            params,
            tx,
            anomalies: Vec::new(),
            assigned: HashMap::new(),
            ended_by_severity: [0; 4],
            open: BTreeMap::new(),
            counts: Counts::default(),
            digest: 0,
            early: HashMap::new(),
            stored: 0,
            allow_text: String::new(),
            allow_checked: Instant::now() - Duration::from_secs(3600),
        };
        feed.state.store.add_live(id, &[], &[], &feed.summary(), |_| None)?;
        Ok(feed)
    }

    pub fn analysis_id(&self) -> i64 {
        self.id
    }

    /// The dashboard's allowlist, read again at most every `allow_every`
    /// (analysts edit it while the watch runs; entries expire).
    pub fn allowlist_update(&mut self) -> Option<Allowlist> {
        if self.allow_checked.elapsed() < self.params.allow_every {
            return None;
        }
        self.allow_checked = Instant::now();
        let text = match self.state.store.allow_toml() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("live: cannot read the allowlist: {e}");
                return None;
            }
        };
        // Parsed again even when unchanged: entries expire as time passes.
        if text.is_empty() && self.allow_text.is_empty() && self.counts.flows > 0 {
            return None;
        }
        self.allow_text = text;
        match Allowlist::parse(&self.allow_text, now_secs()) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!("live: allowlist not applied: {e}");
                None
            }
        }
    }

    /// Keeps one flagged flow (with its finding) for the next [`publish`](Self::publish).
    pub fn flagged(&mut self, x: &Flow<'_>, f: &Finding) {
        self.anomalies.push(Anomaly::new(x, f, &self.names, self.classes.as_deref(), &self.nets));
    }

    /// The counts of flows scored elsewhere (a worker group's partitions,
    /// added up): they replace what this feed counted.
    pub fn set_counts(&mut self, c: Counts) {
        self.counts = c;
    }

    /// The voters the model names, in verdict order: a verdict from
    /// elsewhere must have as many.
    pub fn voters(&self) -> usize {
        self.names.len()
    }

    /// Stores what the batch found and tells the pages: incidents that grew
    /// (`touched`) and that ended.
    pub fn publish(&mut self, touched: &[Incident], ended: &[Incident]) -> Result<(), ServerError> {
        // An incident can grow and end in one batch: its last state counts.
        let mut latest: BTreeMap<u64, &Incident> = BTreeMap::new();
        // The digest (single low-severity flows no rule names) is counted,
        // not listed: its flows are in the table, as `detect` reports them.
        for i in touched.iter().chain(ended).filter(|i| !i.digest) {
            latest.insert(i.id, i);
        }
        self.digest += ended.iter().filter(|i| i.digest).count() as u64;
        let mut rows = Vec::with_capacity(latest.len());
        for i in latest.into_values() {
            let from = self.assigned.get(&i.id).copied().unwrap_or(0);
            // Members only grow; were it ever otherwise, assign them all again.
            let from = if from > i.members.len() { 0 } else { from };
            rows.push((IncidentRow::new(i), from));
            self.assigned.insert(i.id, i.members.len());
            self.open.insert(i.id, i.peak_severity);
        }
        for i in ended.iter().filter(|i| !i.digest) {
            self.assigned.remove(&i.id);
            self.open.remove(&i.id);
            self.ended_by_severity[i.peak_severity as usize] += 1;
        }
        let summary = self.summary();
        let early = &self.early;
        let missing = self
            .state
            .store
            .add_live(self.id, &self.anomalies, &rows, &summary, |f| early.get(&f).map(|i| *i as i64))?;
        for a in &self.anomalies {
            self.early.remove(&a.flow);
        }
        // Bounded: a flow that never comes (pruned, or lost) is not kept
        // waiting for ever.
        if self.early.len() + missing.len() > EARLY_KEPT {
            self.early.clear();
        }
        self.early.extend(missing);
        self.stored += self.anomalies.len() as u64;
        if self.stored > self.params.keep.saturating_add(self.params.keep / 10) {
            let gone = self.state.store.prune_live(self.id, self.params.keep)?;
            self.stored = self.stored.saturating_sub(gone);
        }
        // Nobody listening is not an error: the store has it all.
        let send = |kind: &'static str, data: String| {
            let _ = self.tx.send(LiveEvent { kind, data: data.into() });
        };
        // Newest first is the page's order: the last flows of the batch.
        let start = self.anomalies.len().saturating_sub(PUSH_PER_BATCH);
        for a in &self.anomalies[start..] {
            send("anomaly", a.json.to_string());
        }
        for (i, _) in &rows {
            send("incident", i.json.to_string());
        }
        send("summary", summary.to_string());
        self.anomalies.clear();
        Ok(())
    }

    fn summary(&self) -> Value {
        let t = &self.counts;
        let mut inc = self.ended_by_severity;
        for s in self.open.values() {
            inc[*s as usize] += 1;
        }
        let ts = |s: i64| flowhound_flow::Timestamp::from_secs(s).map(|t| t.to_rfc3339());
        json!({
            "flows": t.flows,
            "anomalies": t.anomalies(),
            "by_severity": {"high": t.by_severity[3], "medium": t.by_severity[2], "low": t.by_severity[1]},
            "by_class": t.by_class,
            "suppressed": t.suppressed,
            "incidents": {"total": inc[1..].iter().sum::<u64>(), "open": self.open.len(), "high": inc[3], "medium": inc[2], "low": inc[1], "digest": self.digest},
            "time_span": t.span.map(|(a, b)| json!({"first": ts(a), "last": ts(b)})),
            "model_version": self.model_version,
            "live": true,
        })
    }

    /// The watch ended: see [`end`].
    pub fn finish(self, error: Option<&str>) {
        end(&self.state, error);
    }
}

/// The live feed is one of a live run's outputs: every scored flow is
/// counted, flagged ones stored, and each batch's incidents published.
impl Output for LiveFeed {
    fn allowlist(&mut self) -> Option<Allowlist> {
        self.allowlist_update()
    }

    fn flow(&mut self, x: &Flow<'_>) -> Result<(), OutputError> {
        // Classes and suppression count for the flows the page lists: the
        // flagged ones (at least --min-severity).
        self.counts.add(x);
        if let (Some(f), true) = (x.finding, x.shown.flagged) {
            self.flagged(x, f);
        }
        Ok(())
    }

    fn batch_done(&mut self, news: Option<IncidentNews<'_>>) -> Result<(), OutputError> {
        if let Some(IncidentNews::Live(c)) = news {
            self.publish(&c.touched, &c.ended)?;
        }
        Ok(())
    }

    /// The run ended well: the analysis stays as `stopped`.
    fn finish(&mut self, _tally: &mut Tally) -> Result<(), OutputError> {
        end(&self.state, None);
        Ok(())
    }
}

/// Ends the live analysis, if one runs: it stays in the store as `stopped`
/// (or `failed` with the reason), and pages hear `end`.
pub fn end(state: &AppState, error: Option<&str>) {
    let Some(info) = state.live.write().unwrap_or_else(std::sync::PoisonError::into_inner).take() else { return };
    let status = if error.is_some() { "failed" } else { "stopped" };
    if let Err(e) = state.store.set_status(info.analysis_id, status, error) {
        tracing::error!("live: cannot mark analysis {} {status}: {e}", info.analysis_id);
    }
    let _ = info.tx.send(LiveEvent { kind: "end", data: json!({"status": status, "error": error}).to_string().into() });
}
