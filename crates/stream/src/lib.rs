//! Flow records through NATS JetStream (issue 28; the design is
//! docs/scale-out.md). Built so far: `publish` — records parsed once and
//! stored in a stream, one message per record on the subject of its source's
//! partition (`STREAM.rec.<p>`), each with a stable id (input + position)
//! that JetStream de-duplicates, so publishing the same input again stores
//! nothing twice. The workers that consume it are not built yet.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use bytes::Bytes;
use flowhound_flow::json::{JsonDialect, JsonReader};
use flowhound_flow::{FlowReader, FlowRecord};
use flowhound_source::{Input, ScanEvents, ScanOptions, ScanReport};

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

    /// The subject of partition `p`.
    pub fn subject(&self, p: u32) -> String {
        format!("{}.rec.{p}", self.stream)
    }
}

/// The partition of a flow: FNV-1a of its source address (every flow of one
/// source in one partition, where its source-side windows live); flows
/// without a source go to partition 0. A hash that must not change between
/// releases: published streams are partitioned by it.
pub fn partition(src: Option<IpAddr>, partitions: u32) -> u32 {
    let Some(a) = src else { return 0 };
    let bytes = match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    (h % u64::from(partitions.max(1))) as u32
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
}

impl PublishParams {
    pub fn new(target: Target) -> Self {
        PublishParams { target, partitions: 16, duplicate_window: Duration::from_secs(24 * 3600), in_flight: 4096 }
    }
}

/// What a publish did.
#[derive(Debug, Default)]
pub struct Published {
    /// Records read and published.
    pub records: u64,
    /// Of them, already in the stream (same id): not stored again.
    pub duplicates: u64,
    /// Records per partition.
    pub per_partition: Vec<u64>,
    /// The scan's report, every input's.
    pub scan: ScanReport,
}

/// The stream's description, which records its partition count.
fn describe(partitions: u32) -> String {
    format!("flowhound records, partitions={partitions}")
}

/// The partition count a stream's description records.
pub fn partitions_of(description: &str) -> Option<u32> {
    description.strip_prefix("flowhound records, partitions=")?.parse().ok()
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
    let js = rt.block_on(async {
        let client = async_nats::connect(&p.target.server).await.map_err(nats)?;
        let js = jetstream::new(client);
        let config = stream::Config {
            name: p.target.stream.clone(),
            subjects: vec![format!("{}.rec.*", p.target.stream)],
            duplicate_window: p.duplicate_window,
            storage: stream::StorageType::File,
            description: Some(describe(p.partitions)),
            ..Default::default()
        };
        let mut s = js.get_or_create_stream(config).await.map_err(nats)?;
        // Workers read the partition count the stream was made with: records
        // of one source must not land in two partitions.
        let made = s.info().await.map_err(nats)?.config.description.as_deref().and_then(partitions_of);
        match made {
            Some(n) if n != p.partitions => {
                return Err(StreamError::Settings(format!(
                    "stream {} was made with {n} partitions, not {}: give --partitions {n}",
                    p.target.stream, p.partitions
                )))
            }
            Some(_) => {}
            None => {
                return Err(StreamError::Settings(format!(
                    "stream {} exists and is not a flowhound record stream",
                    p.target.stream
                )))
            }
        }
        Ok::<_, StreamError>(js)
    })?;
    let mut out = Published { per_partition: vec![0; p.partitions as usize], ..Default::default() };
    let mut pending: VecDeque<PublishAckFuture> = VecDeque::new();
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
                    let part = partition(r.src, p.partitions);
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert(NATS_MESSAGE_ID, record_id(&name, position).as_str());
                    position += 1;
                    let ack =
                        js.publish_with_headers(p.target.subject(part), headers, encode(r)).await.map_err(nats)?;
                    pending.push_back(ack);
                    out.records += 1;
                    out.per_partition[part as usize] += 1;
                    while pending.len() >= p.in_flight.max(1) {
                        if let Some(a) = pending.pop_front() {
                            out.duplicates += u64::from(a.await.map_err(nats)?.duplicate);
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
        while let Some(a) = pending.pop_front() {
            out.duplicates += u64::from(a.await.map_err(nats)?.duplicate);
        }
        Ok::<_, StreamError>(())
    })?;
    Ok(out)
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
