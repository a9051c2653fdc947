//! `flowhound watch` end to end: a replayed file gives `detect`'s findings; a
//! followed file survives appends, half-written lines, rotation, truncation
//! and a restart without losing or repeating a record; softflowd (a real
//! exporter) replays the nmap SYN scan capture as NetFlow v5, v9 and IPFIX and
//! every record it says it exported arrives, the scan as a `port_scan`
//! incident; captures read directly agree with tshark's conversations.

#[path = "aws/run.rs"]
mod run;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use run::{day, flowhound, http, model, ok, s, tcp_port};
use serde_json::Value;

fn spawn(args: &[&str], stderr: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_flowhound"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).expect("stderr file"))
        .spawn()
        .expect("flowhound runs")
}

/// SIGTERM, then the exit status: watch drains and exits 0.
fn stop(mut c: Child, stderr: &Path) {
    let st = Command::new("kill").args(["-TERM", &c.id().to_string()]).status().expect("kill runs");
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(code) = c.try_wait().expect("wait") {
            let err = std::fs::read_to_string(stderr).unwrap_or_default();
            assert_eq!(code.code(), Some(0), "{err}");
            return;
        }
        assert!(Instant::now() < deadline, "watch did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The whole lines of a file a running watch is writing: the last one may
/// still be half written (a batch goes out in one write, which a reader can
/// meet half done), and a kill -9 may have torn one line, which the restart
/// ends and leaves alone — so lines that do not parse are counted, not
/// taken.
fn lines_so_far(p: &Path) -> (Vec<Value>, usize) {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut bad = 0;
    let good = whole.lines().filter_map(|l| serde_json::from_str(l).map_err(|_| bad += 1).ok()).collect();
    (good, bad)
}

/// Waits until `p` holds at least `n` lines.
fn wait_lines(p: &Path, n: usize, stderr: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = std::fs::read_to_string(p).map(|t| t.lines().count()).unwrap_or(0);
        if have >= n {
            return;
        }
        let err = std::fs::read_to_string(stderr).unwrap_or_default();
        assert!(Instant::now() < deadline, "{have} of {n} lines in {}; stderr: {err}", p.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A flow's identity in output lines.
fn key(v: &Value) -> String {
    ["time", "src", "dst", "src_port", "dst_port", "protocol"]
        .iter()
        .map(|k| v[*k].to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn multiset(vals: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for v in vals {
        *m.entry(key(v)).or_default() += 1;
    }
    m
}

#[test]
fn a_replayed_file_gives_detects_findings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    let log = day(dir.path(), "day.log", "2026-11-03T00:00:00Z", "7", "8000");
    let detect_out = dir.path().join("detect.jsonl");
    ok(&flowhound(&[], &["detect", "-m", &m, &s(&log), "-o", &s(&detect_out), "-q"]));
    let watch_out = dir.path().join("watch.jsonl");
    let o = flowhound(
        &[],
        &[
            "watch",
            "-m",
            &m,
            "--source",
            &format!("file:{}", s(&log)),
            "-o",
            &s(&watch_out),
            "--idle-exit",
            "2s",
            "--state-dir",
            &s(&dir.path().join("state")),
        ],
    );
    let err = ok(&o);
    let (a, b) = (std::fs::read(&detect_out).expect("detect output"), std::fs::read(&watch_out).expect("watch output"));
    assert!(a.len() > 1000, "detect found anomalies to compare");
    assert!(a == b, "watch and detect differ; watch said: {err}");
    assert!(err.contains("8000 flows"), "{err}");
}

/// `watch --all` following `dir/flows.log` into `dir/out.jsonl`, its
/// stderr to `dir/watch.err`, state in `dir/state`.
struct Follow {
    p: PathBuf,
    out: PathBuf,
    err: PathBuf,
    args: Vec<String>,
}

fn follow(dir: &Path, model: &str, more: &[&str]) -> Follow {
    let (p, out, err) = (dir.join("flows.log"), dir.join("out.jsonl"), dir.join("watch.err"));
    let src = format!("file:{}", s(&p));
    let state = s(&dir.join("state"));
    let mut args: Vec<String> =
        ["watch", "-m", model, "--source", &src, "--all", "-o", &s(&out), "--state-dir", &state]
            .map(String::from)
            .to_vec();
    args.extend(["--poll", "50ms", "--flush", "50ms"].map(String::from));
    args.extend(more.iter().map(|a| a.to_string()));
    Follow { p, out, err, args }
}

/// Writes `recs` (VPC lines) to `f`.
fn append(p: &Path, recs: &[&str]) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(p).expect("open for append");
    for r in recs {
        writeln!(f, "{r}").expect("write");
    }
}

#[test]
fn a_followed_file_loses_nothing_and_repeats_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    let log = day(dir.path(), "day.log", "2026-11-03T00:00:00Z", "9", "2600");
    let text = std::fs::read_to_string(&log).expect("log");
    let mut all = text.lines();
    let header = all.next().expect("header line");
    let recs: Vec<&str> = all.collect();
    assert_eq!(recs.len(), 2600);
    // What every flow looks like in the output, from detect --all on the lot.
    let expected = {
        let o = flowhound(&[], &["detect", "-m", &m, &s(&log), "--all", "-q"]);
        ok(&o);
        let v: Vec<Value> =
            String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
        multiset(&v)
    };

    let Follow { p, out, err, args } = follow(dir.path(), &m, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut lines_in = vec![header];
    lines_in.extend(&recs[..1000]);
    append(&p, &lines_in);
    let w = spawn(&args, &err);
    wait_lines(&out, 1000, &err);

    // Appends, one line written in two halves.
    append(&p, &recs[1000..1499]);
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).expect("open");
        let (a, b) = recs[1499].split_at(20);
        f.write_all(a.as_bytes()).expect("write");
        f.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(300));
        writeln!(f, "{b}").expect("write");
    }
    wait_lines(&out, 1500, &err);

    // Rotation: the old file gets its last lines after the rename, then a
    // new file (with its own header) takes the name.
    let rotated = dir.path().join("flows.log.1");
    std::fs::rename(&p, &rotated).expect("rename");
    append(&rotated, &recs[1500..1600]);
    let mut fresh = vec![header];
    fresh.extend(&recs[1600..2000]);
    append(&p, &fresh);
    wait_lines(&out, 2000, &err);

    // copytruncate: emptied in place, then written again from the start.
    std::fs::OpenOptions::new().write(true).truncate(true).open(&p).expect("truncate");
    std::thread::sleep(Duration::from_millis(300));
    let mut again = vec![header];
    again.extend(&recs[2000..2300]);
    append(&p, &again);
    wait_lines(&out, 2300, &err);
    stop(w, &err);

    // Written while watch was down; the restart resumes at the saved offset.
    append(&p, &recs[2300..2600]);
    let w = spawn(&args, &err);
    wait_lines(&out, 2600, &err);
    std::thread::sleep(Duration::from_millis(500));
    stop(w, &err);

    let got = lines(&out);
    assert_eq!(got.len(), 2600, "every record once");
    assert_eq!(multiset(&got), expected);
}

/// `Flows exported: 1994 (2002 records) in 64 packets` → 2002.
fn exported_records(softflowd_out: &str) -> Option<u64> {
    let l = softflowd_out.lines().find(|l| l.trim_start().starts_with("Flows exported:"))?;
    let inner = l.split('(').nth(1)?;
    inner.split_whitespace().next()?.parse().ok()
}

fn scrape(addr: &str) -> String {
    let Ok(mut c) = std::net::TcpStream::connect(addr) else { return String::new() };
    // The endpoint is HTTP/1.1 and keeps connections alive unless asked not to.
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = c.read_to_string(&mut body);
    body
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("a free port")
}

fn have(tool: &str) -> bool {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    if !found {
        // CI installs them: there a missing tool is a failure, not a skip.
        assert!(std::env::var_os("FLOWHOUND_REQUIRE_TOOLS").is_none(), "{tool} is required here but not installed");
        eprintln!("note: {tool} not installed; skipping (CI installs it)");
    }
    found
}

fn pcaps() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    flowhound_source::datasets_dir(&repo).map(|d| d.join("pcaps"))
}

