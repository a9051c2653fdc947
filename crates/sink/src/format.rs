//! What each sink sends for an incident: flowhound's JSON, OCSF Detection
//! Finding (class 2004), ECS, a Slack message, an SNS message. Field mappings
//! are documented in docs/sinks.md; change both together.

use std::net::IpAddr;

use flowhound_detect::Severity;
use flowhound_explain::json::{explanation_json, incident_json, jnum, time};
use flowhound_explain::{Actor, Incident};
use flowhound_flow::record::protocol_name;
use serde_json::{json, Map, Value};
use sha2::Digest as _;

/// OCSF schema version the findings follow (the one Security Lake ingests).
pub const OCSF_VERSION: &str = "1.1.0";
/// ECS version the events follow.
pub const ECS_VERSION: &str = "8.11.0";
const PRODUCT: &str = "flowhound";

/// Where an alert came from, for the metadata of every format.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// The model folder's id or version.
    pub model: String,
    /// The inputs scored (a file name, an S3 URL).
    pub source: String,
}

/// One incident on its way to the sinks.
#[derive(Debug, Clone)]
pub struct Alert<'a> {
    /// Stable id of this alert: the same incident of the same run gives the
    /// same uid, so a receiver can drop at-least-once duplicates.
    pub uid: String,
    /// What deduplication compares: threat class and actor (and the peer,
    /// for classes whose incidents gather one: two beacons of one host to
    /// two controllers are two alerts).
    pub key: String,
    /// Borrowed: an incident lists every member flow, too much to copy per alert.
    pub incident: &'a Incident,
    /// Alerts of this key held back by deduplication since the last one sent,
    /// and their flows.
    pub repeats: u64,
    pub repeated_flows: u64,
}

impl<'a> Alert<'a> {
    pub fn new(incident: &'a Incident) -> Alert<'a> {
        let actor = incident.actor.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
        let mut key = format!("{}|{actor}", incident.class);
        if let Some((addr, port)) = incident.peer {
            let addr = addr.map(|a| a.to_string()).unwrap_or_else(|| "*".into());
            key += &format!("|{addr}:{}", port.map(|p| p.to_string()).unwrap_or_else(|| "*".into()));
        }
        let first = incident.first_seen.map(|t| t.to_string()).unwrap_or_default();
        // Class and actor alone do not tell incidents apart: one host can be
        // the actor of two at the same time and size in two roles, or with
        // two sets of peers. Role and peers go in, sorted (sets iterate in
        // any order).
        let mut peers: Vec<&IpAddr> = incident.targets.iter().collect();
        peers.sort_unstable();
        let mut text = format!("{key}|{:?}|{first}|{}", incident.actor_role, incident.flows);
        for p in peers {
            text.push('|');
            text.push_str(&p.to_string());
        }
        let digest = sha2::Sha256::digest(text.as_bytes());
        let uid = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Alert { uid, key, incident, repeats: 0, repeated_flows: 0 }
    }

    /// Event time of the alert (its last flow), µs; falls back to the first.
    pub fn time_us(&self) -> Option<i64> {
        self.incident.last_seen.or(self.incident.first_seen)
    }
}

/// `HIGH port_scan from 10.0.0.5: <reason>` — one line, for subjects and chat.
pub fn summary(a: &Alert<'_>) -> String {
    let i = &a.incident;
    let actor = i.actor.map(|x| x.to_string()).unwrap_or_else(|| "unknown host".into());
    let mut s = format!("{} {} by {}: {}", i.peak_severity.name().to_uppercase(), i.class, actor, i.reason);
    if a.repeats > 0 {
        s += &format!(" (and {} earlier alerts held back as duplicates)", a.repeats);
    }
    s
}

/// flowhound's own incident JSON (what `detect --incidents` writes) with the
/// alert's uid and dedup counters.
pub fn native(a: &Alert<'_>, meta: &Meta) -> Value {
    let mut v = incident_json(a.incident);
    if let Some(m) = v.as_object_mut() {
        m.insert("uid".into(), a.uid.clone().into());
        m.insert("repeats".into(), a.repeats.into());
        m.insert("repeated_flows".into(), a.repeated_flows.into());
        m.insert("model".into(), meta.model.clone().into());
        m.insert("source".into(), meta.source.clone().into());
    }
    v
}

/// MITRE ATT&CK technique → (technique name, tactic id, tactic name) for the
/// techniques the default rules name; other ids pass through without names.
fn attack(technique: &str) -> (Option<&'static str>, Option<(&'static str, &'static str)>) {
    let base = technique.split('.').next().unwrap_or(technique);
    let name = match technique {
        "T1498.001" => Some("Direct Network Flood"),
        "T1498.002" => Some("Reflection Amplification"),
        _ => None,
    };
    let (base_name, tactic) = match base {
        "T1046" => (Some("Network Service Discovery"), Some(("TA0007", "Discovery"))),
        "T1498" => (Some("Network Denial of Service"), Some(("TA0040", "Impact"))),
        "T1499" => (Some("Endpoint Denial of Service"), Some(("TA0040", "Impact"))),
        "T1048" => (Some("Exfiltration Over Alternative Protocol"), Some(("TA0010", "Exfiltration"))),
        "T1041" => (Some("Exfiltration Over C2 Channel"), Some(("TA0010", "Exfiltration"))),
        "T1095" => (Some("Non-Application Layer Protocol"), Some(("TA0011", "Command and Control"))),
        "T1071" => (Some("Application Layer Protocol"), Some(("TA0011", "Command and Control"))),
        "T1110" => (Some("Brute Force"), Some(("TA0006", "Credential Access"))),
        "T1573" => (Some("Encrypted Channel"), Some(("TA0011", "Command and Control"))),
        "T1021" => (Some("Remote Services"), Some(("TA0008", "Lateral Movement"))),
        _ => (None, None),
    };
    (name.or(base_name), tactic)
}

fn attack_url(id: &str) -> String {
    format!("https://attack.mitre.org/techniques/{}/", id.replace('.', "/"))
}

/// OCSF severity_id: 2 Low, 3 Medium, 4 High.
fn ocsf_severity(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::None => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
    }
}

