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

use run::{day, flowhound, model, ok, s};
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

    let p = dir.path().join("flows.log");
    let out = dir.path().join("out.jsonl");
    let err = dir.path().join("watch.err");
    let state = s(&dir.path().join("state"));
    let src = format!("file:{}", s(&p));
    let args = [
        "watch",
        "-m",
        &m,
        "--source",
        &src,
        "--all",
        "-o",
        &s(&out),
        "--state-dir",
        &state,
        "--poll",
        "50ms",
        "--flush",
        "50ms",
    ];
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
    let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
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

fn tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("a free port")
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
        let incidents = lines(&out);
        let scan = incidents
            .iter()
            .find(|i| i["threat_class"] == "port_scan" && i["actor"] == "172.16.0.8")
            .unwrap_or_else(|| panic!("v{version}: no port_scan incident in {incidents:?}"));
        assert!(scan["flows"].as_u64().is_some_and(|n| n >= 1900), "{scan}");
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
