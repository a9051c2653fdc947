//! The JSON shapes of scored flows and incidents, shared by `detect`'s JSON
//! lines, the dashboard's API and the static report (one writer, one format:
//! docs/explain.md and docs/api.md describe it).

use flowhound_detect::Verdict;
use flowhound_flow::{FlowRecord, Timestamp};
use serde_json::{json, Map, Value};

use crate::allow::Entry;
use crate::{Contribution, Finding, Incident};

/// An f32 as a JSON number without f64-widening noise (0.000064, not
/// 0.00006399999983841553) and integers without `.0`.
pub fn jnum(v: f32) -> serde_json::Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        serde_json::Value::from(v as i64)
    } else {
        let shortest: f64 = format!("{v}").parse().unwrap_or(f64::from(v));
        serde_json::Number::from_f64(shortest).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// Adds a flow's key fields (`KEYS`) to a JSON object.
pub fn flow_keys(m: &mut serde_json::Map<String, serde_json::Value>, r: &FlowRecord) {
    m.insert("time".into(), r.start.map(|t| t.to_rfc3339()).into());
    m.insert("src".into(), r.src.map(|a| a.to_string()).into());
    m.insert("dst".into(), r.dst.map(|a| a.to_string()).into());
    m.insert("src_port".into(), r.src_port.into());
    m.insert("dst_port".into(), r.dst_port.into());
    m.insert("protocol".into(), r.protocol.into());
}

pub fn time(us: Option<i64>) -> Value {
    us.and_then(Timestamp::from_micros).map(|t| t.to_rfc3339()).into()
}

pub fn explanation_json(e: &[Contribution]) -> Value {
    e.iter()
        .map(|c| {
            // A category by name; its code is meaningless outside the model.
            let (value, baseline) = match &c.labels {
                Some((v, b)) => (Value::from(v.as_ref()), Value::from(b.as_ref())),
                None => (jnum(c.value), jnum(c.baseline)),
            };
            json!({
                "feature": c.feature.as_ref(),
                "value": value,
                "baseline": baseline,
                "z": jnum((c.z * 100.0).round() / 100.0),
                "contribution": jnum((c.contribution * 1000.0).round() / 1000.0),
            })
        })
        .collect()
}

/// Adds a flow's finding and suppression to its JSON object.
pub fn add_finding(m: &mut Map<String, Value>, f: Option<&Finding>, suppressed: Option<&Entry>) {
    m.insert("threat_class".into(), f.map(|f| f.class.as_ref()).into());
    m.insert("threat_variant".into(), f.and_then(|f| f.variant.as_deref()).into());
    m.insert("attack_technique".into(), f.and_then(|f| f.technique.as_deref()).into());
    m.insert("reason".into(), f.map(|f| f.reason.as_str()).into());
    m.insert("explanation".into(), f.map_or(Value::Null, |f| explanation_json(&f.explanation)));
    m.insert("suppressed".into(), suppressed.is_some().into());
    if let Some(e) = suppressed {
        m.insert("suppressed_reason".into(), e.reason.as_str().into());
    }
}

pub fn incident_json(i: &Incident) -> Value {
    let samples: Vec<Value> = i
        .samples
        .iter()
        .map(|s| {
            json!({
                "flow": s.flow,
                "time": time(s.time),
                "src": s.src.map(|a| a.to_string()),
                "dst": s.dst.map(|a| a.to_string()),
                "src_port": s.src_port,
                "dst_port": s.dst_port,
                "protocol": s.protocol,
                "score": jnum(s.score),
            })
        })
        .collect();
    let mut v = json!({
        "incident": i.id,
        "threat_class": i.class.as_ref(),
        "threat_variant": i.variant.as_deref(),
        "attack_technique": i.technique.as_deref(),
        "actor": i.actor.map(|a| a.to_string()),
        "actor_role": i.actor_role.name(),
        "first_seen": time(i.first_seen),
        "last_seen": time(i.last_seen),
        "flows": i.flows,
        "distinct_targets": i.targets.len(),
        "distinct_ports": i.ports.len(),
        "bytes": i.bytes,
        "severity": i.peak_severity.name(),
        "score": jnum(i.max_score),
        "confidence": jnum(i.confidence),
        "reason": i.reason,
        "explanation": explanation_json(&i.explanation),
        "samples": samples,
        "suppressed_flows": i.suppressed,
        "digest": i.digest,
        "absorbed": i.absorbed.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<Map<String, Value>>(),
    });
    // A beacon's controller, a brute-forced service: said only where a
    // class gathers one (older consumers see the fields they knew).
    if let (Some((addr, port)), Some(o)) = (i.peer, v.as_object_mut()) {
        o.insert("peer".into(), json!({"address": addr.map(|a| a.to_string()), "port": port}));
    }
    v
}

/// A verdict's predicted attack category, by name (with a Random Forest).
pub fn predicted<'a>(v: &Verdict, classes: Option<&'a [String]>) -> Option<&'a str> {
    classes.and_then(|c| c.get(usize::from(v.category?))).map(String::as_str)
}

/// One scored flow as `detect` writes it: position, key fields, score,
/// votes, severity, per-model scores, finding, suppression and ground truth.
/// `names`: the voters in verdict order; `classes`: the forest's classes.
pub fn flow_json(
    flow: u64,
    r: &FlowRecord,
    v: &Verdict,
    f: Option<&Finding>,
    suppressed: Option<&Entry>,
    names: &[&str],
    classes: Option<&[String]>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("flow".into(), flow.into());
    flow_keys(&mut m, r);
    m.insert("score".into(), jnum(v.score));
    m.insert("votes".into(), v.votes.into());
    m.insert("severity".into(), v.severity.name().into());
    m.insert("confidence".into(), jnum(v.confidence));
    let models: Map<String, Value> = names
        .iter()
        .zip(&v.models)
        .map(|(n, (s, f))| (n.to_string(), json!({"score": jnum(*s), "flagged": f})))
        .collect();
    m.insert("models".into(), models.into());
    if classes.is_some() {
        m.insert("predicted_category".into(), predicted(v, classes).into());
    }
    add_finding(&mut m, f, suppressed);
    if let Some(t) = &r.truth {
        m.insert("label".into(), if t.malicious { "malicious" } else { "benign" }.into());
        m.insert("category".into(), t.category.as_deref().into());
    }
    m
}
