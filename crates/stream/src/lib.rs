//! A worker group on NATS JetStream (issue 28; the design is
//! docs/scale-out.md).
//!
//! * [`publish`]: records parsed once and stored in a stream, each on the
//!   subject of every partition that owns one of its addresses
//!   (`STREAM.rec.<p>`: its source's, and its destination's when that is
//!   another), with a stable id (input + position) that JetStream
//!   de-duplicates, so publishing the same input again stores nothing twice.
//! * [`worker`]: a member of a group that claims partitions with leases,
//!   computes each address's windows where that address lives, joins the two
//!   halves of a row where its (source, destination) pair lives, scores and
//!   explains there, and grows incidents where their actor lives.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use bytes::Bytes;
use flowhound_flow::json::{JsonDialect, JsonReader};
use flowhound_flow::{FlowReader, FlowRecord};
use flowhound_source::{Input, ScanEvents, ScanOptions, ScanReport};

pub mod view;
pub mod wire;
pub mod worker;

/// The header carrying a record's flow number (unique in the stream).
pub const FLOW_HEADER: &str = "Flowhound-Flow";

/// Why publishing stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A `--to` that is not `nats://HOST:PORT[/STREAM]`, or bad settings.
    #[error("{0}")]
    Settings(String),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("a stored record does not read back: {0}")]
    Decode(String),
    #[error(transparent)]
    Run(#[from] flowhound_engine::RunError),
}

fn nats(e: impl std::fmt::Display) -> StreamError {
    StreamError::Nats(e.to_string())
}

/// Where records go: a server and a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `HOST:PORT` of a NATS server.
    pub server: String,
    /// The JetStream stream (default `FLOWS`).
    pub stream: String,
}

impl Target {
    /// `nats://HOST:PORT[/STREAM]`.
    pub fn parse(url: &str) -> Result<Target, StreamError> {
        let bad = || StreamError::Settings(format!("{url:?}: expected nats://HOST:PORT[/STREAM]"));
        let rest = url.strip_prefix("nats://").ok_or_else(bad)?;
        let (server, stream) = rest.split_once('/').unwrap_or((rest, "FLOWS"));
        let stream = if stream.is_empty() { "FLOWS" } else { stream };
        // JetStream names: no spaces, dots, wildcards or path separators.
        let name_ok = stream.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if server.is_empty() || !server.contains(':') || !name_ok {
            return Err(bad());
        }
        Ok(Target { server: server.to_string(), stream: stream.to_string() })
    }

    /// The subject of partition `p`'s records.
    pub fn subject(&self, p: u32) -> String {
        self.of(Subject::Records, p)
    }

    /// The subject of partition `p` of one kind of message.
    pub fn of(&self, kind: Subject, p: u32) -> String {
        format!("{}.{}.{p}", self.stream, kind.token())
    }
}

/// The kinds of message in a group's stream, one subject per partition each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Records, on the partition of each of their addresses.
    Records,
    /// A row's half, on the partition of its (source, destination) pair.
    Halves,
    /// A flagged flow's finding, on the partition of its actor.
    Findings,
    /// Scored flows as `detect` writes them (flagged ones; every one with
    /// `--all`), on the pair's partition: the group's output.
    Scored,
    /// Incidents as they open and end (`watch --incidents`' lines), on the
    /// actor's partition.
    Incidents,
    /// What each partition's scoring stage has counted (the dashboard's
    /// summary), on that partition.
    Counts,
    /// Incidents as they grow and end, whole (members and all: the
    /// dashboard's incidents), on the actor's partition.
    News,
}

impl Subject {
    pub fn token(self) -> &'static str {
        match self {
            Subject::Records => "rec",
            Subject::Halves => "half",
            Subject::Findings => "found",
            Subject::Scored => "out",
            Subject::Incidents => "inc",
            Subject::Counts => "count",
            Subject::News => "news",
        }
    }
}