#[test]
fn softflowd_exports_arrive_whole_and_the_syn_scan_is_a_port_scan() {
    let (Some(pcaps), true) = (pcaps(), have("softflowd")) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    let scan = pcaps.join("ppa_synscan.pcapng");
    for version in ["5", "9", "10"] {
        let port = free_port();
        let mport = tcp_port();
        let out = dir.path().join(format!("incidents-v{version}.jsonl"));
        let err = dir.path().join(format!("watch-v{version}.err"));
        let maddr = format!("127.0.0.1:{mport}");
        let w = spawn(
            &[
                "watch",
                "-m",
                &m,
                "--source",
                &format!("netflow:127.0.0.1:{port}"),
                "--incidents",
                "-o",
                &s(&out),
                "--metrics",
                &maddr,
                "--state-dir",
                &s(&dir.path().join("state")),
                "--status",
                "0s",
            ],
            &err,
        );
        // The collector is up once the metrics answer.
        let deadline = Instant::now() + Duration::from_secs(20);
        while scrape(&maddr).is_empty() {
            assert!(
                Instant::now() < deadline,
                "watch did not start: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let sf = Command::new("softflowd")
            .args(["-r", &s(&scan), "-n", &format!("127.0.0.1:{port}"), "-v", version, "-D"])
            .output()
            .expect("softflowd runs");
        let said = String::from_utf8_lossy(&sf.stdout).into_owned() + &String::from_utf8_lossy(&sf.stderr);
        let want = exported_records(&said).unwrap_or_else(|| panic!("softflowd's summary: {said}"));
        assert!(want >= 1994, "{said}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let received = loop {
            let text = scrape(&maddr);
            let got = metric(&text, "flowhound_flows_received_total").unwrap_or(0);
            let scored = metric(&text, "flowhound_flows_scored_total").unwrap_or(0);
            if (got >= want && scored >= want) || Instant::now() > deadline {
                assert_eq!(metric(&text, "flowhound_flows_dropped_total"), Some(0), "{text}");
                break got;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(received, want, "NetFlow v{version}: every record softflowd exported arrived");
        stop(w, &err);
        // The scan's incident: written when it opens (and if it grows
        // worse), then once more, whole, when it ends — one id throughout.
        let incidents = lines(&out);
        let scan: Vec<&Value> =
            incidents.iter().filter(|i| i["threat_class"] == "port_scan" && i["actor"] == "172.16.0.8").collect();
        let (Some(first), Some(last)) = (scan.first(), scan.last()) else {
            panic!("v{version}: no port_scan incident in {incidents:?}")
        };
        assert_eq!((&first["status"], &last["status"]), (&Value::from("open"), &Value::from("closed")), "{scan:?}");
        assert!(scan.iter().all(|i| i["incident"] == first["incident"]), "{scan:?}");
        assert!(last["flows"].as_u64().is_some_and(|n| n >= 1900), "{last}");
    }
}

#[test]
fn captures_match_tsharks_conversations() {
    let (Some(pcaps), true) = (pcaps(), have("tshark")) else { return };
    for name in [
        "ppa_synscan.pcapng",
        "ppa_tcp_ports.pcapng",
        "ppa_arppoison.pcapng",
        "ppa_sessionhijacking.pcapng",
        "ppa_activeosfingerprinting.pcapng",
    ] {
        let f = pcaps.join(name);
        // Unordered endpoint pair → packets, for TCP and UDP.
        let mut theirs: BTreeMap<(String, String), u64> = BTreeMap::new();
        for proto in ["tcp", "udp"] {
            let o = Command::new("tshark")
                .args(["-r", &s(&f), "-q", "-z", &format!("conv,{proto}")])
                .output()
                .expect("tshark");
            for l in String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.contains("<->")) {
                let t: Vec<&str> = l.split_whitespace().collect();
                // a <-> b  frames bytes unit  frames bytes unit  frames …
                let (a, b) = (t[0].to_string(), t[2].to_string());
                let total: u64 = t[9].parse().expect("total frames");
                theirs.insert(if a < b { (a, b) } else { (b, a) }, total);
            }
        }
        let o = flowhound(&[], &["convert", "--to", "jsonl", &s(&f), "-q"]);
        ok(&o);
        let mut ours = BTreeMap::new();
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            let v: Value = serde_json::from_str(l).expect("JSON");
            if !matches!(v["protocol"].as_u64(), Some(6 | 17)) {
                continue;
            }
            let a = format!("{}:{}", v["src"].as_str().unwrap_or(""), v["src_port"]);
            let b = format!("{}:{}", v["dst"].as_str().unwrap_or(""), v["dst_port"]);
            *ours.entry(if a < b { (a, b) } else { (b, a) }).or_insert(0) += v["packets"].as_u64().unwrap_or(0);
        }
        assert_eq!(ours, theirs, "{name}");
    }
}

/// A child killed if the test panics before stopping it (a failed assertion
/// must not leave a server running).
struct Running(Option<Child>);

impl Running {
    fn take(mut self) -> Child {
        self.0.take().expect("still running")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `serve --watch SOURCE` on a database and watch state inside `dir`.
fn serve_watch(dir: &Path, model: &str, addr: &str, source: &str) -> Vec<String> {
    let db = s(&dir.join("db").join("flowhound.db"));
    let state = s(&dir.join("state"));
    ["serve", "-m", model, "--db", &db, "--addr", addr, "--watch", source, "--state-dir", &state]
        .map(String::from)
        .to_vec()
}

/// One HTTP/1.0 exchange (the server closes after it): status and body.
/// Server-sent events read into a shared text as they arrive.
fn sse(addr: &str, path: &str) -> std::sync::Arc<std::sync::Mutex<String>> {
    let mut c = std::net::TcpStream::connect(addr).expect("the dashboard answers");
    c.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).expect("request sent");
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let into = std::sync::Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().expect("lock").push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// Every complete event of `kind` so far, parsed.
fn events(text: &std::sync::Mutex<String>, kind: &str) -> Vec<Value> {
    let t = text.lock().expect("lock").clone();
    t.split("\n\n")
        .filter(|b| b.lines().any(|l| l == format!("event: {kind}")))
        .filter_map(|b| b.lines().find_map(|l| l.strip_prefix("data: ")).and_then(|d| serde_json::from_str(d).ok()))
        .collect()
}

/// Waits until the live summary counts `flows` scored flows.
fn wait_scored(text: &std::sync::Mutex<String>, flows: u64, stderr: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(s) = events(text, "summary").into_iter().rev().find(|s| s["flows"].as_u64() >= Some(flows)) {
            return s;
        }
        let err = std::fs::read_to_string(stderr).unwrap_or_default();
        assert!(Instant::now() < deadline, "no summary of {flows} flows; stderr: {err}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_live_dashboard_shows_watch_findings_as_they_come_and_takes_feedback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    let day1 = day(dir.path(), "day1.log", "2026-11-03T00:00:00Z", "7", "8000");
    let day2 = day(dir.path(), "day2.log", "2026-11-04T00:00:00Z", "7", "8000");
    let detect_out = dir.path().join("detect.jsonl");
    ok(&flowhound(&[], &["detect", "-m", &m, &s(&day1), "-o", &s(&detect_out), "-q"]));
    let detected = lines(&detect_out);

    let text1 = std::fs::read_to_string(&day1).expect("day 1");
    let mut recs1 = text1.lines();
    let live = dir.path().join("live.log");
    append(&live, &[recs1.next().expect("a header")]);
    let addr = format!("127.0.0.1:{}", tcp_port());
    let stderr = dir.path().join("serve.err");
    let args = serve_watch(dir.path(), &m, &addr, &format!("file:{}", s(&live)));
    let serve = Running(Some(spawn(&args.iter().map(String::as_str).collect::<Vec<_>>(), &stderr)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        if let Ok(c) = std::net::TcpStream::connect(&addr) {
            drop(c);
            let (st, v) = http(&addr, "GET", "/api/live", None);
            assert_eq!(st, 200);
            break v["analysis_id"].as_i64().expect("a live analysis");
        }
        assert!(
            Instant::now() < deadline,
            "serve did not start: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stream = sse(&addr, "/api/live/events");
    let deadline = Instant::now() + Duration::from_secs(10);
    while events(&stream, "hello").is_empty() {
        assert!(Instant::now() < deadline, "no hello event");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(events(&stream, "hello")[0]["analysis_id"].as_i64(), Some(id));

    // Day 1 arrives in four appends, as a growing log does.
    let rest: Vec<&str> = recs1.collect();
    for part in rest.chunks(2000) {
        append(&live, part);
        std::thread::sleep(Duration::from_millis(700));
    }
    let summary = wait_scored(&stream, 8000, &stderr);
    assert_eq!(summary["flows"].as_u64(), Some(8000));
    assert_eq!(summary["anomalies"].as_u64(), Some(detected.len() as u64), "{summary}");

    // The live analysis holds exactly detect's findings, newest first.
    let (st, page) = http(&addr, "GET", &format!("/api/analyses/{id}/anomalies?limit=5000&order=newest"), None);
    assert_eq!(st, 200);
    let items = page["items"].as_array().expect("items");
    assert_eq!(page["total"].as_u64(), Some(detected.len() as u64));
    let flows: Vec<u64> = items.iter().map(|v| v["flow"].as_u64().expect("flow")).collect();
    assert!(flows.windows(2).all(|w| w[0] > w[1]), "newest first");
    let got: BTreeMap<u64, (String, String)> = items
        .iter()
        .map(|v| (v["flow"].as_u64().unwrap_or(0), (v["severity"].to_string(), v["score"].to_string())))
        .collect();
    let want: BTreeMap<u64, (String, String)> = detected
        .iter()
        .map(|v| (v["flow"].as_u64().unwrap_or(0), (v["severity"].to_string(), v["score"].to_string())))
        .collect();
    assert!(got == want, "the live analysis and detect differ");
    // Every pushed flow is one of them, and pushes came in several batches.
    let pushed = events(&stream, "anomaly");
    assert!(pushed.iter().all(|v| want.contains_key(&v["flow"].as_u64().unwrap_or(u64::MAX))));
    assert!(events(&stream, "summary").len() >= 3, "a summary per batch: {}", events(&stream, "summary").len());
    assert!(pushed.len() >= 100, "{} flows pushed", pushed.len());

    // Incidents as pushed are the ones stored; the port scanner is one.
    let (_, incidents) = http(&addr, "GET", &format!("/api/analyses/{id}/incidents"), None);
    let incidents = incidents.as_array().expect("incidents").clone();
    let pushed_ids: std::collections::BTreeSet<u64> =
        events(&stream, "incident").iter().filter_map(|i| i["incident"].as_u64()).collect();
    let stored_ids: std::collections::BTreeSet<u64> = incidents.iter().filter_map(|i| i["incident"].as_u64()).collect();
    assert_eq!(pushed_ids, stored_ids);
    let scan = incidents
        .iter()
        .find(|i| i["threat_class"] == "port_scan" && i["actor_role"] == "source")
        .expect("a port_scan incident");
    let actor = scan["actor"].as_str().expect("an actor").to_string();

    // The analyst says the scanner is a false positive and allowlists it, as the page does.
    let (st, fb) = http(
        &addr,
        "POST",
        "/api/feedback",
        Some(&serde_json::json!({"analysis_id": id, "incident_id": scan["incident"], "verdict": "false_positive"})),
    );
    assert_eq!(st, 201, "{fb}");
    // Every flow of the incident.
    assert!(fb["flows"].as_u64() >= Some(1) && fb["flows"] == scan["flows"], "{fb} for {scan}");
    let suggestion = fb["allowlist_suggestion"].clone();
    assert!(suggestion.to_string().contains(&actor), "{suggestion}");
    let (st, _) =
        http(&addr, "POST", "/api/allowlist", Some(&serde_json::json!({"entry": suggestion, "feedback_id": fb["id"]})));
    assert_eq!(st, 201);
    // The watch re-reads the allowlist every 2 s: day 2 (same network, same
    // scanner) comes after that, and its scan is suppressed.
    std::thread::sleep(Duration::from_secs(3));
    let text2 = std::fs::read_to_string(&day2).expect("day 2");
    append(&live, &text2.lines().skip(1).collect::<Vec<_>>());
    wait_scored(&stream, 16000, &stderr);
    let (_, page) = http(&addr, "GET", &format!("/api/analyses/{id}/anomalies?limit=5000&class=port_scan"), None);
    let from_actor: Vec<&Value> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|v| v["flow"].as_u64() >= Some(8000) && v["src"] == actor.as_str())
        .collect();
    // At the 0.5 % budget only the scan's most unusual flows are anomalies.
    assert!(!from_actor.is_empty(), "the scanner came back: {}", from_actor.len());
    assert!(from_actor.iter().all(|v| v["suppressed"] == true), "day 2's scan is suppressed");
    // The feedback is kept on the live analysis' flows.
    let (_, page) = http(&addr, "GET", &format!("/api/analyses/{id}/anomalies?limit=5000&class=port_scan"), None);
    assert!(page["items"].as_array().expect("items").iter().any(|v| v["feedback"] == "false_positive"));

    // SIGTERM: the watch drains, the analysis ends as `stopped`, pages hear it, exit 0.
    stop(serve.take(), &stderr);
    let end = events(&stream, "end");
    assert_eq!(end.len(), 1, "one end event");
    assert_eq!(end[0]["status"], "stopped");
}

#[test]
fn serve_refuses_a_live_source_it_cannot_open_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    // The collector's port is taken: the watch cannot start, so neither does the server.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let port = taken.local_addr().expect("its address").port();
    let args = serve_watch(dir.path(), &m, &format!("127.0.0.1:{}", tcp_port()), &format!("netflow:127.0.0.1:{port}"));
    let o = flowhound(&[], &args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "the error names the address: {err}");
    assert!(!err.contains("dashboard on http"), "the server did not start: {err}");
    // Sinks without a watch are a usage error too.
    let db = dir.path().join("db").join("flowhound.db");
    let o = flowhound(&[], &["serve", "-m", &m, "--db", &s(&db), "--sink", "jsonl:-"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("give --watch"));
}

/// kill -9 mid-stream, then a restart: every flow, those scored before the
/// kill and those after, carries the score `detect` gives it on the whole
/// file — the window state came back with the offsets it covers.
#[test]
fn a_watch_killed_hard_resumes_with_detects_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    let log = day(dir.path(), "day.log", "2026-11-03T00:00:00Z", "11", "6000");
    let text = std::fs::read_to_string(&log).expect("log");
    let mut all = text.lines();
    let header = all.next().expect("header line");
    let recs: Vec<&str> = all.collect();
    let score = |v: &Value| format!("{} {} {}", v["score"], v["votes"], v["severity"]);
    let expected: BTreeMap<String, String> = {
        let o = flowhound(&[], &["detect", "-m", &m, &s(&log), "--all", "-q"]);
        ok(&o);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
            .map(|v| (key(&v), score(&v)))
            .collect()
    };
    assert_eq!(expected.len(), recs.len(), "flow identities are unique");

    let Follow { p, out, err, args } = follow(dir.path(), &m, &["--checkpoint", "200ms"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut first = vec![header];
    first.extend(&recs[..3000]);
    append(&p, &first);
    let mut w = spawn(&args, &err);
    wait_lines(&out, 3000, &err);
    // Past a checkpoint, then no chance to save anything more.
    std::thread::sleep(Duration::from_millis(800));
    w.kill().expect("kill -9");
    let _ = w.wait();

    append(&p, &recs[3000..]);
    let w = spawn(&args, &err);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let seen: std::collections::BTreeSet<String> = lines_so_far(&out).0.iter().map(key).collect();
        if seen.len() == recs.len() {
            break;
        }
        let e = std::fs::read_to_string(&err).unwrap_or_default();
        assert!(Instant::now() < deadline, "{} of {} flows; stderr: {e}", seen.len(), recs.len());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop(w, &err);
    let e = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(e.contains("window state restored"), "{e}");
    let (got, torn) = lines_so_far(&out);
    assert!(torn <= 1, "{torn} lines do not parse: one kill tears at most one");
    let differ: Vec<String> = got
        .iter()
        .filter(|v| expected.get(&key(v)) != Some(&score(v)))
        .map(|v| format!("{} {} (detect: {:?})", key(v), score(v), expected.get(&key(v))))
        .collect();
    assert!(
        differ.is_empty(),
        "{} of {} lines score otherwise than detect, e.g. {:?}",
        differ.len(),
        got.len(),
        &differ[..differ.len().min(3)]
    );
    // Read again after the kill: at most what came after the last checkpoint.
    assert!(got.len() < recs.len() + 1000, "{} lines for {} flows", got.len(), recs.len());
}

/// Plain `serve` (no live source) stops on SIGTERM as on SIGINT: it drains
/// and exits 0, instead of dying by the signal (exit 143).
#[test]
fn serve_drains_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = model(dir.path());
    for sig in ["-TERM", "-INT"] {
        let addr = format!("127.0.0.1:{}", tcp_port());
        let db = s(&dir.path().join("db").join("flowhound.db"));
        let err = dir.path().join("serve.err");
        let c = Running(Some(spawn(&["serve", "-m", &m, "--db", &db, "--addr", &addr], &err)));
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "{}", std::fs::read_to_string(&err).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(http(&addr, "GET", "/api/health", None).0, 200);
        let mut c = c.take();
        let st = Command::new("kill").args([sig, &c.id().to_string()]).status().expect("kill runs");
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            if let Some(code) = c.try_wait().expect("wait") {
                break code;
            }
            assert!(Instant::now() < deadline, "serve did not stop on {sig}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let e = std::fs::read_to_string(&err).unwrap_or_default();
        assert_eq!(code.code(), Some(0), "{sig}: {e}");
    }
}