fn ms(us: Option<i64>) -> Value {
    us.map_or(Value::Null, |t| Value::from(t.div_euclid(1000)))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// OCSF Detection Finding (class_uid 2004, category 2 Findings, activity 1
/// Create), one per incident, with its sample flows as evidences.
pub fn ocsf(a: &Alert<'_>, meta: &Meta) -> Value {
    let i = &a.incident;
    let (severity_id, severity) = ocsf_severity(i.peak_severity);
    let attacks: Vec<Value> = i
        .technique
        .as_deref()
        .map(|t| {
            let (name, tactic) = attack(t);
            let mut v = json!({"technique": {"uid": t, "name": name, "src_url": attack_url(t)}, "version": "v16"});
            if let Some((tid, tname)) = tactic {
                v["tactic"] = json!({"uid": tid, "name": tname});
            }
            v
        })
        .into_iter()
        .collect();
    let evidences: Vec<Value> = i
        .samples
        .iter()
        .map(|s| {
            json!({
                "src_endpoint": {"ip": s.src.map(|x| x.to_string()), "port": s.src_port},
                "dst_endpoint": {"ip": s.dst.map(|x| x.to_string()), "port": s.dst_port},
                "connection_info": {
                    "protocol_num": s.protocol,
                    "protocol_name": s.protocol.and_then(protocol_name),
                },
                "data": {"flow": s.flow, "time": time(s.time), "score": jnum(s.score)},
            })
        })
        .collect();
    let title = match &i.variant {
        Some(v) => format!("{} ({v})", i.class),
        None => i.class.to_string(),
    };
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "confidence_score": (i.confidence.clamp(0.0, 1.0) * 100.0).round() as u8,
        "time": ms(a.time_us()).as_i64().unwrap_or_else(now_ms),
        "start_time": ms(i.first_seen),
        "end_time": ms(i.last_seen),
        "count": i.flows,
        "message": summary(a),
        "finding_info": {
            "uid": a.uid,
            "title": title,
            "desc": i.reason,
            "types": [i.class.as_ref()],
            "first_seen_time": ms(i.first_seen),
            "last_seen_time": ms(i.last_seen),
            "analytic": {
                "uid": meta.model,
                "name": "flowhound ensemble (Isolation Forest, LOF, One-Class SVM, autoencoder)",
                "type_id": 4,
                "type": "Learning (ML/DL)",
            },
            "attacks": attacks,
        },
        "evidences": evidences,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": env!("CARGO_PKG_VERSION")},
            "log_name": meta.source,
            "uid": a.uid,
        },
        "unmapped": {
            "actor": i.actor.map(|x| x.to_string()),
            "actor_role": i.actor_role.name(),
            "distinct_targets": i.targets.len(),
            "distinct_ports": i.ports.len(),
            "bytes": i.bytes,
            "score": jnum(i.max_score),
            "explanation": explanation_json(&i.explanation),
            "repeats": a.repeats,
        },
    })
}

/// ECS `event.severity` and `event.risk_score` (0–100) for a severity.
fn ecs_severity(s: Severity) -> u8 {
    match s {
        Severity::None => 0,
        Severity::Low => 21,
        Severity::Medium => 47,
        Severity::High => 73,
    }
}

