//! What analysts say about flagged flows, in the form retraining takes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use flowhound_explain::Finding;
use flowhound_flow::net::Networks;
use flowhound_flow::FlowRecord;

/// An analyst's verdict on a flow or an incident (not a score result:
/// that is `flowhound_detect::Verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    TruePositive,
    FalsePositive,
}

impl Judgement {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "true_positive" => Some(Judgement::TruePositive),
            "false_positive" => Some(Judgement::FalsePositive),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Judgement::TruePositive => "true_positive",
            Judgement::FalsePositive => "false_positive",
        }
    }
}

/// A feedback row ready for training: the verdict and the raw feature row of
/// one flow it covers.
#[derive(Debug, Clone)]
pub struct TrainingExample {
    pub verdict: Judgement,
    pub class: String,
    pub raw: Vec<f32>,
    pub external: Vec<IpAddr>,
}

/// A verdicts file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictsError {
    #[error("the CSV header must name `flow` and `verdict` columns (it has: {0})")]
    Header(String),
    /// Every bad line counted, the first twenty described.
    #[error("{count} bad line(s): {}", .first.join("; "))]
    Lines { count: usize, first: Vec<String> },
}

/// Parses a verdicts file: CSV with a header naming `flow` and `verdict`
/// columns, or JSON lines with those keys; `verdict` is true_positive
/// (malicious, tp) or false_positive (benign, fp), in any case. Flow number →
/// verdict (a later line about the same flow wins); every bad line is listed.
pub fn parse_verdicts(text: &str) -> Result<BTreeMap<u64, Judgement>, VerdictsError> {
    let parse = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
        "true_positive" | "malicious" | "tp" => Some(Judgement::TruePositive),
        "false_positive" | "benign" | "fp" => Some(Judgement::FalsePositive),
        _ => None,
    };
    let mut out = BTreeMap::new();
    let mut bad = Vec::new();
    let json = text.trim_start().starts_with('{');
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let mut cols = (0, 0);
    if !json {
        let Some((_, head)) = lines.next() else { return Ok(out) };
        let names: Vec<String> = head.split(',').map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect();
        match (names.iter().position(|c| c == "flow"), names.iter().position(|c| c == "verdict")) {
            (Some(f), Some(v)) => cols = (f, v),
            _ => return Err(VerdictsError::Header(head.to_string())),
        }
    }
    for (i, line) in lines {
        let item: Option<(Option<u64>, Option<Judgement>)> = if json {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .map(|v| (v["flow"].as_u64(), v["verdict"].as_str().and_then(parse)))
        } else {
            let cells: Vec<&str> = line.split(',').map(|c| c.trim().trim_matches('"')).collect();
            Some((cells.get(cols.0).and_then(|c| c.parse().ok()), cells.get(cols.1).and_then(|c| parse(c))))
        };
        match item {
            Some((Some(f), Some(v))) => {
                out.insert(f, v);
            }
            Some((None, _)) => bad.push(format!("line {}: no flow number", i + 1)),
            Some((_, None)) => bad.push(format!("line {}: the verdict is not true_positive/false_positive", i + 1)),
            None => bad.push(format!("line {}: not a JSON object", i + 1)),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        let count = bad.len();
        bad.truncate(20);
        Err(VerdictsError::Lines { count, first: bad })
    }
}

/// One judged flow as retraining takes it: the class a true positive
/// teaches the forest is what the rules called it (`other_anomaly` without
/// a finding); its external addresses become known when it was normal.
pub fn example(
    verdict: Judgement,
    found: Option<&Finding>,
    raw: &[f32],
    r: &FlowRecord,
    nets: &Networks,
) -> TrainingExample {
    TrainingExample {
        verdict,
        class: found.map_or_else(|| flowhound_explain::OTHER.to_string(), |f| f.class.to_string()),
        raw: raw.to_vec(),
        external: [r.src, r.dst].into_iter().flatten().filter(|x| !nets.is_internal(*x)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_from_csv_and_json_lines_and_list_every_bad_line() {
        let csv = "note,Flow,VERDICT\nx,3,malicious\ny,\"7\",FP\nz,3,benign\n";
        let got = parse_verdicts(csv).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.into_iter().collect::<Vec<_>>(), [(3, Judgement::FalsePositive), (7, Judgement::FalsePositive)]);
        let jl = "{\"flow\": 1, \"verdict\": \"true_positive\"}\n\n{\"flow\": 2, \"verdict\": \"tp\"}\n";
        assert_eq!(parse_verdicts(jl).map(|m| m.len()), Ok(2));
        assert_eq!(parse_verdicts("flow,label\n1,tp\n"), Err(VerdictsError::Header("flow,label".into())));
        let Err(VerdictsError::Lines { count, first }) = parse_verdicts("flow,verdict\n1,maybe\nx,tp\n2,fp\n") else {
            panic!("bad lines accepted")
        };
        assert_eq!(count, 2);
        assert_eq!(first, ["line 2: the verdict is not true_positive/false_positive", "line 3: no flow number"]);
        assert_eq!(parse_verdicts(""), Ok(BTreeMap::new()));
    }
}
