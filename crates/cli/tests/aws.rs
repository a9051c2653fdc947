//! `detect` against a real AWS-compatible endpoint (moto_server): VPC Flow
//! Logs read from S3 under the AWS key layout, incidents published to SNS
//! (and through it to SQS), metrics in CloudWatch, OCSF findings in a file;
//! dedup across runs; an endpoint that dies and comes back loses nothing.
//! Skips with a note when moto_server is not installed (CI installs it).

#[path = "aws/harness.rs"]
mod harness;
#[path = "aws/run.rs"]
mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use harness::{aws_env, gzip, Moto, Proxy};
use run::{day, flowhound, incidents, incidents_with, model, ok, s};
use serde_json::Value;

const KEY: &str = "AWSLogs/123456789012/vpcflowlogs/us-east-1";

/// (threat class, actor) of each SNS message, counted.
fn arrived(msgs: &Value) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for m in msgs.as_array().expect("list") {
        let body: Value = serde_json::from_str(m["message"].as_str().expect("message")).expect("JSON body");
        let k =
            (body["threat_class"].as_str().unwrap_or("").to_string(), body["actor"].as_str().unwrap_or("").to_string());
        *out.entry(k).or_default() += 1;
    }
    out
}

fn keys(list: &[Value]) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for i in list {
        let k = (i["threat_class"].as_str().unwrap_or("").to_string(), i["actor"].as_str().unwrap_or("").to_string());
        *out.entry(k).or_default() += 1;
    }
    out
}

/// The endpoint, a scratch folder, a model, and two more days of the same
/// network (2 and 3 November); `None` without moto_server.
fn setup() -> Option<(Moto, tempfile::TempDir, String, PathBuf, PathBuf)> {
    let moto = Moto::start()?;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let model = model(dir);
    let d2 = day(dir, "d2.log", "2026-11-02T00:00:00Z", "7", "6000");
    let d3 = day(dir, "d3.log", "2026-11-03T00:00:00Z", "7", "8000");
    Some((moto, tmp, model, d2, d3))
}