/// Elastic Common Schema alert event for an incident. The actor is the
/// source when it is the sending side, the destination when it is the
/// target (a flooded host); the strongest sample fills the other side.
pub fn ecs(a: &Alert<'_>, meta: &Meta) -> Value {
    let i = &a.incident;
    let sample = i.samples.first();
    let actor = i.actor.map(|x| x.to_string());
    let is_source = match i.actor_role {
        Actor::Src => true,
        Actor::Dst => false,
        Actor::External => sample.is_none_or(|s| s.src == i.actor),
    };
    let (src_ip, dst_ip) = match is_source {
        true => (actor.clone().or(sample.and_then(|s| s.src.map(|x| x.to_string()))), sample.and_then(|s| s.dst)),
        false => (sample.and_then(|s| s.src.map(|x| x.to_string())), i.actor.or(sample.and_then(|s| s.dst))),
    };
    let mut m = Map::new();
    m.insert("@timestamp".into(), time(a.time_us()).as_str().map_or_else(|| Value::from(now_rfc3339()), Value::from));
    m.insert("message".into(), summary(a).into());
    m.insert(
        "event".into(),
        json!({
            "kind": "alert",
            "category": ["network", "intrusion_detection"],
            "type": ["info", "connection"],
            "id": a.uid,
            "module": PRODUCT,
            "dataset": "flowhound.incident",
            "severity": ecs_severity(i.peak_severity),
            "risk_score": (i.max_score.clamp(0.0, 1.0) * 100.0).round(),
            "start": time(i.first_seen),
            "end": time(i.last_seen),
            "duration": i.first_seen.zip(i.last_seen).map(|(f, l)| (l - f).saturating_mul(1000)),
            "reason": i.reason,
            "outcome": "unknown",
        }),
    );
    m.insert("source".into(), json!({"ip": src_ip, "port": sample.and_then(|s| s.src_port)}));
    m.insert(
        "destination".into(),
        json!({"ip": dst_ip.map(|x| x.to_string()), "port": sample.and_then(|s| s.dst_port)}),
    );
    let proto = sample.and_then(|s| s.protocol);
    m.insert(
        "network".into(),
        json!({"iana_number": proto.map(|p| p.to_string()), "transport": proto.and_then(protocol_name)}),
    );
    if let Some(t) = i.technique.as_deref() {
        let (name, tactic) = attack(t);
        let mut threat = json!({
            "framework": "MITRE ATT&CK",
            "technique": {"id": [t], "name": [name], "reference": [attack_url(t)]},
        });
        if let Some((tid, tname)) = tactic {
            threat["tactic"] = json!({"id": [tid], "name": [tname], "reference": [format!("https://attack.mitre.org/tactics/{tid}/")]});
        }
        m.insert("threat".into(), threat);
    }
    m.insert(
        "rule".into(),
        json!({
            "name": i.class.as_ref(),
            "id": i.variant.as_deref().map_or_else(|| i.class.to_string(), |v| format!("{}.{v}", i.class)),
            "category": i.class.as_ref(),
            "description": i.reason,
            "ruleset": PRODUCT,
            "version": meta.model,
        }),
    );
    m.insert(
        "observer".into(),
        json!({"product": PRODUCT, "vendor": PRODUCT, "type": "ids", "version": env!("CARGO_PKG_VERSION")}),
    );
    m.insert("ecs".into(), json!({"version": ECS_VERSION}));
    m.insert(
        "flowhound".into(),
        json!({
            "flows": i.flows,
            "distinct_targets": i.targets.len(),
            "distinct_ports": i.ports.len(),
            "bytes": i.bytes,
            "confidence": jnum(i.confidence),
            "actor_role": i.actor_role.name(),
            "repeats": a.repeats,
            "source": meta.source,
            "explanation": explanation_json(&i.explanation),
        }),
    );
    Value::Object(m)
}

fn now_rfc3339() -> String {
    time(Some(now_ms() * 1000)).as_str().unwrap_or_default().to_string()
}

/// Slack's `&`, `<` and `>` escapes: flow data must not turn into mentions or links.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A Slack incoming-webhook body: a plain-text fallback and one section.
pub fn slack(a: &Alert<'_>, meta: &Meta) -> Value {
    let i = &a.incident;
    let text = slack_escape(&summary(a));
    let fields = format!(
        "*Flows* {} · *targets* {} · *ports* {} · *first seen* {} · *source* {}",
        i.flows,
        i.targets.len(),
        i.ports.len(),
        time(i.first_seen).as_str().unwrap_or("-"),
        slack_escape(&meta.source)
    );
    json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{text}*")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": fields}]},
        ],
    })
}

/// SNS subject: at most 100 printable ASCII characters, as SNS requires.
pub fn sns_subject(a: &Alert<'_>) -> String {
    let i = &a.incident;
    let actor = i.actor.map(|x| x.to_string()).unwrap_or_else(|| "unknown host".into());
    let s = format!("flowhound {} {} by {}", i.peak_severity.name(), i.class, actor);
    s.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_names_and_urls() {
        assert_eq!(attack("T1498.002"), (Some("Reflection Amplification"), Some(("TA0040", "Impact"))));
        assert_eq!(attack("T9999"), (None, None));
        assert_eq!(attack_url("T1498.002"), "https://attack.mitre.org/techniques/T1498/002/");
    }

    #[test]
    fn slack_text_cannot_mention_or_link() {
        assert_eq!(slack_escape("<!channel> <http://x|y> & co"), "&lt;!channel&gt; &lt;http://x|y&gt; &amp; co");
    }
}
