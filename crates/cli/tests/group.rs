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

#[path = "../../stream/tests/support/nats.rs"]
mod nats;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nats::{free_port, start as nats_server};
use run::{day, flowhound, http, model, ok, s, tcp_port};
use serde_json::Value;

fn worker(model: &str, url: &str, name: &str, dir: &Path, extra: &[&str]) -> (Child, PathBuf) {
    let err = dir.join(format!("{name}.err"));
    let sink = dir.join(format!("{name}-alerts.jsonl"));
    let child = Command::new(env!("CARGO_BIN_EXE_flowhound"))
        .args(["worker", "-m", model, "--nats", url, "--name", name, "--all", "--idle-exit", "5s"])
        .args(["--checkpoint", "2s", "--lease", "3s", "--sink", &format!("jsonl:{}", s(&sink))])
        // The sinks' own dedup memory lives in the spool folder: one per test run.
        .args(["--spool-dir", &s(&dir.join(format!("{name}-spool")))])
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
        // A cluster that lost a node may take a while to place a consumer.
        let deadline = Instant::now() + Duration::from_secs(60);
        let consumer = loop {
            match st.create_consumer(config.clone()).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("note: consumer not made yet ({e}); again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("consumer: {e}"),
            }
        };
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

/// The summary line a worker ends with, and whether it says it resumed a
/// partition from a checkpoint another worker left.
fn restored_some(err: &Path) -> bool {
    let text = std::fs::read_to_string(err).unwrap_or_default();
    let line = text.lines().rev().find(|l| l.contains("partitions claimed")).unwrap_or_default().to_string();
    line.split("(restored ").nth(1).and_then(|r| r.split(')').next()).and_then(|n| n.parse::<u32>().ok()).unwrap_or(0)
        > 0
}

/// Waits until a worker's status line says it has scored rows; returns
/// which worker.
fn wait_scoring(errs: &[&Path]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for (i, err) in errs.iter().enumerate() {
            let text = std::fs::read_to_string(err).unwrap_or_default();
            if text.lines().any(|l| l.contains(" rows scored") && !l.contains(", 0 rows scored")) {
                return i;
            }
        }
        let texts: Vec<String> = errs.iter().map(|e| std::fs::read_to_string(e).unwrap_or_default()).collect();
        assert!(Instant::now() < deadline, "no worker scored: {texts:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The group tests run one at a time: each runs three workers and up to
/// three servers, which share this machine's cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn a_worker_killed_mid_stream_loses_nothing_and_alerts_nothing_twice() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let Some(_server) = nats_server(port, &["-sd".into(), s(&dir.path().join("js"))]) else { return };
    let m = model(dir.path());
    let log = day(dir.path(), "day.log", "2026-11-03T00:00:00Z", "11", "150000");
    let detect = detect_all(&m, &log);
    let url = format!("nats://127.0.0.1:{port}/K");
    ok(&flowhound(&[], &["publish", &s(&log), "--to", &url, "--partitions", "8", "-q"]));
    let names = ["k1", "k2", "k3"];
    let mut workers: Vec<_> = names.iter().map(|n| worker(&m, &url, n, dir.path(), &["--status", "1s"])).collect();
    let errs: Vec<PathBuf> = workers.iter().map(|w| w.1.clone()).collect();
    let busy = wait_scoring(&errs.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    // Past its first checkpoints, far from done.
    std::thread::sleep(Duration::from_secs(3));
    let (mut dead, _) = workers.remove(busy);
    // kill -9: no state saved, no lease given back.
    dead.kill().expect("kill -9");
    let _ = dead.wait();
    let errs: Vec<PathBuf> = workers.iter().map(|w| w.1.clone()).collect();
    finish(workers);
    assert!(errs.iter().any(|e| restored_some(e)), "a survivor resumed a partition from its checkpoint");
    let group = by_flow(read(port, "K", "out"));
    assert_same_flows(&group, &detect);
    assert!(assert_alerted_once(dir.path(), &names) > 0);
}

#[test]
fn losing_a_node_of_a_three_node_cluster_loses_nothing() {
    let _one = one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let others: Vec<String> =
            (0..3).filter(|j| *j != i).map(|j| format!("nats://127.0.0.1:{}", routes[j])).collect();
        let args = vec![
            "-sd".to_string(),
            s(&dir.path().join(format!("n{i}"))),
            "--server_name".into(),
            format!("n{i}"),
            "--cluster_name".into(),
            "fh".into(),
            "--cluster".into(),
            format!("nats://127.0.0.1:{}", routes[i]),
            "--routes".into(),
            others.join(","),
        ];
        let Some(n) = nats_server(ports[i], &args) else { return };
        nodes.push(Some(n));
    }
    let m = model(dir.path());
    let log = day(dir.path(), "day.log", "2026-11-03T00:00:00Z", "12", "30000");
    let detect = detect_all(&m, &log);
    let url = format!("nats://127.0.0.1:{}/C", ports[0]);
    // The cluster elects its JetStream leader first.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = flowhound(&[], &["publish", &s(&log), "--to", &url, "--partitions", "8", "--replicas", "3", "-q"]);
        if o.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", String::from_utf8_lossy(&o.stderr));
        std::thread::sleep(Duration::from_millis(500));
    }
    let names = ["c1", "c2", "c3"];
    let workers: Vec<_> =
        names.iter().map(|n| worker(&m, &url, n, dir.path(), &["--status", "1s", "--replicas", "3"])).collect();
    let errs: Vec<PathBuf> = workers.iter().map(|w| w.1.clone()).collect();
    wait_scoring(&errs.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    // kill -9 a node the workers do not talk to: the streams' leaders on it move.
    if let Some(Some(mut n)) = nodes.pop() {
        let _ = n.0.kill();
        let _ = n.0.wait();
    }
    finish(workers);
    let group = by_flow(read(ports[0], "C", "out"));
    assert_same_flows(&group, &detect);
    assert!(assert_alerted_once(dir.path(), &names) > 0);
}

#[test]
fn three_workers_give_detects_findings_flow_by_flow_and_its_incidents() {
    let _one = one_at_a_time();
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
    // A dashboard opened afterwards reads the group's results from the
    // stream's start: its incidents come (by their own subject) well ahead
    // of many of their flows.
    let (addr, dash) = serve_group(dir.path(), &m, &url);
    let group = by_flow(read(port, "G", "out"));
    assert_same_flows(&group, &detect);
    // `watch` reads the group's lines: the same.
    let lines = dir.path().join("watched.jsonl");
    ok(&flowhound(&[], &["watch", "-m", &m, "--source", &url, "-o", &s(&lines), "--idle-exit", "3s", "-q"]));
    let watched = std::fs::read_to_string(&lines).expect("watch wrote lines");
    let watched = by_flow(watched.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect());
    assert_same_flows(&watched, &detect);
    assert_dashboard_shows(&addr, &dash, &detect, &truth);
    let ended = ended_incidents(port, "G");
    let missing: Vec<_> = truth.difference(&ended).collect();
    let extra: Vec<_> = ended.difference(&truth).collect();
    assert!(missing.is_empty() && extra.is_empty(), "incidents differ: missing {missing:?}, extra {extra:?}");
    assert!(assert_alerted_once(dir.path(), &names) > 0, "the sinks heard of the incidents");
}

/// `serve --watch nats://…`: the dashboard reading a group; its address and
/// the server (stopped when dropped).
fn serve_group(dir: &Path, model: &str, url: &str) -> (String, Server) {
    let addr = format!("127.0.0.1:{}", tcp_port());
    let err = dir.join("serve.err");
    let db = s(&dir.join("db").join("flowhound.db"));
    let child = Command::new(env!("CARGO_BIN_EXE_flowhound"))
        .args(["serve", "-m", model, "--db", &db, "--addr", &addr, "--watch", url])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("flowhound serve runs");
    let server = Server(child, err);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "serve did not start: {}", server.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    (addr, server)
}

struct Server(Child, PathBuf);

impl Server {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The dashboard's live analysis of the group holds what `detect` finds:
/// the flows counted, by severity; each flagged flow with detect's score;
/// the ended incidents; and each incident's flows assigned to it, though
/// incidents and flows reach the dashboard by separate subjects.
fn assert_dashboard_shows(addr: &str, dash: &Server, detect: &BTreeMap<u64, Value>, truth: &BTreeSet<String>) {
    let (st, live) = http(addr, "GET", "/api/live", None);
    assert_eq!(st, 200, "{live} {}", dash.stderr());
    let id = live["analysis_id"].as_i64().expect("a live analysis");
    let flagged: BTreeMap<u64, &Value> =
        detect.iter().filter(|(_, v)| v["severity"] != "none").map(|(n, v)| (*n, v)).collect();
    let sev = |s: &str| detect.values().filter(|v| v["severity"] == s).count() as u64;
    // The dashboard reads behind the group: wait for it to catch up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (summary, incidents) = loop {
        let (_, a) = http(addr, "GET", &format!("/api/analyses/{id}"), None);
        let (_, inc) = http(addr, "GET", &format!("/api/analyses/{id}/incidents"), None);
        let summary = a["summary"].clone();
        let n = inc.as_array().map_or(0, Vec::len);
        if (summary["flows"] == 30000 && summary["anomalies"] == flagged.len() && n == truth.len())
            || Instant::now() > deadline
        {
            break (summary, inc);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(summary["flows"], 30000, "{summary} {}", dash.stderr());
    assert_eq!(summary["anomalies"], flagged.len(), "{summary}");
    let by = &summary["by_severity"];
    assert_eq!(
        (&by["high"], &by["medium"], &by["low"]),
        (&sev("high").into(), &sev("medium").into(), &sev("low").into())
    );
    let incidents = incidents.as_array().expect("incidents");
    let shown: BTreeSet<String> = incidents.iter().map(incident_key).collect();
    assert_eq!(&shown, truth, "the dashboard's incidents are detect's");

    // Page by page, as the page reads them.
    let mut items = Vec::new();
    loop {
        let path = format!("/api/analyses/{id}/anomalies?limit=5000&offset={}", items.len());
        let (st, page) = http(addr, "GET", &path, None);
        assert_eq!(st, 200, "{page}");
        let got = page["items"].as_array().expect("items");
        if got.is_empty() {
            break;
        }
        items.extend(got.iter().cloned());
    }
    assert_eq!(items.len(), flagged.len());
    let mut per_incident: BTreeMap<u64, u64> = BTreeMap::new();
    for v in &items {
        let n = v["flow"].as_u64().expect("flow");
        let d = flagged.get(&n).unwrap_or_else(|| panic!("flow {n} is not one detect flags"));
        assert_eq!(
            (&v["score"], &v["severity"], &v["threat_class"]),
            (&d["score"], &d["severity"], &d["threat_class"])
        );
        if let Some(i) = v["incident"].as_u64() {
            *per_incident.entry(i).or_default() += 1;
        }
    }
    for i in incidents {
        let id = i["incident"].as_u64().expect("incident id");
        assert_eq!(per_incident.get(&id).copied().unwrap_or(0), i["flows"].as_u64().expect("flows"), "incident {i}");
    }
}