/// The partition of an address: FNV-1a of its bytes (all of one address's
/// windows in one partition); no address: partition 0. A hash that must not
/// change between releases: published streams are partitioned by it.
pub fn partition(a: Option<IpAddr>, partitions: u32) -> u32 {
    let Some(a) = a else { return 0 };
    (fnv(FNV_START, &octets(a)) % u64::from(partitions.max(1))) as u32
}

/// The partition of a (source, destination) pair, the same for both
/// directions: where a flow's row is joined, scored and explained (an answer
/// takes its class from the flagged request it answers, so both directions
/// must be explained in one place, in input order).
pub fn pair_partition(src: Option<IpAddr>, dst: Option<IpAddr>, partitions: u32) -> u32 {
    let (a, b) = if src <= dst { (src, dst) } else { (dst, src) };
    let h = [a, b].iter().fold(FNV_START, |h, x| match x {
        Some(x) => fnv(h, &octets(*x)),
        None => fnv(h, &[0xff]),
    });
    (h % u64::from(partitions.max(1))) as u32
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A record as stored: flowhound's JSON line (it round-trips every field).
pub fn encode(r: &FlowRecord) -> Bytes {
    let mut b = Vec::with_capacity(256);
    flowhound_flow::write::write_json(r, &mut b);
    Bytes::from(b)
}

/// A stored record read back.
pub fn decode(payload: &[u8]) -> Result<FlowRecord, StreamError> {
    let mut out = Vec::with_capacity(1);
    let line = payload.strip_suffix(b"\n").unwrap_or(payload);
    JsonReader::new(JsonDialect::Flowhound)
        .read_line(line, &mut out)
        .map_err(|e| StreamError::Decode(e.to_string()))?;
    out.pop().ok_or_else(|| StreamError::Decode("no record in the message".into()))
}

/// How records are published.
#[derive(Debug, Clone)]
pub struct PublishParams {
    pub target: Target,
    /// Partitions of the stream (fixed when it is made).
    pub partitions: u32,
    /// How long JetStream remembers message ids: a re-publish within it
    /// stores nothing twice.
    pub duplicate_window: Duration,
    /// Publish acknowledgements awaited at once.
    pub in_flight: usize,
    /// Copies a cluster keeps of a new stream (JetStream replicas).
    pub replicas: usize,
}

impl PublishParams {
    pub fn new(target: Target) -> Self {
        PublishParams {
            target,
            partitions: 16,
            duplicate_window: Duration::from_secs(24 * 3600),
            in_flight: 4096,
            replicas: 1,
        }
    }
}

/// What a publish did.
#[derive(Debug, Default)]
pub struct Published {
    /// Records read and published.
    pub records: u64,
    /// Of them, already in the stream (same id): not stored again.
    pub duplicates: u64,
    /// Messages per partition (a record whose addresses live in two
    /// partitions counts in both).
    pub per_partition: Vec<u64>,
    /// The scan's report, every input's.
    pub scan: ScanReport,
}

/// The stream's description, which records its layout version and
/// partition count.
fn describe(partitions: u32) -> String {
    format!("{DESCRIPTION}{partitions}")
}

const DESCRIPTION: &str = "flowhound group stream 2, partitions=";

/// The partition count a stream's description records.
pub fn partitions_of(description: &str) -> Option<u32> {
    description.strip_prefix(DESCRIPTION)?.parse().ok()
}

/// The stream of a group: made when missing (file storage, every kind of
/// message under `STREAM.>`), its partition count checked against
/// `partitions` when given. Returns the stream's partition count.
pub async fn open_stream(
    js: &jetstream::Context,
    target: &Target,
    partitions: Option<u32>,
    duplicate_window: Duration,
    replicas: usize,
) -> Result<u32, StreamError> {
    let made = match js.get_stream(&target.stream).await {
        Ok(mut s) => s.info().await.map_err(nats)?.config.description.clone(),
        Err(_) => {
            let Some(n) = partitions else {
                return Err(StreamError::Settings(format!(
                    "stream {} does not exist: publish to it first",
                    target.stream
                )));
            };
            let config = stream::Config {
                name: target.stream.clone(),
                subjects: vec![format!("{}.>", target.stream)],
                duplicate_window,
                storage: stream::StorageType::File,
                description: Some(describe(n)),
                num_replicas: replicas.max(1),
                ..Default::default()
            };
            let mut s = js.get_or_create_stream(config).await.map_err(nats)?;
            s.info().await.map_err(nats)?.config.description.clone()
        }
    };
    // Records of one address must never land in two partitions.
    match (made.as_deref().and_then(partitions_of), partitions) {
        (Some(n), Some(p)) if n != p => Err(StreamError::Settings(format!(
            "stream {} was made with {n} partitions, not {p}: give --partitions {n}",
            target.stream
        ))),
        (Some(n), _) => Ok(n),
        (None, _) => Err(StreamError::Settings(format!(
            "stream {} exists and is not a flowhound group stream (made by another program or an older flowhound)",
            target.stream
        ))),
    }
}

/// The id of the record at `position` (0-based) of `input`.
pub fn record_id(input: &str, position: u64) -> String {
    format!("{input}#{position}")
}

/// Publishes every record of `inputs`, one input after the other (a
/// record's id is its input's name and its position there).
pub fn publish(
    p: &PublishParams,
    inputs: &[Input],
    opts: &ScanOptions,
    events: &mut dyn ScanEvents,
) -> Result<Published, StreamError> {
    if p.partitions == 0 || p.partitions > 4096 {
        return Err(StreamError::Settings(format!("--partitions {}: 1 to 4096", p.partitions)));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(nats)?;
    let (js, base) = rt.block_on(async {
        let client = async_nats::connect(&p.target.server).await.map_err(nats)?;
        let js = jetstream::new(client);
        open_stream(&js, &p.target, Some(p.partitions), p.duplicate_window, p.replicas).await?;
        // Flow numbers go on from the stream's last sequence: unique in the
        // stream, and in a fresh stream the input positions `detect` gives.
        let last = js.get_stream(&p.target.stream).await.map_err(nats)?.info().await.map_err(nats)?.state.last_sequence;
        Ok::<_, StreamError>((js, last))
    })?;
    let mut number = base;
    let mut out = Published { per_partition: vec![0; p.partitions as usize], ..Default::default() };
    let mut pending: VecDeque<(bool, PublishAckFuture)> = VecDeque::new();
    let mut error: Option<StreamError> = None;
    for input in inputs {
        let name = input.name();
        let mut position = 0u64;
        let report = flowhound_source::scan_records(std::slice::from_ref(input), opts, events, |recs| {
            if error.is_some() {
                return;
            }
            let r = rt.block_on(async {
                for r in &recs {
                    let (ps, pd) = (partition(r.src, p.partitions), partition(r.dst, p.partitions));
                    let id = record_id(&name, position);
                    let body = encode(r);
                    // The source's partition, then the destination's when it
                    // is another: each address's windows see its flows in
                    // input order.
                    for (k, part) in [ps, pd].into_iter().enumerate() {
                        if k == 1 && part == ps {
                            break;
                        }
                        let mut headers = async_nats::HeaderMap::new();
                        let msg_id = if k == 0 { id.clone() } else { format!("{id}>dst") };
                        headers.insert(NATS_MESSAGE_ID, msg_id.as_str());
                        headers.insert(FLOW_HEADER, number.to_string().as_str());
                        let ack = js
                            .publish_with_headers(p.target.subject(part), headers, body.clone())
                            .await
                            .map_err(nats)?;
                        pending.push_back((k == 0, ack));
                        out.per_partition[part as usize] += 1;
                    }
                    position += 1;
                    number += 1;
                    out.records += 1;
                    while pending.len() >= p.in_flight.max(1) {
                        if let Some((first, a)) = pending.pop_front() {
                            let dup = a.await.map_err(nats)?.duplicate;
                            out.duplicates += u64::from(first && dup);
                        }
                    }
                }
                Ok::<_, StreamError>(())
            });
            if let Err(e) = r {
                error = Some(e);
            }
        });
        out.scan.merge(report);
        if let Some(e) = error.take() {
            return Err(e);
        }
    }
    rt.block_on(async {
        while let Some((first, a)) = pending.pop_front() {
            let dup = a.await.map_err(nats)?.duplicate;
            out.duplicates += u64::from(first && dup);
        }
        Ok::<_, StreamError>(())
    })?;
    Ok(out)
}

/// Hands the messages of `filter` after stream sequence `after` (0: from
/// the start) to `tx`, each made by `make` from the message, its stream
/// sequence and how many are pending, until the receiver is gone. An
/// ordered consumer that fails (a server lost, a leader moved) is made
/// again after the last message handed over.
pub(crate) async fn consume<T>(
    stream: jetstream::stream::Stream,
    filter: String,
    after: u64,
    tx: tokio::sync::mpsc::Sender<T>,
    make: impl Fn(&jetstream::Message, u64, u64) -> T,
) {
    use futures_util::StreamExt;
    use jetstream::consumer::{pull, DeliverPolicy};
    let mut last = after;
    loop {
        let deliver_policy =
            if last == 0 { DeliverPolicy::All } else { DeliverPolicy::ByStartSequence { start_sequence: last + 1 } };
        let config = pull::OrderedConfig { filter_subject: filter.clone(), deliver_policy, ..Default::default() };
        if let Ok(consumer) = stream.create_consumer(config).await {
            if let Ok(mut messages) = consumer.messages().await {
                while let Some(Ok(m)) = messages.next().await {
                    let Ok((seq, pending)) = m.info().map(|i| (i.stream_sequence, i.pending)) else { continue };
                    last = seq;
                    if tx.send(make(&m, seq, pending)).await.is_err() {
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_say_the_form() {
        let t = Target::parse("nats://127.0.0.1:4222/VPC_FLOWS").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.server.as_str(), t.stream.as_str()), ("127.0.0.1:4222", "VPC_FLOWS"));
        assert_eq!(t.subject(3), "VPC_FLOWS.rec.3");
        assert_eq!(Target::parse("nats://h:1").map(|t| t.stream).ok().as_deref(), Some("FLOWS"));
        for bad in ["h:4222", "nats://", "nats://host", "nats://h:1/a.b", "nats://h:1/a b"] {
            let e = Target::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("nats://HOST:PORT[/STREAM]"), "{e}");
        }
    }

    #[test]
    fn partitions_are_stable_and_keep_a_source_together() {
        let a: IpAddr = "10.0.0.7".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(partition(Some(a), 16), partition(Some(a), 16));
        assert_eq!(partition(None, 16), 0);
        // Fixed values: streams already published are partitioned by them.
        assert_eq!((partition(Some(a), 16), partition(Some(a), 1_000_003)), (6, 208_867));
        let spread: std::collections::BTreeSet<u32> =
            (0..200u32).map(|i| partition(Some(IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8])), 8)).collect();
        assert_eq!(spread.len(), 8, "200 sources spread over every partition");
    }

    #[test]
    fn records_round_trip_through_their_message() {
        let mut v = Vec::new();
        let p = flowhound_synth::GenParams { flows: 300, ..Default::default() };
        let _ = flowhound_synth::generate(&p, |b| {
            v.extend_from_slice(b);
            Ok::<(), ()>(())
        });
        assert!(v.len() >= 300);
        for r in &v {
            let back = decode(&encode(r)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&back, r);
        }
        assert!(decode(b"{\"src\": 5}").is_err());
    }
}
