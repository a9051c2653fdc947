//! What `inspect` reports: an aggregate over records that merges, so chunks can
//! be summarized in parallel and combined.

use std::collections::BTreeMap;
use std::net::IpAddr;

use compact_str::CompactString;
use rustc_hash::FxHashMap;

use crate::net::Networks;
use crate::record::{Action, FlowRecord, Timestamp};

/// Per-address totals for the top-talker tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Talker {
    pub bytes: u64,
    pub flows: u64,
}

/// Counts of flows by which side is internal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Locality {
    pub internal_to_internal: u64,
    pub internal_to_external: u64,
    pub external_to_internal: u64,
    pub external_to_external: u64,
    /// A side's address is absent (UNSW-NB15, some custom VPC layouts).
    pub unknown: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub records: u64,
    pub bytes: u64,
    pub packets: u64,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    /// By IANA number; index 256 is "not given". Flat arrays rather than maps:
    /// counted for every record, and hashing measured ~10% of `add`.
    pub protocols: Box<[u64; 257]>,
    /// By source address.
    pub talkers: FxHashMap<IpAddr, Talker>,
    /// By destination port.
    pub dst_ports: Box<[u64; 65536]>,
    pub accepted: u64,
    pub rejected_by_policy: u64,
    pub locality: Locality,
    pub benign: u64,
    pub malicious: u64,
    pub categories: BTreeMap<CompactString, u64>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            records: 0,
            bytes: 0,
            packets: 0,
            first_seen: None,
            last_seen: None,
            protocols: Box::new([0; 257]),
            talkers: FxHashMap::default(),
            dst_ports: vec![0u64; 65536].into_boxed_slice().try_into().unwrap_or_else(|_| Box::new([0; 65536])),
            accepted: 0,
            rejected_by_policy: 0,
            locality: Locality::default(),
            benign: 0,
            malicious: 0,
            categories: BTreeMap::new(),
        }
    }
}

impl Summary {
    pub fn add(&mut self, r: &FlowRecord, nets: &Networks) {
        self.records += 1;
        self.bytes = self.bytes.saturating_add(r.bytes.total.unwrap_or(0));
        self.packets = self.packets.saturating_add(r.packets.total.unwrap_or(0));
        if let Some(s) = r.start {
            self.first_seen = Some(self.first_seen.map_or(s, |f| f.min(s)));
        }
        if let Some(e) = r.end.or(r.start) {
            self.last_seen = Some(self.last_seen.map_or(e, |l| l.max(e)));
        }
        self.protocols[r.protocol.map_or(256, usize::from)] += 1;
        if let Some(src) = r.src {
            let t = self.talkers.entry(src).or_default();
            t.bytes = t.bytes.saturating_add(r.bytes.total.unwrap_or(0));
            t.flows += 1;
        }
        if let Some(p) = r.dst_port {
            self.dst_ports[usize::from(p)] += 1;
        }
        match r.action {
            Some(Action::Accept) => self.accepted += 1,
            Some(Action::Reject) => self.rejected_by_policy += 1,
            None => {}
        }
        let l = &mut self.locality;
        match (r.src.map(|a| nets.is_internal(a)), r.dst.map(|a| nets.is_internal(a))) {
            (Some(true), Some(true)) => l.internal_to_internal += 1,
            (Some(true), Some(false)) => l.internal_to_external += 1,
            (Some(false), Some(true)) => l.external_to_internal += 1,
            (Some(false), Some(false)) => l.external_to_external += 1,
            _ => l.unknown += 1,
        }
        if let Some(t) = &r.truth {
            if t.malicious {
                self.malicious += 1;
            } else {
                self.benign += 1;
            }
            if let Some(c) = &t.category {
                *self.categories.entry(c.clone()).or_default() += 1;
            }
        }
    }

    pub fn merge(&mut self, o: Summary) {
        self.records += o.records;
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.packets = self.packets.saturating_add(o.packets);
        self.first_seen = match (self.first_seen, o.first_seen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_seen = match (self.last_seen, o.last_seen) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (a, b) in self.protocols.iter_mut().zip(o.protocols.iter()) {
            *a += b;
        }
        // Merge the smaller map into the larger one.
        let mut other = o.talkers;
        if other.len() > self.talkers.len() {
            std::mem::swap(&mut other, &mut self.talkers);
        }
        for (k, v) in other {
            let t = self.talkers.entry(k).or_default();
            t.bytes = t.bytes.saturating_add(v.bytes);
            t.flows += v.flows;
        }
        for (a, b) in self.dst_ports.iter_mut().zip(o.dst_ports.iter()) {
            *a += b;
        }
        self.accepted += o.accepted;
        self.rejected_by_policy += o.rejected_by_policy;
        let (a, b) = (&mut self.locality, o.locality);
        a.internal_to_internal += b.internal_to_internal;
        a.internal_to_external += b.internal_to_external;
        a.external_to_internal += b.external_to_internal;
        a.external_to_external += b.external_to_external;
        a.unknown += b.unknown;
        self.benign += o.benign;
        self.malicious += o.malicious;
        for (k, v) in o.categories {
            *self.categories.entry(k).or_default() += v;
        }
    }

    /// Top `n` sources by bytes, ties broken by address for stable output.
    pub fn top_talkers_by_bytes(&self, n: usize) -> Vec<(IpAddr, Talker)> {
        top(self.talkers.iter().map(|(a, t)| (*a, *t)), n, |t| (t.bytes, t.flows))
    }

    pub fn top_talkers_by_flows(&self, n: usize) -> Vec<(IpAddr, Talker)> {
        top(self.talkers.iter().map(|(a, t)| (*a, *t)), n, |t| (t.flows, t.bytes))
    }

    pub fn top_dst_ports(&self, n: usize) -> Vec<(u16, u64)> {
        let used = self.dst_ports.iter().enumerate().filter(|(_, c)| **c > 0);
        top(used.map(|(p, c)| (p as u16, *c)), n, |c| (*c, 0))
    }

    /// Protocols by count, descending; `None` is "not given".
    pub fn protocols_sorted(&self) -> Vec<(Option<u8>, u64)> {
        let used = self.protocols.iter().enumerate().filter(|(_, c)| **c > 0);
        top(used.map(|(p, c)| (u8::try_from(p).ok(), *c)), usize::MAX, |c| (*c, 0))
    }
}

fn top<K: Ord + Copy, V: Copy>(
    it: impl Iterator<Item = (K, V)>,
    n: usize,
    key: impl Fn(&V) -> (u64, u64),
) -> Vec<(K, V)> {
    let mut v: Vec<(K, V)> = it.collect();
    v.sort_unstable_by(|a, b| key(&b.1).cmp(&key(&a.1)).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}
