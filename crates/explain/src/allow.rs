//! The allowlist: flows an analyst has decided are fine. They are still
//! scored and counted, but reported as suppressed (never silently dropped).
//!
//! ```toml
//! [[allow]]
//! cidr = "10.0.9.0/24"          # either side in this network
//! reason = "vulnerability scanner"
//! expires = "2027-03-01"        # ignored (with a warning) from that day, UTC
//!
//! [[allow]]
//! src = "10.0.1.5"              # all given fields must match
//! dst = "10.0.2.0/24"
//! ports = [5432]                # destination port
//! protocol = "tcp"              # name or number
//!
//! [[allow]]
//! aws_service = "S3"            # VPC pkt-src/pkt-dst-aws-service
//! ```

use std::net::IpAddr;

use flowhound_flow::vpc::VpcField;
use flowhound_flow::FlowRecord;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ExplainError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    allow: Vec<Spec>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Proto {
    Number(i64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    cidr: Option<String>,
    src: Option<String>,
    dst: Option<String>,
    port: Option<i64>,
    ports: Option<Vec<i64>>,
    protocol: Option<Proto>,
    aws_service: Option<String>,
    reason: Option<String>,
    expires: Option<String>,
}

/// Seconds since the epoch now: the `now` of [`Allowlist::parse`] (a clock
/// before 1970 reads as 0, which only keeps entries from expiring).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// One checked entry (serialized: a worker group tells the dashboard which
/// entry suppressed a flow).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub cidr: Option<IpNet>,
    pub src: Option<IpNet>,
    pub dst: Option<IpNet>,
    pub ports: Vec<u16>,
    pub protocol: Option<u8>,
    pub aws_service: Option<String>,
    pub reason: String,
    /// Seconds since the epoch from which the entry no longer applies.
    pub expires: Option<i64>,
}

impl Entry {
    pub fn matches(&self, r: &FlowRecord) -> bool {
        let within = |net: &Option<IpNet>, a: Option<IpAddr>| net.is_none_or(|n| a.is_some_and(|a| n.contains(&a)));
        let cidr = self.cidr.is_none_or(|n| [r.src, r.dst].into_iter().flatten().any(|a| n.contains(&a)));
        let ports = self.ports.is_empty() || r.dst_port.is_some_and(|p| self.ports.contains(&p));
        let proto = self.protocol.is_none_or(|p| r.protocol == Some(p));
        let service = self.aws_service.as_deref().is_none_or(|s| {
            r.cloud.as_ref().is_some_and(|c| {
                [VpcField::PktSrcAwsService, VpcField::PktDstAwsService]
                    .into_iter()
                    .any(|f| c.get_other(f).is_some_and(|v| v.eq_ignore_ascii_case(s)))
            })
        });
        cidr && within(&self.src, r.src) && within(&self.dst, r.dst) && ports && proto && service
    }
}

/// The checked allowlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<Entry>,
    /// Entries past their expiry at load time, described, for a warning.
    expired: Vec<String>,
}

fn net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn protocol(p: &Proto) -> Option<u8> {
    match p {
        Proto::Number(n) => u8::try_from(*n).ok(),
        Proto::Name(s) => flowhound_flow::record::protocol_number(s.trim()).or_else(|| s.trim().parse().ok()),
    }
}

/// `2027-03-01` (midnight UTC) or an RFC 3339 time, as epoch seconds.
fn expiry(s: &str) -> Option<i64> {
    flowhound_flow::time::parse_datetime(s.as_bytes()).map(|t| t.secs())
}

impl Allowlist {
    /// Parses a TOML allowlist; entries expired at `now` (epoch seconds) are
    /// kept out and listed by [`Allowlist::expired`]. Every problem is listed.
    pub fn parse(text: &str, now: i64) -> Result<Self, ExplainError> {
        let file: File = toml::from_str(text).map_err(|e| ExplainError::Allowlist(vec![e.to_string()]))?;
        let mut problems = Vec::new();
        let mut list = Allowlist::default();
        for (k, s) in file.allow.into_iter().enumerate() {
            let empty = s.cidr.is_none()
                && s.src.is_none()
                && s.dst.is_none()
                && s.port.is_none()
                && s.ports.as_ref().is_none_or(Vec::is_empty)
                && s.protocol.is_none()
                && s.aws_service.is_none();
            let mut bad = |p: String| problems.push(format!("entry {}: {p}", k + 1));
            let mut addr = |field: &str, v: &Option<String>| {
                v.as_deref().and_then(|t| {
                    let n = net(t.trim());
                    if n.is_none() {
                        bad(format!("{field} {t:?} is not an address or CIDR"));
                    }
                    n
                })
            };
            let (cidr, src, dst) = (addr("cidr", &s.cidr), addr("src", &s.src), addr("dst", &s.dst));
            let mut ports = Vec::new();
            for p in s.port.iter().chain(s.ports.iter().flatten()) {
                match u16::try_from(*p) {
                    Ok(p) => ports.push(p),
                    Err(_) => bad(format!("port {p} is not in 0..=65535")),
                }
            }
            let proto = s.protocol.as_ref().map(|p| (protocol(p), p));
            if let Some((None, p)) = &proto {
                bad(format!("protocol {p:?} is not a protocol name or number 0..=255"));
            }
            let expires = s.expires.as_deref().map(|e| (expiry(e), e));
            if let Some((None, e)) = &expires {
                bad(format!("expires {e:?} is not a date (2027-03-01) or an RFC 3339 time"));
            }
            let entry = Entry {
                cidr,
                src,
                dst,
                ports,
                protocol: proto.and_then(|p| p.0),
                aws_service: s.aws_service,
                reason: s.reason.unwrap_or_else(|| "allowlisted".into()),
                expires: expires.and_then(|e| e.0),
            };
            if empty {
                problems.push(format!(
                    "entry {}: matches every flow; give cidr, src, dst, ports, protocol or aws_service",
                    k + 1
                ));
                continue;
            }
            match entry.expires {
                Some(t) if t <= now => list.expired.push(format!("entry {} ({})", k + 1, entry.reason)),
                _ => list.entries.push(entry),
            }
        }
        if problems.is_empty() {
            Ok(list)
        } else {
            Err(ExplainError::Allowlist(problems))
        }
    }

