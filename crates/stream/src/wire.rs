//! What the stages of a worker group hand each other, and what a partition
//! saves: CBOR (exact floats, NaN included, and small), each message with the
//! flow number it is about.

use flowhound_detect::Verdict;
use flowhound_engine::Counts;
use flowhound_explain::allow::Entry;
use flowhound_explain::{Finding, Incident, Incidents, Memory};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::StreamError;

/// The columns of one flow's row that one partition owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Half {
    pub n: u64,
    /// Which parts: [`SRC`] (the flow's own columns, the source's windows
    /// and its half of `external_unseen`), [`DST`], or both when one
    /// partition owns both addresses.
    pub parts: u8,
    /// The row as the sending partition computed it: only its parts'
    /// columns are the flow's.
    pub row: Vec<f32>,
    /// `external_unseen` in its two parts ([`Extractor::last_unseen_parts`](flowhound_features::Extractor::last_unseen_parts)).
    pub unseen: [bool; 2],
    /// The record, as `publish` stored it (a JSON line).
    pub record: String,
}

/// The source's part of a row.
pub const SRC: u8 = 1;
/// The destination's part.
pub const DST: u8 = 2;
/// Both: a row complete as it is.
pub const BOTH: u8 = SRC | DST;

/// A flagged flow (at `--min-severity`), on its actor's partition: what an
/// incident needs, and what the dashboard lists and learns from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Found {
    pub n: u64,
    pub record: String,
    pub verdict: Verdict,
    pub finding: Finding,
    /// The allowlist entry covering it.
    pub entry: Option<Entry>,
    /// It grows an incident (not hidden by the allowlist).
    pub grows: bool,
    /// The feature row it was scored on (feedback retrains on it).
    pub raw: Vec<f32>,
}

/// What one partition's scoring stage has counted so far (cumulative: the
/// largest is the latest, a replay after a takeover counts up to the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    pub part: u32,
    pub counts: Counts,
}

/// An incident that grew, or ended, on its actor's partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct News {
    pub incident: Incident,
    pub ended: bool,
}

/// A partition's state after the stream positions it covers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`CHECKPOINT_VERSION`].
    pub version: u32,
    /// Last stream sequence applied: records, halves, findings.
    pub seq: [u64; 3],
    /// The windows (the extractor's checkpoint).
    pub windows: Vec<u8>,
    /// Halves waiting for their other half.
    pub pending: Vec<Half>,
    /// What the explainer of this partition's pairs remembers.
    pub memory: Memory,
    /// Open incidents of this partition's actors, and the watermark.
    pub incidents: Incidents,
    pub watermark: i64,
    /// What the scoring stage counted.
    pub counts: Counts,
}

pub const CHECKPOINT_VERSION: u32 = 3;

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = Vec::with_capacity(512);
    // Writing into a Vec only fails for a type serde cannot write, which
    // these are not.
    let _ = ciborium::into_writer(v, &mut b);
    b
}

pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, StreamError> {
    ciborium::from_reader(b).map_err(|e| StreamError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_keep_every_float_bit_and_bad_bytes_are_an_error() {
        let h = Half {
            n: 7,
            parts: SRC,
            row: vec![f32::NAN, -0.0, 1e-40, f32::INFINITY, 3.25],
            unseen: [true, false],
            record: "{\"src\":\"10.0.0.1\"}".into(),
        };
        let back: Half = decode(&encode(&h)).unwrap_or_else(|e| panic!("{e}"));
        let bits = |r: &[f32]| r.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.row), bits(&h.row));
        assert_eq!((back.n, back.parts, back.unseen, back.record), (7, SRC, [true, false], h.record.clone()));
        assert!(decode::<Half>(b"\xff\x00garbage").is_err());
        assert!(decode::<Half>(&encode(&h)[..10]).is_err(), "a truncated message is an error");
    }
}
