//! Names and kinds of features: what a row of numbers means.

use serde::{Deserialize, Serialize};

/// How the preprocessing treats a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A measurement; imputed with the median when missing.
    Numeric,
    /// A heavy-tailed count or volume: `log1p` before scaling.
    Count,
    /// 0 or 1 (missing stays distinguishable through an indicator).
    Binary,
    /// A code standing for a category (protocol number, hashed state/service):
    /// one-hot encoded with an "other" bucket.
    Categorical,
}

/// One feature: name, kind, unit and window for the docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    pub kind: Kind,
}

impl Feature {
    pub fn new(name: impl Into<String>, kind: Kind) -> Self {
        Feature { name: name.into(), kind }
    }
}

/// The ordered features a [`crate::Extractor`] writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub features: Vec<Feature>,
}

impl Schema {
    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.features.iter().map(|f| f.name.as_str())
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }
}

/// `60s`, `15m`, `1h`, `1d`: the suffix of windowed feature names.
pub fn window_suffix(secs: u32) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s >= 600 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Parses `60s`, `90`, `15m`, `1h`, `1d` into seconds.
pub fn parse_window(s: &str) -> Option<u32> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b's' => (&s[..s.len() - 1], 1),
        b'm' => (&s[..s.len() - 1], 60),
        b'h' => (&s[..s.len() - 1], 3600),
        b'd' => (&s[..s.len() - 1], 86_400),
        b'0'..=b'9' => (s, 1),
        _ => return None,
    };
    num.parse::<u32>().ok()?.checked_mul(mult)
}
