//! The `flowhound` binary as the sink tests drive it: generate a day of
//! traffic, train a model, list the incidents `detect` finds.

#![allow(dead_code, reason = "each test binary uses part of these")]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn flowhound(env: &[(&'static str, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowhound"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .output()
        .expect("flowhound runs")
}

pub fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{err}");
    err
}

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Generates a day of VPC flows (with injected attacks) and a model trained
/// on another day; returns the model folder.
pub fn day(dir: &Path, name: &str, start: &str, seed: &str, flows: &str) -> PathBuf {
    let log = dir.join(name);
    ok(&flowhound(&[], &["generate", "-o", &s(&log), "--flows", flows, "--seed", seed, "--start", start, "-q"]));
    log
}

pub fn model(dir: &Path) -> String {
    let log = day(dir, "train.log", "2026-11-01T00:00:00Z", "7", "15000");
    let m = dir.join("model");
    ok(&flowhound(&[], &["train", &s(&log), "-m", &s(&m), "--seed", "1", "-q"]));
    s(&m)
}

/// The incidents `detect --incidents` finds on a local copy: the truth the
/// sinks are checked against.
pub fn incidents(model: &str, log: &Path) -> Vec<Value> {
    incidents_with(model, log, &[])
}

/// [`incidents`] with more `detect` flags.
pub fn incidents_with(model: &str, log: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["detect", "-m", model];
    let log = s(log);
    args.extend([log.as_str(), "--incidents", "-q"]);
    args.extend(extra);
    let o = flowhound(&[], &args);
    ok(&o);
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

/// A free TCP port on loopback.
pub fn tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("a free port")
}

/// One HTTP/1.0 request to the dashboard: status and JSON body (`Null` when
/// the body is not JSON).
pub fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut c = std::net::TcpStream::connect(addr).expect("the dashboard answers");
    let body = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).expect("request sent");
    let mut text = String::new();
    c.read_to_string(&mut text).expect("response read");
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, serde_json::from_str(rest).unwrap_or(Value::Null))
}