    /// The first entry that matches `r`.
    pub fn check(&self, r: &FlowRecord) -> Option<&Entry> {
        self.entries.iter().find(|e| e.matches(r))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn expired(&self) -> &[String] {
        &self.expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowhound_flow::record::CloudContext;

    fn flow(src: &str, dst: &str, port: u16, proto: u8) -> FlowRecord {
        FlowRecord {
            src: src.parse().ok(),
            dst: dst.parse().ok(),
            dst_port: Some(port),
            protocol: Some(proto),
            ..Default::default()
        }
    }

    const NOW: i64 = 1_795_000_000; // 2026-11-18

    #[test]
    fn entries_match_on_every_given_field() {
        let t = r#"
            [[allow]]
            cidr = "10.0.9.0/24"
            reason = "scanner"
            [[allow]]
            src = "10.0.1.5"
            dst = "10.0.2.0/24"
            ports = [5432]
            protocol = "tcp"
            reason = "replication"
            [[allow]]
            aws_service = "S3"
        "#;
        let a = Allowlist::parse(t, NOW).expect("valid");
        assert_eq!(a.len(), 3);
        assert_eq!(a.check(&flow("10.0.9.4", "8.8.8.8", 53, 17)).map(|e| e.reason.as_str()), Some("scanner"));
        assert_eq!(a.check(&flow("1.2.3.4", "10.0.9.250", 22, 6)).map(|e| e.reason.as_str()), Some("scanner"));
        assert_eq!(a.check(&flow("10.0.1.5", "10.0.2.7", 5432, 6)).map(|e| e.reason.as_str()), Some("replication"));
        // One field off and it does not apply.
        assert_eq!(a.check(&flow("10.0.1.5", "10.0.2.7", 5432, 17)), None);
        assert_eq!(a.check(&flow("10.0.1.5", "10.0.3.7", 5432, 6)), None);
        assert_eq!(a.check(&flow("10.0.1.6", "10.0.2.7", 5432, 6)), None);
        let mut s3 = flow("10.0.1.6", "52.216.1.1", 443, 6);
        let mut c = CloudContext::default();
        c.other.push((VpcField::PktDstAwsService, "S3".into()));
        s3.cloud = Some(std::sync::Arc::new(c));
        assert_eq!(a.check(&s3).map(|e| e.reason.as_str()), Some("allowlisted"));
    }

    #[test]
    fn expired_entries_are_listed_not_applied() {
        let t = r#"
            [[allow]]
            cidr = "10.0.9.0/24"
            reason = "old scanner"
            expires = "2026-01-01"
            [[allow]]
            cidr = "10.0.8.0/24"
            expires = "2027-01-01T00:00:00Z"
        "#;
        let a = Allowlist::parse(t, NOW).expect("valid");
        assert_eq!(a.expired(), ["entry 1 (old scanner)"]);
        assert_eq!(a.check(&flow("10.0.9.4", "8.8.8.8", 53, 17)), None);
        assert!(a.check(&flow("10.0.8.4", "8.8.8.8", 53, 17)).is_some());
    }

    #[test]
    fn every_problem_is_listed() {
        let t = r#"
            [[allow]]
            cidr = "10.0.0.0/33"
            ports = [70000]
            protocol = "carrier-pigeon"
            expires = "soon"
            [[allow]]
            reason = "everything"
        "#;
        let Err(ExplainError::Allowlist(p)) = Allowlist::parse(t, NOW) else { panic!("must fail") };
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(p[4].contains("matches every flow"));
        assert!(Allowlist::parse("[[allow]]\nsubnet = \"10.0.0.0/8\"", NOW).is_err());
    }
}