#[test]
fn s3_in_sns_cloudwatch_and_ocsf_out_once_per_dedup_window() {
    let Some((moto, tmp, model, d2, d3)) = setup() else { return };
    let dir = tmp.path();
    let g2 = gzip(&d2, &dir.join("d2.log.gz"));
    let g3 = gzip(&d3, &dir.join("d3.log.gz"));
    let k2 = format!("g2={KEY}/2026/11/02/123456789012_vpcflowlogs_us-east-1_fl-0abc_20261102T0000Z_1a2b.log.gz");
    let k3 = format!("g3={KEY}/2026/11/03/123456789012_vpcflowlogs_us-east-1_fl-0abc_20261103T0000Z_3c4d.log.gz");
    let setup = moto.helper(&[
        "setup",
        "flowlogs",
        "alerts",
        "alerts-q",
        &k2.replacen("g2", &s(&g2), 1),
        &k3.replacen("g3", &s(&g3), 1),
    ]);
    let topic = setup["topic_arn"].as_str().expect("topic").to_string();
    let queue = setup["queue_url"].as_str().expect("queue").to_string();
    let env = aws_env(&moto.endpoint);
    let ocsf = dir.join("findings.ocsf.jsonl");
    let spool = dir.join("spool");
    let args = |window: &str| {
        let mut a: Vec<String> =
            ["detect", "-m", &model, "s3://flowlogs/AWSLogs/", "--since", "2026-11-03", "--until", "2026-11-03"]
                .iter()
                .map(|x| x.to_string())
                .collect();
        a.extend([
            "--sink".into(),
            format!("sns:{topic}"),
            "--sink".into(),
            "cloudwatch:FlowhoundTest".into(),
            "--sink".into(),
            format!("ocsf:{}", s(&ocsf)),
            "--spool-dir".into(),
            s(&spool),
            "-o".into(),
            s(&dir.join("flows.jsonl")),
            // A rerun of the same logs overlaps itself and is held back.
            "--dedup-window".into(),
            window.into(),
        ]);
        a
    };
    let first = flowhound(&env, &args("10m").iter().map(String::as_str).collect::<Vec<_>>());
    let err = ok(&first);
    // Only the 3 November object was read (--since/--until by key), all of it.
    assert!(err.contains("8000 flows scored"), "{err}");
    let want = incidents(&model, &d3);
    assert!(want.len() >= 3, "the day has several incidents: {}", want.len());
    // Incidents of one class and actor closer than the window are held back (counted).
    let held: usize = err
        .split_once(&format!("alerts: {} incidents, ", want.len()))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    let sent = want.len() - held;
    assert!(err.contains(&format!("sent {sent}, retried 0, spooled 0")), "{err}");

    // SNS → SQS: one message per alert sent, every (class, actor) among them, with its
    // attributes and a JSON body.
    let msgs = moto.helper(&["drain", &queue]);
    assert_eq!(msgs.as_array().map(Vec::len), Some(sent));
    let got = arrived(&msgs);
    assert_eq!(got.keys().collect::<Vec<_>>(), keys(&want).keys().collect::<Vec<_>>(), "every class and actor");
    let m0 = &msgs[0];
    assert!(m0["subject"].as_str().unwrap_or("").starts_with("flowhound "), "{m0}");
    for a in ["severity", "threat_class", "uid"] {
        assert!(m0["attributes"][a]["Value"].is_string(), "attribute {a}: {m0}");
    }

    // CloudWatch: the run's numbers, by severity and class.
    let metrics = moto.helper(&["metrics", "FlowhoundTest"]);
    assert_eq!(metrics["FlowsProcessed|"], 8000.0, "{metrics}");
    assert_eq!(metrics["Incidents|"], want.len() as f64, "{metrics}");
    let by_sev: f64 = ["low", "medium", "high"]
        .iter()
        .map(|v| metrics[format!("Incidents|Severity={v}")].as_f64().unwrap_or(0.0))
        .sum();
    assert_eq!(by_sev, want.len() as f64, "{metrics}");
    let flows: Vec<Value> = std::fs::read_to_string(dir.join("flows.jsonl"))
        .expect("flows")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(metrics["Anomalies|"], flows.len() as f64, "anomalies = flows detect wrote: {metrics}");
    let class = want[0]["threat_class"].as_str().expect("class");
    let n_class = want.iter().filter(|i| i["threat_class"] == class).count() as f64;
    assert_eq!(metrics[format!("Incidents|ThreatClass={class}")], n_class, "{metrics}");

    // OCSF Detection Finding: the attributes class 2004 requires.
    let lines: Vec<Value> =
        std::fs::read_to_string(&ocsf).expect("ocsf").lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(lines.len(), sent);
    for f in &lines {
        assert_eq!(
            (f["class_uid"].as_u64(), f["category_uid"].as_u64(), f["type_uid"].as_u64()),
            (Some(2004), Some(2), Some(200401))
        );
        assert_eq!(f["activity_id"], 1);
        assert!(matches!(f["severity_id"].as_u64(), Some(2..=4)), "{f}");
        assert!(f["time"].as_i64().is_some_and(|t| t > 1_700_000_000_000), "{f}");
        assert!(f["finding_info"]["uid"].is_string() && f["finding_info"]["title"].is_string(), "{f}");
        assert_eq!(f["metadata"]["product"]["name"], "flowhound");
        assert_eq!(f["metadata"]["version"], "1.1.0");
        assert!(
            f["evidences"].as_array().is_some_and(|e| !e.is_empty() && e[0]["src_endpoint"]["ip"].is_string()),
            "{f}"
        );
    }
    let scan = lines.iter().find(|f| f["finding_info"]["types"][0] == "port_scan");
    if let Some(f) = scan {
        assert_eq!(f["finding_info"]["attacks"][0]["technique"]["uid"], "T1046");
        assert_eq!(f["finding_info"]["attacks"][0]["tactic"]["name"], "Discovery");
    }

    // The same logs again within the dedup window: nothing re-sent, counters kept.
    let again = ok(&flowhound(&env, &args("10m").iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(again.contains(&format!("{} held back as duplicates", want.len())), "{again}");
    assert_eq!(moto.helper(&["drain", &queue]), Value::Array(vec![]), "no duplicates on the queue");
    // Dedup off: everything goes out again, each alert once more.
    ok(&flowhound(&env, &args("0s").iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(arrived(&moto.helper(&["drain", &queue])), keys(&want));
}

#[test]
fn an_endpoint_that_dies_and_comes_back_loses_nothing() {
    let Some((moto, tmp, model, d2, d3)) = setup() else { return };
    let dir = tmp.path();
    let setup = moto.helper(&["setup", "unused", "alerts", "alerts-q"]);
    let topic = setup["topic_arn"].as_str().expect("topic").to_string();
    let queue = setup["queue_url"].as_str().expect("queue").to_string();
    let proxy = Proxy::start(&moto.endpoint);
    let env = aws_env(&proxy.endpoint);
    let config = dir.join("flowhound.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nspool_dir = {:?}\ndedup_window = \"0s\"\nflush_timeout = \"1s\"\n\n[[sink]]\nkind = \"sns\"\ntarget = \"{topic}\"\nretries = 2\nbackoff = \"50ms\"\nmax_backoff = \"200ms\"\ntimeout = \"2s\"\n",
            s(&dir.join("spool"))
        ),
    )
    .expect("config");
    let run = |log: &Path| {
        flowhound(&env, &["detect", "-m", &model, &s(log), "--config", &s(&config), "-o", &s(&dir.join("out.jsonl"))])
    };

    // Down for a whole run: every alert is retried, then spooled; exit 0, nothing lost.
    proxy.down();
    let want2 = incidents(&model, &d2);
    let err = ok(&run(&d2));
    let n2 = want2.len();
    // One alert tried (1 + 2 retries), the rest queued behind it; probed again now and then
    // and at the end, 2 retries each time.
    let c = counts(&err);
    assert_eq!(
        (c["sent"], c["spooled"], c["replayed"], c["dropped"], c["pending"]),
        (0, n2 as u64, 0, 0, n2 as u64),
        "{err}"
    );
    assert!(c["retried"] >= 4 && c["retried"].is_multiple_of(2), "{err}");
    assert_eq!(moto.helper(&["drain", &queue]), Value::Array(vec![]));

    // Back: the next run replays the spool first, then sends its own.
    proxy.up();
    let want3 = incidents(&model, &d3);
    let err = ok(&run(&d3));
    let n3 = want3.len();
    assert!(err.contains(&format!("sent {}, retried 0, spooled 0, replayed {n2}, dropped 0", n2 + n3)), "{err}");
    let mut all = keys(&want2);
    for (k, n) in keys(&want3) {
        *all.entry(k).or_default() += n;
    }
    assert_eq!(arrived(&moto.helper(&["drain", &queue])), all, "each alert exactly once");
    assert!(spool_empty(&dir.join("spool")));

    // Killed mid-run: paced at 10 alerts/s, the endpoint dies once 20 have arrived and is
    // back 3 s later, within the run's flush timeout. Everything arrives in the run; a
    // repeat is possible only for a message whose answer was cut off (at least once), so
    // no more copies than retries.
    let text =
        std::fs::read_to_string(&config).expect("config").replace("flush_timeout = \"1s\"", "flush_timeout = \"30s\"");
    std::fs::write(&config, text + "rate = 10\nburst = 1\n").expect("config");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_flowhound"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        // Incidents by the gap alone: enough alerts that the run outlasts the outage.
        .args(["detect", "-m", &model, &s(&d3), "--config", &s(&config), "-o", &s(&dir.join("out.jsonl"))])
        .args(["--incident-period", "off"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("flowhound runs");
    let want3 = incidents_with(&model, &d3, &["--incident-period", "off"]);
    let n3 = want3.len();
    let mut got = Vec::new();
    let t = std::time::Instant::now();
    while got.len() < 20 {
        assert!(t.elapsed() < std::time::Duration::from_secs(60), "alerts do not arrive");
        got.extend(moto.helper(&["drain", &queue]).as_array().cloned().unwrap_or_default());
    }
    proxy.down();
    std::thread::sleep(std::time::Duration::from_secs(3));
    proxy.up();
    let out = child.wait_with_output().expect("wait");
    let err = ok(&out);
    got.extend(moto.helper(&["drain", &queue]).as_array().cloned().unwrap_or_default());
    let c = counts(&err);
    assert!(c["retried"] > 0 && c["dropped"] == 0 && c["pending"] == 0, "the outage was seen, nothing lost: {err}");
    let arrived = arrived(&Value::Array(got.clone()));
    assert_eq!(arrived.keys().collect::<Vec<_>>(), keys(&want3).keys().collect::<Vec<_>>(), "{err}");
    let extra = got.len() as u64 - n3 as u64;
    assert!(got.len() >= n3 && extra <= c["retried"], "{} messages for {n3} alerts: {err}", got.len());
    assert!(spool_empty(&dir.join("spool")));
}

fn spool_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .expect("spool dir")
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().ends_with(".spool.jsonl"))
}

/// The first sink line of a summary as numbers: sent, retried, spooled,
/// replayed, dropped, filtered, pending.
fn counts(summary: &str) -> BTreeMap<String, u64> {
    let line = summary.lines().find(|l| l.contains("): sent ")).unwrap_or_else(|| panic!("no sink line: {summary}"));
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    let body = line.split_once("): ").map_or("", |x| x.1);
    for part in body.split(", ") {
        let mut w = part.split_whitespace();
        match (w.next(), w.next()) {
            (Some(k), Some(v)) if k.parse::<u64>().is_err() => {
                out.insert(k.to_string(), v.parse().unwrap_or(0));
            }
            (Some(n), Some("waiting")) => {
                out.insert("pending".into(), n.parse().unwrap_or(0));
            }
            _ => {}
        }
    }
    out.entry("pending".into()).or_insert(0);
    out
}
