//! JSON lines: Zeek's JSON conn.log (`LogAscii::use_json=T`) and flowhound's own
//! JSONL output, one object per line. Keys go through the same roles as CSV
//! columns, so a value means the same thing in either spelling.

use std::sync::Arc;

use compact_str::CompactString;
use serde_json::{Map, Value};

use crate::error::{Reject, RejectReason};
use crate::reader::{FlowReader, LineKind};
use crate::record::FlowRecord;
use crate::row::{Role, RowBuilder, TimeKind};
use crate::tabular::ZeekColumn;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonDialect {
    Zeek,
    Flowhound,
}

#[derive(Debug, Clone)]
pub struct JsonReader {
    dialect: JsonDialect,
    /// The extra names of the previous line, reused while lines agree, so that
    /// records share one allocation as they do from CSV.
    last_extra: Option<Arc<[CompactString]>>,
}

impl JsonReader {
    pub fn new(dialect: JsonDialect) -> Self {
        JsonReader { dialect, last_extra: None }
    }

    fn role(&self, key: &str) -> Option<Role> {
        match self.dialect {
            JsonDialect::Flowhound => Role::by_key(key),
            JsonDialect::Zeek => match crate::tabular::zeek_role(key) {
                // Zeek writes `ts` as epoch seconds or, with JSON::TS_ISO8601, as text.
                ZeekColumn::Role(Role::Start(_)) => Some(Role::Start(TimeKind::Any)),
                ZeekColumn::Role(r) => Some(r),
                ZeekColumn::PayloadBytes | ZeekColumn::Unknown => None,
            },
        }
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        // Integers as written; floats through Rust's `Display`, which never uses
        // an exponent (serde_json's own text would give `6.4e-5`).
        Value::Number(n) => Some(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.to_string(),
            (None, Some(i)) => i.to_string(),
            _ => n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string()),
        }),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl FlowReader for JsonReader {
    fn read_line(&mut self, line: &[u8], out: &mut Vec<FlowRecord>) -> Result<LineKind, Reject> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(LineKind::Blank);
        }
        let obj: Map<String, Value> = serde_json::from_slice(line)
            .map_err(|e| Reject::new(RejectReason::BadSyntax, format!("not a JSON object: {e}")))?;
        let mut cells: Vec<(Role, &str, String)> = Vec::with_capacity(obj.len());
        let mut extra: Option<&Map<String, Value>> = None;
        for (k, v) in &obj {
            if k == "extra" && self.dialect == JsonDialect::Flowhound {
                extra = v.as_object();
                continue;
            }
            let Some(role) = self.role(k) else { continue };
            if v.is_null() {
                continue;
            }
            let text = scalar_text(v).ok_or_else(|| {
                Reject::new(RejectReason::BadValue, format!("{k}: expected a string, number or bool"))
            })?;
            cells.push((role, k.as_str(), text));
        }
        let mut b = RowBuilder::default();
        if let Some(extra) = extra.filter(|e| !e.is_empty()) {
            let same = self
                .last_extra
                .as_ref()
                .is_some_and(|n| n.len() == extra.len() && n.iter().zip(extra.keys()).all(|(a, b)| a == b));
            if !same {
                self.last_extra = Some(extra.keys().map(|k| CompactString::from(k.as_str())).collect());
            }
            b.rec.extra.names = self.last_extra.clone();
            b.rec.extra.values = extra
                .iter()
                .map(|(k, v)| match v {
                    Value::Number(n) => n.as_f64().ok_or_else(|| Reject::new(RejectReason::BadNumber, k.clone())),
                    // JSON has no NaN/inf: our writer spells them as strings or null.
                    Value::Null => Ok(f64::NAN),
                    Value::String(s) => crate::parse::float(s.as_bytes())
                        .ok_or_else(|| Reject::field(RejectReason::BadNumber, k, s.as_bytes(), "is not a number")),
                    _ => Err(Reject::new(RejectReason::BadNumber, format!("extra.{k}: not a number"))),
                })
                .collect::<Result<_, _>>()?;
        }
        for (role, key, text) in &cells {
            b.set(*role, key, text.as_bytes())?;
        }
        out.push(b.finish()?);
        Ok(LineKind::Record)
    }
}
