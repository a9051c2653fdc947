//! `detect --sink webhook:… / slack:… / ecs:…` against a local HTTP receiver
//! that fails on purpose: a 500, a request that hangs past the timeout, a
//! 400 that retrying cannot fix. Nothing here needs AWS.

#[path = "aws/run.rs"]
mod run;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use run::{day, flowhound, incidents, model, ok, s};
use serde_json::Value;

/// What the receiver does with the n-th request (0-based) on a path.
type Script = fn(&str, usize) -> Behaviour;

#[derive(Clone, Copy)]
enum Behaviour {
    Status(u16),
    /// Answers only after the client's timeout has passed.
    Hang,
    /// Answers 503 after 300 ms: a receiver that is down and slow to say so,
    /// which keeps a replay of the spool open while other runs append.
    SlowUnavailable,
}

#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

/// A tiny HTTP/1.1 server: one connection at a time, `Connection: close`.
fn receiver(script: Script) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let log = seen.clone();
    let counts: Arc<Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // A thread per connection: a hanging answer must not hold up the retry.
            let (log, counts) = (log.clone(), counts.clone());
            std::thread::spawn(move || serve(stream, script, &log, &counts));
        }
    });
    (url, seen)
}

fn serve(
    stream: std::net::TcpStream,
    script: Script,
    log: &Mutex<Vec<Request>>,
    counts: &Mutex<std::collections::HashMap<String, usize>>,
) {
    {
        {
            let mut r = BufReader::new(stream);
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                return;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut headers = Vec::new();
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.trim().split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            let behaviour = {
                let Ok(mut c) = counts.lock() else { return };
                let n = c.entry(path.clone()).or_default();
                *n += 1;
                script(&path, *n - 1)
            };
            if let Ok(mut l) = log.lock() {
                l.push(Request { path, headers, body: serde_json::from_slice(&body).unwrap_or(Value::Null) });
            }
            let mut stream = r.into_inner();
            let status = match behaviour {
                Behaviour::Status(s) => s,
                Behaviour::Hang => {
                    std::thread::sleep(Duration::from_millis(1500));
                    200
                }
                Behaviour::SlowUnavailable => {
                    std::thread::sleep(Duration::from_millis(300));
                    503
                }
            };
            let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    }
}

#[test]
fn webhooks_retry_5xx_and_timeouts_not_4xx_and_filter_by_severity_and_class() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let model = model(dir);
    let log = day(dir, "d.log", "2026-11-03T00:00:00Z", "7", "8000");
    let want = incidents(&model, &log);
    assert!(want.len() >= 3, "{}", want.len());
    // /hook: the first alert meets a 500, then a hang, then gets through;
    // /bad: always 400 (a wrong URL or token); /slack: fine.
    let (url, seen) = receiver(|path, n| match (path, n) {
        ("/hook", 0) => Behaviour::Status(500),
        ("/hook", 1) => Behaviour::Hang,
        ("/bad", _) => Behaviour::Status(400),
        _ => Behaviour::Status(200),
    });
    let high = want.iter().filter(|i| i["severity"] == "high").count();
    let class = want[0]["threat_class"].as_str().expect("class").to_string();
    let of_class = want.iter().filter(|i| i["threat_class"] == class.as_str()).count();
    let config = dir.join("sinks.toml");
    std::fs::write(
        &config,
        format!(
            r#"[delivery]
spool_dir = {spool:?}
# Dedup off: every incident of the run goes out (dedup has its own test in aws.rs).
dedup_window = "0s"

[[sink]]
kind = "webhook"
name = "hook"
target = "{url}/hook"
timeout = "500ms"
backoff = "10ms"
headers = {{ "X-Token" = "s3cret" }}

[[sink]]
kind = "webhook"
name = "bad"
target = "{url}/bad"
backoff = "10ms"

[[sink]]
kind = "slack"
name = "chat"
target = "{url}/slack"
min_severity = "high"

[[sink]]
kind = "ecs"
name = "elastic"
target = {ecs:?}
classes = ["{class}"]
"#,
            spool = s(&dir.join("spool")),
            ecs = s(&dir.join("alerts.ecs.jsonl")),
        ),
    )
    .expect("config");
    let o = flowhound(&[], &["config", "check", "--config", &s(&config)]);
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(ok(&o).is_empty() && listing.contains("4 sink(s)") && listing.contains("hook"), "{listing}");

    // A bad sink fails the run before anything is read or written.
    let o = flowhound(&[], &["detect", "-m", &model, &s(&log), "--sink", "sns:nope", "-o", &s(&dir.join("o.jsonl"))]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.join("o.jsonl").exists());

    let err = ok(&flowhound(
        &[],
        &["detect", "-m", &model, &s(&log), "--config", &s(&config), "-o", &s(&dir.join("o.jsonl"))],
    ));
    let n = want.len();
    assert!(err.contains(&format!("hook (webhook): sent {n}, retried 2, spooled 0")), "{err}");
    // A 400 is not retried: the alert waits in the spool (and so do the rest, in order).
    assert!(err.contains(&format!("bad (webhook): sent 0, retried 0, spooled {n}")), "{err}");
    assert!(err.contains("HTTP 400"), "{err}");
    assert!(
        err.contains(&format!(
            "chat (slack): sent {high}, retried 0, spooled 0, replayed 0, dropped 0, filtered {}",
            n - high
        )),
        "{err}"
    );
    assert!(err.contains(&format!("elastic (ecs): sent {of_class}, ")), "{err}");

    let got = seen.lock().expect("lock").clone();
    let hook: Vec<&Request> = got.iter().filter(|r| r.path == "/hook").collect();
    // n alerts + the 500 and the timed-out attempt, all with the header.
    assert_eq!(hook.len(), n + 2);
    assert!(hook.iter().all(|r| r.headers.iter().any(|(k, v)| k == "x-token" && v == "s3cret")));
    let mut uids: Vec<&str> = hook.iter().filter_map(|r| r.body["uid"].as_str()).collect();
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), n, "every incident reached the hook; the retried one counts once by uid");
    assert!(hook.iter().all(|r| r.body["threat_class"].is_string() && r.body["reason"].is_string()));
    let slack: Vec<&Request> = got.iter().filter(|r| r.path == "/slack").collect();
    assert_eq!(slack.len(), high);
    for r in &slack {
        let text = r.body["text"].as_str().expect("text");
        assert!(text.starts_with("HIGH "), "{text}");
        assert_eq!(r.body["blocks"][0]["type"], "section");
    }
    let ecs: Vec<Value> = std::fs::read_to_string(dir.join("alerts.ecs.jsonl"))
        .expect("ecs")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(ecs.len(), of_class);
    for e in &ecs {
        assert_eq!(e["event"]["kind"], "alert");
        assert_eq!(e["rule"]["name"], class.as_str());
        assert!(e["source"]["ip"].is_string() && e["@timestamp"].is_string() && e["ecs"]["version"].is_string(), "{e}");
    }
    let spool = std::fs::read_to_string(dir.join("spool/bad.spool.jsonl")).expect("the 400s wait in the spool");
    assert_eq!(spool.lines().count(), n);
}

