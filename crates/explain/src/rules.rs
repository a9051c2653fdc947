//! Threat classes as data: an ordered table of rules over a flow's raw
//! features; the first rule whose every condition holds names the class.
//!
//! The default table is `rules.toml` next to this file (documented in
//! `docs/explain.md`); `--rules FILE` replaces it. A rule:
//!
//! ```toml
//! [[rule]]
//! class = "port_scan"
//! variant = "vertical"
//! technique = "T1046"
//! actor = "src"            # src | dst | external: who the incident is about
//! when = ["src_distinct_dst_ports_{short} >= 15", "src_distinct_dst_{short} <= 3"]
//! reason = "{src} probed {src_distinct_dst_ports_{short}} ports on {dst} within {short}"
//! ```
//!
//! Conditions are `FEATURE OP NUMBER` (`<`, `<=`, `>`, `>=`, `==`, `!=`) or
//! `FEATURE in [N, …]` / `FEATURE not_in [N, …]`, over any raw feature by its
//! name, the pair evidence ([`PAIR_NAMES`]: beacons, brute force, long
//! connections) and `score` and `votes`; a missing value (NaN) fails every
//! condition.
//! `{short}`, `{long}` and `{baseline}` stand for the model's shortest and
//! longest window and its burst baseline (`60s`, `1h`, `15m` by default), so
//! one table serves any window setting. In a reason, `{FEATURE}` prints the
//! value, `{FEATURE:%}` a share as a percentage, `{FEATURE:bytes}` a volume;
//! `{src}`, `{dst}`, `{src_port}`, `{dst_port}` and `{protocol}` the flow's own fields.

use flowhound_detect::Verdict;
use flowhound_features::pairs::{PAIR_NAMES, PAIR_WIDTH};
use flowhound_features::schema::window_suffix;
use flowhound_flow::FlowRecord;
use serde::{Deserialize, Serialize};

use crate::text;
use crate::ExplainError;

/// The default rule table.
pub const DEFAULT_RULES: &str = include_str!("rules.toml");

/// Who an incident of this class is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The flow's source (scanners, exfiltrating hosts, bursting hosts).
    #[default]
    Src,
    /// The flow's destination (the victim of a DoS or DDoS).
    Dst,
    /// Whichever side is outside the network (the never-seen address).
    External,
}

/// What one incident of a class gathers: every flow of the actor (a scanner,
/// a flood's victim), of the actor and one peer service (a beacon to its
/// controller), or of the actor and one destination port (brute force on a
/// service, across hosts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    #[default]
    Actor,
    Pair,
    Service,
}

