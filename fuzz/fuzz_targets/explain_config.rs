//! The two user-written TOML files of `detect`: the threat-class rule table
//! and the allowlist. Either parses or is an error; a parsed rule table can
//! classify and render any row without panicking.
#![no_main]

use flowhound_explain::rules::{Rules, Vars, WindowNames};
use flowhound_explain::Allowlist;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let names = ["proto", "dst_flows_60s", "src_distinct_dst_ports_1h", "bytes"];
    if let Ok(rules) = Rules::parse(text, &names, &WindowNames::new(&[60, 3600], 900)) {
        let r = flowhound_flow::FlowRecord::default();
        let pair = [20.0, 3600.0, 1.0, 0.0, 0.5, 300.0, 4000.0, 0.9, 0.9, 1.0, 80.0, 0.5, 4.0];
        for raw in [[6.0, 100.0, 40.0, 1e9], [f32::NAN, f32::INFINITY, -1.0, 0.0]] {
            let vars = Vars { raw: &raw, pair: &pair, score: 0.5, votes: 2.0 };
            for rule in rules.rules() {
                let _ = rule.matches(&vars);
                let _ = rule.reason(&vars, &r);
            }
        }
    }
    if let Ok(list) = Allowlist::parse(text, 1_795_000_000) {
        let _ = list.check(&flowhound_flow::FlowRecord::default());
    }
});
