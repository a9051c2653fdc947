//! A worker group on real JetStream servers on loopback ports: a generated
//! day with scans, floods and exfiltration published once and scored by
//! three `flowhound worker` processes gives, flow by flow, `detect --all`'s
//! score, votes, severity and class (bit-identical: the rows are the same
//! numbers) and `detect --incidents`' incidents; with a worker killed -9
//! mid-stream, and separately with a node of a 3-node cluster killed, every
//! flow is scored once in the output and no incident is alerted twice.
//! Skips with a note when `nats-server` is not installed (CI installs it).

#[path = "aws/run.rs"]
mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use run::{day, flowhound, model, ok, s};
use serde_json::Value;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `nats-server -js` with `args`, once it listens on `port`; `None` (a
/// note) when it is not installed.
fn nats_server(port: u16, args: &[String]) -> Option<Server> {
    let child = match Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            assert!(std::env::var_os("FLOWHOUND_REQUIRE_TOOLS").is_none(), "nats-server: {e}");
            eprintln!("note: nats-server not available ({e}): the worker group test is skipped");
            return None;
        }
    };
    let srv = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(srv)
}

fn worker(model: &str, url: &str, name: &str, dir: &Path, extra: &[&str]) -> (Child, PathBuf) {
    let err = dir.join(format!("{name}.err"));
    let sink = dir.join(format!("{name}-alerts.jsonl"));
    let child = Command::new(env!("CARGO_BIN_EXE_flowhound"))
        .args(["worker", "-m", model, "--nats", url, "--name", name, "--all", "--idle-exit", "5s"])
        .args(["--checkpoint", "1s", "--lease", "2s", "--sink", &format!("jsonl:{}", s(&sink))])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("flowhound worker runs");
    (child, err)
}

/// Waits for every worker to exit 0 on its idle exit.
fn finish(workers: Vec<(Child, PathBuf)>) {
    let deadline = Instant::now() + Duration::from_secs(240);
    for (mut c, err) in workers {
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                let text = std::fs::read_to_string(&err).unwrap_or_default();
                assert_eq!(st.code(), Some(0), "{text}");
                break;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("a worker did not finish: {}", std::fs::read_to_string(&err).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Every message of `STREAM.<kind>.*`, as JSON.
fn read(port: u16, stream: &str, kind: &str) -> Vec<Value> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let client = async_nats::connect(format!("127.0.0.1:{port}")).await.expect("connect");
        let js = async_nats::jetstream::new(client);
        let st = js.get_stream(stream).await.expect("stream");
        let config = async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: format!("{stream}.{kind}.*"),
            ..Default::default()
        };
        let consumer = st.create_consumer(config).await.expect("consumer");
        let mut out = Vec::new();
        let mut msgs = consumer.messages().await.expect("messages");
        loop {
            let next = tokio::time::timeout(Duration::from_secs(3), msgs.next()).await;
            let Ok(Some(Ok(m))) = next else { break };
            out.push(serde_json::from_slice(&m.payload).expect("a JSON message"));
            if m.info().expect("info").pending == 0 {
                break;
            }
        }
        out
    })
}

/// Per flow number, the line `detect --all` wrote.
fn by_flow(lines: Vec<Value>) -> BTreeMap<u64, Value> {
    let mut m = BTreeMap::new();
    for v in lines {
        let n = v["flow"].as_u64().expect("flow number");
        assert!(m.insert(n, v).is_none(), "flow {n} written twice");
    }
    m
}

fn detect_all(model: &str, log: &Path) -> BTreeMap<u64, Value> {
    let o = flowhound(&[], &["detect", "-m", model, &s(log), "--all", "-q"]);
    ok(&o);
    by_flow(String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON")).collect())
}

/// The group's output equals `detect --all`'s, flow by flow.
fn assert_same_flows(group: &BTreeMap<u64, Value>, detect: &BTreeMap<u64, Value>) {
    assert_eq!(group.len(), detect.len(), "every flow scored once");
    let mut differ = Vec::new();
    for (n, d) in detect {
        let g = &group[n];
        for k in ["score", "votes", "severity", "confidence", "threat_class", "reason", "models"] {
            if g[k] != d[k] {
                differ.push(format!("flow {n} {k}: group {} detect {}", g[k], d[k]));
            }
        }
    }
    assert!(differ.is_empty(), "{} differences, first: {:?}", differ.len(), &differ[..differ.len().min(5)]);
    let whole = detect.iter().filter(|(n, d)| group[*n] == **d).count();
    assert_eq!(whole, detect.len(), "whole lines equal");
}

/// An incident's identity and extent.
fn incident_key(v: &Value) -> String {
    ["threat_class", "actor", "first_seen", "last_seen", "flows", "severity", "distinct_targets"]
        .iter()
        .map(|k| v[*k].to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn ended_incidents(port: u16, stream: &str) -> BTreeSet<String> {
    let inc = read(port, stream, "inc");
    let closed: Vec<&Value> = inc.iter().filter(|v| v["status"] == "closed" && v["digest"] != true).collect();
    let keys: BTreeSet<String> = closed.iter().map(|v| incident_key(v)).collect();
    assert_eq!(keys.len(), closed.len(), "an incident ended twice");
    keys
}

/// Alerts the sinks of every worker received: none twice (same incident at
/// the same severity).
fn assert_alerted_once(dir: &Path, names: &[&str]) -> usize {
    let mut seen = BTreeSet::new();
    for n in names {
        let text = std::fs::read_to_string(dir.join(format!("{n}-alerts.jsonl"))).unwrap_or_default();
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).expect("an alert line");
            let k = (v["incident"].to_string(), v["severity"].to_string());
            assert!(seen.insert(k.clone()), "incident {k:?} alerted twice");
        }
    }
    seen.len()
}

#[test]
fn three_workers_give_detects_findings_flow_by_flow_and_its_incidents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let Some(_server) = nats_server(port, &["-sd".into(), s(&dir.path().join("js"))]) else { return };
    let m = model(dir.path());
    let log = day(dir.path(), "day.log", "2026-11-03T00:00:00Z", "8", "30000");
    let detect = detect_all(&m, &log);
    let truth: BTreeSet<String> = run::incidents(&m, &log).iter().map(incident_key).collect();
    assert!(truth.len() > 20, "a day with attacks has incidents: {}", truth.len());

    let url = format!("nats://127.0.0.1:{port}/G");
    ok(&flowhound(&[], &["publish", &s(&log), "--to", &url, "--partitions", "8", "-q"]));
    let names = ["w1", "w2", "w3"];
    let workers: Vec<_> = names.iter().map(|n| worker(&m, &url, n, dir.path(), &[])).collect();
    finish(workers);
    let group = by_flow(read(port, "G", "out"));
    assert_same_flows(&group, &detect);
    let ended = ended_incidents(port, "G");
    let missing: Vec<_> = truth.difference(&ended).collect();
    let extra: Vec<_> = ended.difference(&truth).collect();
    assert!(missing.is_empty() && extra.is_empty(), "incidents differ: missing {missing:?}, extra {extra:?}");
    assert!(assert_alerted_once(dir.path(), &names) > 0, "the sinks heard of the incidents");
}