impl Actor {
    pub fn name(self) -> &'static str {
        match self {
            Actor::Src => "source",
            Actor::Dst => "destination",
            Actor::External => "external",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

/// One rule as written in the table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub class: String,
    #[serde(default)]
    pub variant: Option<String>,
    /// MITRE ATT&CK technique id, e.g. `T1046`.
    #[serde(default)]
    pub technique: Option<String>,
    #[serde(default)]
    pub actor: Actor,
    #[serde(default)]
    pub when: Vec<String>,
    pub reason: String,
    /// The rule raises an alert on its own, when the models' vote does not:
    /// a signature precise enough (a port scan of 30 ports an hour) that
    /// traffic the models learned as usual — the scanners an
    /// Internet-facing host meets every hour — is still reported.
    #[serde(default)]
    pub alert: bool,
    /// What one incident gathers (default: the actor's flows).
    #[serde(default)]
    pub per: Per,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Lt(f32),
    Le(f32),
    Gt(f32),
    Ge(f32),
    Eq(f32),
    Ne(f32),
    In(Vec<f32>),
    NotIn(Vec<f32>),
}

impl Op {
    fn holds(&self, x: f32) -> bool {
        if x.is_nan() {
            return false;
        }
        match self {
            Op::Lt(v) => x < *v,
            Op::Le(v) => x <= *v,
            Op::Gt(v) => x > *v,
            Op::Ge(v) => x >= *v,
            Op::Eq(v) => x == *v,
            Op::Ne(v) => x != *v,
            Op::In(vs) => vs.contains(&x),
            Op::NotIn(vs) => !vs.contains(&x),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Cond {
    var: usize,
    op: Op,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fmt {
    Plain,
    Percent,
    Bytes,
    Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Src,
    Dst,
    SrcPort,
    DstPort,
    Protocol,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Var(usize, Fmt),
    Field(Field),
}

/// A checked rule, its conditions bound to feature positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub class: String,
    pub variant: Option<String>,
    pub technique: Option<String>,
    pub actor: Actor,
    /// The conditions as written (windows filled in), for documentation.
    pub when: Vec<String>,
    /// Raises an alert on its own ([`RuleSpec::alert`]).
    pub alert: bool,
    pub per: Per,
    conds: Vec<Cond>,
    reason: Vec<Piece>,
}

/// What a rule sees of one flow: its raw feature row, its pair evidence
/// ([`PAIR_NAMES`]; empty: all missing) and its verdict.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub raw: &'a [f32],
    pub pair: &'a [f32],
    pub score: f32,
    pub votes: f32,
}

impl<'a> Vars<'a> {
    pub fn new(raw: &'a [f32], pair: &'a [f32], v: &Verdict) -> Self {
        Vars { raw, pair, score: v.score, votes: f32::from(v.votes) }
    }

    fn get(&self, i: usize) -> f32 {
        let w = self.raw.len();
        match i {
            i if i < w => self.raw[i],
            i if i < w + PAIR_WIDTH => self.pair.get(i - w).copied().unwrap_or(f32::NAN),
            i if i == w + PAIR_WIDTH => self.score,
            _ => self.votes,
        }
    }
}

impl Rule {
    pub fn matches(&self, vars: &Vars<'_>) -> bool {
        self.conds.iter().all(|c| c.op.holds(vars.get(c.var)))
    }

    /// The rule's reason for one flow.
    pub fn reason(&self, vars: &Vars<'_>, r: &FlowRecord) -> String {
        let mut s = String::new();
        for p in &self.reason {
            match p {
                Piece::Text(t) => s += t,
                Piece::Var(i, f) => {
                    let v = vars.get(*i);
                    s += &match f {
                        Fmt::Plain => text::human(v),
                        Fmt::Percent => text::percent(v),
                        Fmt::Bytes => text::bytes(v),
                        Fmt::Duration => text::duration(v),
                    };
                }
                Piece::Field(f) => {
                    let opt = |v: Option<String>| v.unwrap_or_else(|| "?".into());
                    s += &match f {
                        Field::Src => opt(r.src.map(|a| a.to_string())),
                        Field::Dst => opt(r.dst.map(|a| a.to_string())),
                        Field::SrcPort => opt(r.src_port.map(|p| p.to_string())),
                        Field::DstPort => opt(r.dst_port.map(|p| p.to_string())),
                        Field::Protocol => opt(r.protocol.map(|p| {
                            flowhound_flow::record::protocol_name(p).map_or_else(|| p.to_string(), str::to_string)
                        })),
                    };
                }
            }
        }
        s
    }
}

/// The checked, ordered rule table.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// The window names a table may refer to.
#[derive(Debug, Clone)]
pub struct WindowNames {
    pub short: String,
    pub long: String,
    pub baseline: String,
}

impl WindowNames {
    /// From window lengths in seconds (any order) and the burst baseline.
    pub fn new(windows: &[u32], baseline: u32) -> Self {
        let short = windows.iter().copied().min().unwrap_or(60);
        let long = windows.iter().copied().max().unwrap_or(3600);
        WindowNames { short: window_suffix(short), long: window_suffix(long), baseline: window_suffix(baseline) }
    }

    fn fill(&self, s: &str) -> String {
        s.replace("{short}", &self.short).replace("{long}", &self.long).replace("{baseline}", &self.baseline)
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn number(s: &str) -> Option<f32> {
    s.trim().parse::<f32>().ok().filter(|v| v.is_finite())
}

impl Rules {
    /// The default table for `names` (the raw features' names).
    pub fn default_for(names: &[&str], w: &WindowNames) -> Result<Self, ExplainError> {
        Rules::parse(DEFAULT_RULES, names, w)
    }

    /// Parses and checks a table against the features of a model; every
    /// problem of every rule is listed.
    pub fn parse(toml_text: &str, names: &[&str], w: &WindowNames) -> Result<Self, ExplainError> {
        let file: RuleFile = toml::from_str(toml_text).map_err(|e| ExplainError::Rules(vec![e.to_string()]))?;
        let mut vars: Vec<&str> = names.to_vec();
        vars.extend(PAIR_NAMES);
        vars.extend(["score", "votes"]);
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for (k, spec) in file.rule.into_iter().enumerate() {
            let label = format!(
                "rule {} ({}{})",
                k + 1,
                spec.class,
                spec.variant.as_deref().map(|v| format!("/{v}")).unwrap_or_default()
            );
            let mut bad = |p: String| problems.push(format!("{label}: {p}"));
            if !is_name(&spec.class) {
                bad(format!("class {:?} must be lowercase letters, digits and _", spec.class));
            }
            let mut conds = Vec::new();
            let mut when = Vec::new();
            for c in &spec.when {
                let c = w.fill(c);
                match parse_cond(&c, &vars) {
                    Ok(cond) => conds.push(cond),
                    Err(e) => bad(format!("condition {c:?}: {e}")),
                }
                when.push(c);
            }
            let reason = match parse_template(&w.fill(&spec.reason), &vars) {
                Ok(r) => r,
                Err(e) => {
                    bad(format!("reason: {e}"));
                    Vec::new()
                }
            };
            if spec.reason.trim().is_empty() {
                bad("reason is empty".into());
            }
            rules.push(Rule {
                class: spec.class,
                variant: spec.variant,
                technique: spec.technique,
                actor: spec.actor,
                when,
                alert: spec.alert,
                per: spec.per,
                conds,
                reason,
            });
        }
        if problems.is_empty() {
            Ok(Rules { rules })
        } else {
            Err(ExplainError::Rules(problems))
        }
    }

    /// The first rule that holds for this flow, with its position.
    pub fn classify(&self, vars: &Vars<'_>) -> Option<(usize, &Rule)> {
        self.rules.iter().enumerate().find(|(_, r)| r.matches(vars))
    }

    /// Whether the flow's class comes from a rule that raises alerts on its own.
    pub fn raises(&self, vars: &Vars<'_>) -> bool {
        self.classify(vars).is_some_and(|(_, r)| r.alert)
    }

    pub fn get(&self, i: usize) -> Option<&Rule> {
        self.rules.get(i)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

fn parse_cond(c: &str, vars: &[&str]) -> Result<Cond, String> {
    let mut it = c.trim().splitn(3, char::is_whitespace);
    let (Some(name), Some(op), Some(rest)) = (it.next(), it.next(), it.next()) else {
        return Err("expected FEATURE OP VALUE, e.g. \"dst_flows_60s >= 100\"".into());
    };
    let var = vars.iter().position(|v| *v == name).ok_or_else(|| format!("no feature named {name:?}"))?;
    let list = |rest: &str| -> Result<Vec<f32>, String> {
        let inner = rest.trim().strip_prefix('[').and_then(|r| r.strip_suffix(']'));
        let inner = inner.ok_or("expected a list like [22, 80]")?;
        inner
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| number(s).ok_or_else(|| format!("{:?} is not a number", s.trim())))
            .collect()
    };
    let one = || number(rest).ok_or_else(|| format!("{:?} is not a number", rest.trim()));
    let op = match op {
        "<" => Op::Lt(one()?),
        "<=" => Op::Le(one()?),
        ">" => Op::Gt(one()?),
        ">=" => Op::Ge(one()?),
        "==" => Op::Eq(one()?),
        "!=" => Op::Ne(one()?),
        "in" => Op::In(list(rest)?),
        "not_in" => Op::NotIn(list(rest)?),
        o => return Err(format!("unknown operator {o:?} (use < <= > >= == != in not_in)")),
    };
    Ok(Cond { var, op })
}

fn parse_template(t: &str, vars: &[&str]) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Text(rest[..open].to_string()));
        }
        let close = rest[open..].find('}').ok_or("a { without its }")? + open;
        let inner = &rest[open + 1..close];
        let (name, fmt) = inner.split_once(':').unwrap_or((inner, ""));
        let field = match name {
            "src" => Some(Field::Src),
            "dst" => Some(Field::Dst),
            "src_port" => Some(Field::SrcPort),
            "dst_port" => Some(Field::DstPort),
            "protocol" => Some(Field::Protocol),
            _ => None,
        };
        match field {
            Some(f) => out.push(Piece::Field(f)),
            None => {
                let var = vars.iter().position(|v| *v == name).ok_or_else(|| format!("no feature named {name:?}"))?;
                let fmt = match fmt {
                    "" => Fmt::Plain,
                    "%" => Fmt::Percent,
                    "bytes" => Fmt::Bytes,
                    "dur" => Fmt::Duration,
                    f => return Err(format!("unknown format {f:?} (use :%, :bytes or :dur)")),
                };
                out.push(Piece::Var(var, fmt));
            }
        }
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> WindowNames {
        WindowNames::new(&[60, 3600], 900)
    }

    /// What each count a reason may quote counts, as the words that must
    /// follow it: a reason quoting all flows of a host must not call them
    /// ICMP or UDP flows (a "received 67 ICMP flows" once counted 66 DNS
    /// flows). Longest prefix first.
    const NOUNS: &[(&str, &[&str])] = &[
        ("dst_icmp_flows_", &[" ICMP flows"]),
        ("src_distinct_dst_ports_", &[" distinct ports"]),
        ("src_distinct_dst_", &[" host(s)", " hosts"]),
        ("dst_distinct_src_", &[" distinct sources"]),
        ("src_flows_", &[" flows", " times"]),
        ("dst_flows_", &[" flows", " in all"]),
        ("src_reject_share_", &[" rejected"]),
        ("src_burst_", &[" times its own rate"]),
        ("src_bytes_out_", &[" within", " to external"]),
        ("bytes", &[" to external", " in one flow", " in this record"]),
        ("pair_flows", &[" attempts", " connections"]),
        ("pair_per_min", &[" a minute"]),
        ("pair_fail_share", &[" refused"]),
        ("pair_bytes_median", &[" each", ")"]),
        ("beacon_period_s", &[" (±"]),
        ("beacon_per_cycle", &[" connection(s) a cycle"]),
        ("conn_open_s", &[" ("]),
    ];

    #[test]
    fn only_rules_marked_alert_raise_alerts() {
        let names = ["ports_1h", "proto"];
        let t = r#"
            [[rule]]
            class = "port_scan"
            alert = true
            when = ["ports_{long} >= 30"]
            reason = "{ports_{long}} ports"
            [[rule]]
            class = "odd"
            when = ["proto == 47"]
            reason = "gre"
        "#;
        let rules = Rules::parse(t, &names, &w()).expect("valid");
        let vars = |raw: &'static [f32]| Vars { raw, pair: &[], score: 0.1, votes: 0.0 };
        assert!(rules.raises(&vars(&[40.0, 6.0])));
        assert!(!rules.raises(&vars(&[12.0, 6.0])), "no rule holds");
        assert!(!rules.raises(&vars(&[12.0, 47.0])), "a rule holds but does not raise alerts");
        // The first rule that holds decides, as for the class.
        let file: RuleFile = toml::from_str(DEFAULT_RULES).expect("default rules parse");
        let raising: Vec<&str> = file.rule.iter().filter(|r| r.alert).map(|r| r.class.as_str()).collect();
        assert_eq!(
            raising,
            [
                "abnormal_protocol",
                "port_scan",
                "port_scan",
                "brute_force",
                "brute_force",
                "long_connection",
                "long_connection",
                "beacon",
                "beacon"
            ]
        );
    }

    #[test]
    fn every_default_rule_quotes_counts_of_what_it_names() {
        let file: RuleFile = toml::from_str(DEFAULT_RULES).expect("default rules parse");
        assert!(file.rule.len() >= 13, "{} rules", file.rule.len());
        for r in &file.rule {
            let mut rest = r.reason.as_str();
            let mut quoted = 0;
            while let Some(open) = rest.find('{') {
                // A placeholder, with a nested `{short}` and a `:format`.
                let mut depth = 0;
                let end = rest[open..]
                    .char_indices()
                    .find(|(_, c)| {
                        depth += match c {
                            '{' => 1,
                            '}' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map(|(i, _)| open + i)
                    .expect("closed placeholder");
                let name = rest[open + 1..end].split(':').next().unwrap_or_default();
                let after = &rest[end + 1..];
                if let Some((_, nouns)) = NOUNS.iter().find(|(p, _)| name.starts_with(p)) {
                    quoted += 1;
                    assert!(
                        nouns.iter().any(|n| after.starts_with(n)),
                        "rule {}/{:?}: {{{name}}} is followed by {after:?}, not by what it counts ({nouns:?})",
                        r.class,
                        r.variant
                    );
                    // A protocol word before a count of every protocol would lie.
                    if !name.starts_with("dst_icmp_") {
                        for p in ["ICMP", "UDP", "TCP"] {
                            assert!(!after.starts_with(&format!(" {p}")), "rule {}: {name} {after:?}", r.class);
                        }
                    }
                }
                rest = after;
            }
            // Every rule but the rare-protocol and UDP-to-TCP-service ones
            // quotes at least one count.
            let counts = r.when.iter().any(|c| NOUNS.iter().any(|(p, _)| c.starts_with(p)));
            assert!(!counts || quoted > 0, "rule {}/{:?} tests counts but quotes none", r.class, r.variant);
        }
    }

    #[test]
    fn conditions_and_templates() {
        let names = ["ports_60s", "proto", "share"];
        let t = r#"
            [[rule]]
            class = "scan"
            when = ["ports_{short} >= 10", "proto in [6, 17]"]
            reason = "{src} hit {ports_{short}} ports, {share:%} rejected, score {score}"
            [[rule]]
            class = "odd"
            when = ["proto not_in [1, 6, 17]"]
            reason = "protocol {protocol}"
        "#;
        let rules = Rules::parse(t, &names, &w()).expect("valid");
        let r = FlowRecord { src: Some("10.0.3.7".parse().expect("ip")), protocol: Some(47), ..Default::default() };
        let vars = |raw: &'static [f32]| Vars { raw, pair: &[], score: 0.9, votes: 3.0 };
        let (i, rule) = rules.classify(&vars(&[412.0, 6.0, 0.98])).expect("scan");
        assert_eq!((i, rule.class.as_str()), (0, "scan"));
        assert_eq!(rule.reason(&vars(&[412.0, 6.0, 0.98]), &r), "10.0.3.7 hit 412 ports, 98 % rejected, score 0.90");
        assert_eq!(rules.classify(&vars(&[9.0, 6.0, 0.0])), None);
        let (i, rule) = rules.classify(&vars(&[1.0, 47.0, 0.0])).expect("odd");
        assert_eq!(i, 1);
        assert_eq!(rule.reason(&vars(&[1.0, 47.0, 0.0]), &r), "protocol gre");
        // A missing value fails every condition, `not_in` included.
        assert_eq!(rules.classify(&vars(&[1.0, f32::NAN, 0.0])), None);
    }

    #[test]
    fn every_problem_is_listed() {
        let t = r#"
            [[rule]]
            class = "Bad Class"
            when = ["nope >= 1", "proto ~ 3", "proto >= x"]
            reason = "{missing} {proto:pct}"
        "#;
        let Err(ExplainError::Rules(p)) = Rules::parse(t, &["proto"], &w()) else { panic!("must fail") };
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(p[0].contains("class \"Bad Class\""));
        assert!(p[1].contains("no feature named \"nope\""));
        assert!(p[2].contains("unknown operator"));
        assert!(p[3].contains("\"x\" is not a number"));
        assert!(p[4].contains("no feature named \"missing\""));
        assert!(Rules::parse("[[rule]]\nclass = 1", &["proto"], &w()).is_err());
    }

    #[test]
    fn the_default_table_fits_the_default_features_and_any_windows() {
        for (windows, baseline) in [(vec![60, 3600], 900), (vec![30, 300, 86_400], 3600)] {
            let p = flowhound_features::ExtractorParams {
                windows: windows.clone(),
                baseline_secs: baseline,
                ..Default::default()
            };
            let schema = p.schema();
            let names: Vec<&str> = schema.names().collect();
            let rules = Rules::default_for(&names, &WindowNames::new(&windows, baseline)).expect("default table");
            assert!(rules.rules().len() >= 10);
        }
    }
}