#[test]
fn config_check_lists_every_problem() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("bad.toml");
    std::fs::write(&config, "[[sink]]\nkind = \"sns\"\ntarget = \"alerts\"\n\n[[sink]]\nkind = \"webhook\"\n")
        .expect("write");
    let o = flowhound(&[], &["config", "check", "--config", &s(&config), "--sink", "pager:x"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    for want in ["topic ARN", "http(s) URL", "unknown kind \"pager\""] {
        assert!(err.contains(want), "{want}: {err}");
    }
}

/// `/shared` answers 503 while this is set.
static SHARED_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// "NAME (webhook): sent A, retried B, spooled C, replayed D, dropped E" → [A, C, D, E].
fn counts(stderr: &str, name: &str) -> [u64; 4] {
    let line = stderr.lines().find(|l| l.trim_start().starts_with(&format!("{name} ("))).unwrap_or_default();
    let get = |k: &str| {
        line.split(", ")
            .find_map(|p| p.trim().rsplit_once(' ').filter(|(w, _)| w.ends_with(k)).and_then(|(_, n)| n.parse().ok()))
            .unwrap_or_else(|| panic!("no {k} in {line:?} of:\n{stderr}"))
    };
    [get("sent"), get("spooled"), get("replayed"), get("dropped")]
}

/// Successful deliveries per alert uid after request `from`.
fn delivered(seen: &Mutex<Vec<Request>>, path: &str, from: usize) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in seen.lock().expect("lock").iter().skip(from).filter(|r| r.path == path) {
        *m.entry(r.body["uid"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    m
}

fn config(dir: &Path, name: &str, url: &str, delivery: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "[delivery]\nspool_dir = {spool:?}\nflush_timeout = \"1s\"\n{delivery}\n\n[[sink]]\nkind = \"webhook\"\nname = \"shared\"\ntarget = \"{url}/shared\"\nretries = 0\ntimeout = \"2s\"\n",
            spool = s(&dir.join("spool")),
        ),
    )
    .expect("config");
    p
}

#[test]
fn runs_sharing_a_spool_lose_nothing_and_alerts_a_full_spool_dropped_are_sent_later() {
    use std::sync::atomic::Ordering;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let model = model(dir);
    let (url, seen) = receiver(|path, _| match path {
        "/shared" if SHARED_DOWN.load(std::sync::atomic::Ordering::SeqCst) => Behaviour::SlowUnavailable,
        _ => Behaviour::Status(200),
    });
    // Dedup off for the first part: every incident of each run is an alert.
    let cfg = config(dir, "shared.toml", &url, "dedup_window = \"0s\"");
    let logs = [
        day(dir, "a.log", "2026-11-03T00:00:00Z", "7", "8000"),
        day(dir, "b.log", "2026-11-04T00:00:00Z", "8", "8000"),
        day(dir, "c.log", "2026-11-05T00:00:00Z", "9", "8000"),
    ];
    let want = [incidents(&model, &logs[0]).len() as u64, incidents(&model, &logs[1]).len() as u64];
    assert!(want.iter().all(|n| *n >= 3), "{want:?}");

    // Receiver down: two detects and a watch at once on one spool.
    SHARED_DOWN.store(true, Ordering::SeqCst);
    let spawn = |args: Vec<String>| {
        std::process::Command::new(env!("CARGO_BIN_EXE_flowhound"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let detect = |log: &Path, out: &str| {
        spawn(
            ["detect", "-m", &model, &s(log), "--config", &s(&cfg), "-o", &s(&dir.join(out))]
                .map(String::from)
                .to_vec(),
        )
    };
    let kids = vec![
        detect(&logs[0], "a.out"),
        detect(&logs[1], "b.out"),
        spawn(
            [
                "watch",
                "-m",
                &model,
                "--source",
                &format!("file:{}", s(&logs[2])),
                "--incidents",
                "--idle-exit",
                "2s",
                "--state-dir",
                &s(&dir.join("state")),
                "--config",
                &s(&cfg),
                "-o",
                &s(&dir.join("c.out")),
            ]
            .map(String::from)
            .to_vec(),
        ),
    ];
    let mut spooled = 0;
    for (i, k) in kids.into_iter().enumerate() {
        let o = k.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(0), "run {i}: {err}");
        let [sent, sp, _, dropped] = counts(&err, "shared");
        assert_eq!((sent, dropped), (0, 0), "run {i}: {err}");
        if i < 2 {
            assert_eq!(sp, want[i], "run {i} spools each of its incidents: {err}");
        }
        spooled += sp;
    }
    let waiting = std::fs::read_to_string(dir.join("spool/shared.spool.jsonl")).expect("spool").lines().count();
    assert_eq!(waiting as u64, spooled, "every alert reported spooled is in the spool");

    // Receiver up: the next run (a log of its own) delivers every spooled alert, each once.
    let spool_uids: Vec<String> = std::fs::read_to_string(dir.join("spool/shared.spool.jsonl"))
        .expect("spool")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["uid"].as_str().expect("uid").to_string())
        .collect();
    // A uid twice in the spool is one incident alerted twice (watch sends an
    // incident again as it grows); it is delivered as often as it was spooled.
    let mut want_uids: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for u in &spool_uids {
        *want_uids.entry(u.clone()).or_default() += 1;
    }
    SHARED_DOWN.store(false, Ordering::SeqCst);
    let from = seen.lock().expect("lock").len();
    let quiet = dir.join("quiet.log");
    ok(&flowhound(
        &[],
        &[
            "generate",
            "-o",
            &s(&quiet),
            "--flows",
            "300",
            "--anomaly-ratio",
            "0",
            "--start",
            "2026-11-06T00:00:00Z",
            "-q",
        ],
    ));
    let err =
        ok(&flowhound(&[], &["detect", "-m", &model, &s(&quiet), "--config", &s(&cfg), "-o", &s(&dir.join("q.out"))]));
    let [sent, _, replayed, _] = counts(&err, "shared");
    assert_eq!(replayed, spooled, "{err}");
    let got = delivered(&seen, "/shared", from);
    assert_eq!(got.values().sum::<usize>() as u64, sent, "{err}");
    for (u, n) in &want_uids {
        assert_eq!(got.get(u), Some(n), "spooled alert {u} delivered as often as spooled: {err}");
    }
    assert!(!dir.join("spool/shared.spool.jsonl").exists(), "the spool is empty");
    let leftovers: Vec<String> = std::fs::read_dir(dir.join("spool"))
        .expect("spool dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.contains(".claim.") || n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A spool too small for a run, dedup on: what it dropped is sent by the next run.
    SHARED_DOWN.store(true, Ordering::SeqCst);
    let small = config(dir, "small.toml", &url, "spool_max = \"3KiB\"");
    let _ = std::fs::remove_dir_all(dir.join("spool"));
    let o =
        flowhound(&[], &["detect", "-m", &model, &s(&logs[0]), "--config", &s(&small), "-o", &s(&dir.join("a2.out"))]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "an alert dropped fails the run: {err}");
    let [_, sp, _, dropped] = counts(&err, "shared");
    assert!(sp >= 1 && dropped >= 1, "{err}");
    SHARED_DOWN.store(false, Ordering::SeqCst);
    let from = seen.lock().expect("lock").len();
    let err2 = ok(&flowhound(
        &[],
        &["detect", "-m", &model, &s(&logs[0]), "--config", &s(&small), "-o", &s(&dir.join("a3.out"))],
    ));
    let [sent, _, replayed, _] = counts(&err2, "shared");
    assert_eq!(replayed, sp, "the spooled ones replayed: {err2}");
    assert!(sent > replayed, "the dropped ones are sent, not held back as sent: {err}\n{err2}");
    // Nothing lost: every class and actor with an incident in the log has an
    // alert delivered (repeats within the dedup window are held back by design).
    let keys = |v: &[Value]| -> std::collections::BTreeSet<String> {
        v.iter().map(|i| format!("{}|{}", i["threat_class"], i["actor"])).collect()
    };
    let want_keys = keys(&incidents(&model, &logs[0]));
    let bodies: Vec<Value> =
        seen.lock().expect("lock").iter().skip(from).filter(|r| r.path == "/shared").map(|r| r.body.clone()).collect();
    assert_eq!(keys(&bodies), want_keys, "{err2}");
    let got = delivered(&seen, "/shared", from);
    assert!(got.values().all(|n| *n == 1), "{got:?}");
}
