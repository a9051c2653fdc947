//! A worker group's results as they come, for those who read rather than
//! score: the dashboard (`serve --watch nats://…`) takes flagged flows,
//! counts and incidents; `watch --source nats://…` writes the output lines.
//!
//! Every kind of message has its own subject, read by its own ordered
//! consumer from the stream's start; what they hand over is gathered into
//! batches. The subjects are not in step with each other (an incident may
//! name a flow whose message comes a moment later): the reader copes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use flowhound_engine::Counts;
use tokio::sync::mpsc;

use crate::wire::{Counted, News};
use crate::{StreamError, Subject, Target};

/// How long a batch gathers before it is handed over.
const GATHER: Duration = Duration::from_millis(250);
/// Most messages in one batch.
const BATCH: usize = 4096;

/// Reads `subjects` (every partition's) of the group's stream from its
/// start, handing batches to `each` until `stop`, or until nothing came for
/// `idle_exit`; `started` hears once the readers run. Fails when the server
/// or the stream is not there.
pub fn follow<E>(
    target: &Target,
    subjects: &[Subject],
    (stop, idle_exit): (&AtomicBool, Option<Duration>),
    started: impl FnOnce(),
    mut each: impl FnMut(Vec<(Subject, Bytes)>) -> Result<(), E>,
) -> Result<Result<(), E>, StreamError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| StreamError::Settings(e.to_string()))?;
    let (tx, mut rx) = mpsc::channel::<(Subject, Bytes)>(BATCH);
    let _client = rt.block_on(async {
        let client = async_nats::connect(&target.server)
            .await
            .map_err(|e| StreamError::Nats(format!("cannot reach {}: {e}", target.server)))?;
        let js = jetstream::new(client.clone());
        let stream = js.get_stream(&target.stream).await.map_err(|e| {
            StreamError::Nats(format!("no stream {} on {}: {e} (has `publish` run?)", target.stream, target.server))
        })?;
        for &s in subjects {
            let filter = format!("{}.{}.>", target.stream, s.token());
            tokio::spawn(crate::consume(stream.clone(), filter, 0, tx.clone(), move |m, _, _| (s, m.payload.clone())));
        }
        Ok::<_, StreamError>(client)
    })?;
    drop(tx);
    started();
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let batch = rt.block_on(async {
            let mut batch = Vec::new();
            let until = tokio::time::Instant::now() + GATHER;
            while batch.len() < BATCH {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(m)) => batch.push(m),
                    Ok(None) | Err(_) => break,
                }
            }
            batch
        });
        if batch.is_empty() {
            if idle_exit.is_some_and(|d| last.elapsed() >= d) {
                break;
            }
            continue;
        }
        last = Instant::now();
        if let Err(e) = each(batch) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

/// The group's counts: each partition's latest (its largest: counts only
/// grow, and a replay after a takeover counts up to the same), added up.
#[derive(Debug, Default)]
pub struct Totals {
    per: BTreeMap<u32, Counts>,
}

impl Totals {
    /// Takes a partition's counts; false when they say nothing new.
    pub fn update(&mut self, c: Counted) -> bool {
        let e = self.per.entry(c.part).or_default();
        if c.counts.flows <= e.flows && e.flows > 0 {
            return false;
        }
        *e = c.counts;
        true
    }

    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        self.per.values().for_each(|c| t.merge(c));
        t
    }
}

/// Ended incidents remembered, so a late or replayed growth of one does not
/// open it again.
const ENDED_KEPT: usize = 100_000;

/// Which incident messages say something new: a growth larger than the
/// last one seen, an end not seen before. A replay after a takeover may
/// repeat an incident's growth at other sizes, and growth and end come by
/// one subject per partition, in order, but a replay's copies may come
/// after the end.
#[derive(Debug, Default)]
pub struct Latest {
    size: HashMap<u64, usize>,
    ended: HashSet<u64>,
    ended_order: VecDeque<u64>,
}

impl Latest {
    pub fn admit(&mut self, n: &News) -> bool {
        let id = n.incident.id;
        if self.ended.contains(&id) {
            return false;
        }
        if n.ended {
            self.size.remove(&id);
            self.ended.insert(id);
            self.ended_order.push_back(id);
            if self.ended_order.len() > ENDED_KEPT {
                if let Some(old) = self.ended_order.pop_front() {
                    self.ended.remove(&old);
                }
            }
            return true;
        }
        let size = n.incident.members.len();
        match self.size.get(&id) {
            Some(&had) if had >= size => false,
            _ => {
                self.size.insert(id, size);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowhound_detect::{Severity, Verdict};
    use flowhound_explain::{Actor, Finding, Incident, IncidentParams, Incidents};
    use flowhound_flow::{FlowRecord, Timestamp};

    /// A port scan's incident with `n` flows (numbered 10, 11, …).
    fn scan(n: u64) -> Incident {
        let mut inc = Incidents::new(IncidentParams { gap_secs: 60, period_secs: 0, samples: 2, ..Default::default() });
        let f = Finding {
            class: "port_scan".into(),
            variant: None,
            technique: None,
            actor: "10.0.3.7".parse().ok(),
            actor_role: Actor::Src,
            reason: String::new(),
            explanation: Vec::new(),
            answer: false,
            peer: None,
        };
        let v = Verdict {
            score: 0.9,
            votes: 3,
            severity: Severity::Medium,
            confidence: 0.75,
            models: Vec::new(),
            category: None,
        };
        for k in 0..n {
            let r = FlowRecord {
                start: Timestamp::from_secs(k as i64),
                src: "10.0.3.7".parse().ok(),
                dst: "10.0.1.9".parse().ok(),
                dst_port: Some(k as u16 + 1),
                ..Default::default()
            };
            inc.push(10 + k, &r, &v, &f, false);
        }
        let mut i = inc.finish().remove(0);
        i.id = 10;
        i
    }

    fn news(n: u64, ended: bool) -> News {
        News { incident: scan(n), ended }
    }

    #[test]
    fn an_incident_is_taken_at_its_largest_and_not_opened_again_after_its_end() {
        let mut l = Latest::default();
        assert!(l.admit(&news(3, false)));
        assert!(l.admit(&news(5, false)), "it grew");
        assert!(!l.admit(&news(4, false)), "a replay's smaller state");
        assert!(!l.admit(&news(5, false)), "the same state again");
        assert!(l.admit(&news(6, true)), "its end");
        assert!(!l.admit(&news(6, true)), "a replayed end");
        assert!(!l.admit(&news(7, false)), "growth after its end");
    }

    fn counted(part: u32, flows: u64) -> Counted {
        let counts = Counts { flows, by_severity: [flows - 1, 1, 0, 0], ..Default::default() };
        Counted { part, counts }
    }

    #[test]
    fn totals_keep_each_partitions_largest_and_add_them_up() {
        let mut t = Totals::default();
        assert!(t.update(counted(0, 10)));
        assert!(t.update(counted(1, 5)));
        // A replay's smaller counts (restored from an older checkpoint) change nothing.
        assert!(!t.update(counted(0, 7)));
        assert!(t.update(counted(0, 12)));
        let total = t.total();
        assert_eq!((total.flows, total.by_severity), (17, [15, 2, 0, 0]));
    }
}
