//! Numbers as an analyst reads them.

/// `412`, `0.37`, `12.3k`, `4.5M`; `?` for a missing value.
pub fn human(v: f32) -> String {
    if v.is_nan() {
        return "?".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = v.abs();
    let scaled = |div: f32, unit: &str| format!("{:.1}{unit}", v / div);
    if a >= 1e9 {
        scaled(1e9, "G")
    } else if a >= 1e6 {
        scaled(1e6, "M")
    } else if a >= 1e4 {
        scaled(1e3, "k")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `44 B`, `20.0 MB` (powers of 1000, as traffic is billed).
pub fn bytes(v: f32) -> String {
    if !v.is_finite() {
        return human(v);
    }
    let a = v.abs();
    for (div, unit) in [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")] {
        if a >= div {
            return format!("{:.1} {unit}", v / div);
        }
    }
    format!("{v:.0} B")
}

/// Seconds as a person says them: `4 s`, `1.5 s`, `80 s`, `12 min`,
/// `23 h`, `3.2 d`.
pub fn duration(v: f32) -> String {
    if !v.is_finite() {
        return human(v);
    }
    let a = v.abs();
    if a >= 2.0 * 86_400.0 {
        format!("{:.1} d", v / 86_400.0)
    } else if a >= 2.0 * 3600.0 {
        format!("{:.0} h", v / 3600.0)
    } else if a >= 3600.0 {
        format!("{:.1} h", v / 3600.0)
    } else if a >= 120.0 {
        format!("{:.0} min", v / 60.0)
    } else if a >= 10.0 || v.fract() == 0.0 || a < 0.05 {
        format!("{v:.0} s")
    } else {
        format!("{v:.1} s")
    }
}

/// A share in [0, 1] as `98 %`.
pub fn percent(v: f32) -> String {
    if v.is_finite() {
        format!("{:.0} %", v * 100.0)
    } else {
        human(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(human(412.0), "412");
        assert_eq!(human(0.375), "0.38");
        assert_eq!(human(12_345.0), "12.3k");
        assert_eq!(human(4_500_000.0), "4.5M");
        assert_eq!(human(f32::NAN), "?");
        assert_eq!(bytes(44.0), "44 B");
        assert_eq!(bytes(20_017_724.0), "20.0 MB");
        assert_eq!(percent(0.98), "98 %");
        assert_eq!(duration(80.02), "80 s");
        assert_eq!(duration(1.5), "1.5 s");
        assert_eq!(duration(0.0), "0 s");
        assert_eq!(duration(0.02), "0 s");
        assert_eq!(duration(720.0), "12 min");
        assert_eq!(duration(5400.0), "1.5 h");
        assert_eq!(duration(82_080.0), "23 h");
        assert_eq!(duration(3.2 * 86_400.0), "3.2 d");
    }
}
