//! End-to-end tests of the `flowhound` binary: golden outputs, exit codes,
//! conversions, the generator's promises.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowhound"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../flow/tests/fixtures")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("flowhound runs")
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `inspect --json` on the VPC fixtures, compared with a golden file (file
/// paths made relative so the golden does not depend on the checkout).
#[test]
fn inspect_json_golden() {
    let dir = fixtures();
    let inputs = ["vpc-v2.log", "vpc-v8-custom.log", "vpc-cloudwatch.log"].map(|f| dir.join(f).display().to_string());
    let o =
        bin().args(["inspect", "--json"]).args(&inputs).arg("--internal").arg("158.109.0.0/16").output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let mut v = json(&o);
    for f in v["files"].as_array_mut().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string();
        f["name"] = Value::from(name);
    }
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/inspect-vpc.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, serde_json::to_string_pretty(&v).expect("json") + "\n").expect("write");
    }
    let want: Value = serde_json::from_slice(&std::fs::read(&golden).expect("golden")).expect("json");
    assert_eq!(v, want);
    // The keys the issue promises, and their meaning.
    assert_eq!(v["records"], 9);
    assert_eq!(v["no_data"], 2);
    assert_eq!(v["actions"]["reject"], 2);
    assert_eq!(v["top_dst_ports"][0]["port"], 22);
    assert!(v.get("labels").is_none(), "no ground truth, no labels key");
}

#[test]
fn inspect_table_and_labels() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("g.log");
    let o = run(&["generate", "-o", log.to_str().unwrap_or_default(), "--flows", "4000", "--seed", "3", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let labels = dir.path().join("g.log.labels.csv");
    let o =
        run(&["inspect", log.to_str().unwrap_or_default(), "--labels", labels.to_str().unwrap_or_default(), "--json"]);
    let v = json(&o);
    assert_eq!(v["records"], 4000);
    assert_eq!(v["labels"]["malicious"], 200);
    assert_eq!(v["labels"]["benign"], 3800);
    assert_eq!(v["labels"]["categories"].as_object().map(|m| m.len()), Some(8));
    let o = run(&["inspect", log.to_str().unwrap_or_default()]);
    let t = text(&o.stdout);
    for want in ["Records      4,000", "Top talkers by bytes", "Top destination ports", "Protocols"] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
}

/// Concatenated logs (a header line mid-stream) are summarized once, not twice.
#[test]
fn inspect_concatenated_logs_counts_each_record_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let one = dir.path().join("one.log");
    let o = run(&["generate", "-o", one.to_str().unwrap_or_default(), "--flows", "30000", "-q"]);
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read(&one).expect("read");
    let three = dir.path().join("three.log");
    std::fs::write(&three, [text.as_slice(), text.as_slice(), text.as_slice()].concat()).expect("write");
    let v = json(&run(&["inspect", "--json", three.to_str().unwrap_or_default()]));
    assert_eq!(v["records"], 90_000);
    assert_eq!(v["files"][0]["records"], 90_000);
    let flows: u64 = v["top_dst_ports"].as_array().into_iter().flatten().filter_map(|p| p["flows"].as_u64()).sum();
    let single = json(&run(&["inspect", "--json", one.to_str().unwrap_or_default()]));
    let flows1: u64 =
        single["top_dst_ports"].as_array().into_iter().flatten().filter_map(|p| p["flows"].as_u64()).sum();
    assert_eq!(flows, 3 * flows1);
}

#[test]
fn exit_codes() {
    // Usage: unknown flag, bad format name, bad mapping.
    assert_eq!(run(&["inspect", "--frobnicate", "x"]).status.code(), Some(2));
    let vpc = fixtures().join("vpc-v2.log").display().to_string();
    let o = run(&["inspect", &vpc, "--input-format", "pcapng-ish"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("expected one of"));
    let o = run(&["inspect", &vpc, "--map", "sauce=x", "--map", "nonsense"]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("sauce") && e.contains("nonsense"), "every problem listed: {e}");
    // Input: missing files (all named), unknown format.
    let o = run(&["inspect", "/no/such/a", "/no/such/b"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains("/no/such/a") && text(&o.stderr).contains("/no/such/b"));
    let dir = tempfile::tempdir().expect("tmp");
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"\x7fELF\x02\x01 not flows\n").expect("write");
    let o = run(&["inspect", "--json", junk.to_str().unwrap_or_default(), &vpc]);
    assert_eq!(o.status.code(), Some(3), "an unreadable input fails the run...");
    assert_eq!(json(&o)["records"], 4, "...after the readable ones were processed");
    assert!(text(&o.stderr).contains("junk.bin"));
    // Rejected lines alone do not fail a run.
    let broken = fixtures().join("vpc-broken.log").display().to_string();
    assert_eq!(run(&["inspect", &broken]).status.code(), Some(0));
    // The help documents them.
    assert!(text(&run(&["--help"]).stdout).contains("Exit codes"));
}

#[test]
fn rejects_file_names_file_line_and_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let rej = dir.path().join("rejects.jsonl");
    let broken = fixtures().join("vpc-broken.log");
    let o =
        run(&["inspect", "--json", broken.to_str().unwrap_or_default(), "--rejects", rej.to_str().unwrap_or_default()]);
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    assert_eq!(v["rejected"], 11);
    assert_eq!(v["rejects_by_reason"]["bad_address"], 2);
    let lines: Vec<Value> = std::fs::read_to_string(&rej)
        .expect("rejects written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 11);
    assert_eq!(lines[0]["line"], 3);
    assert_eq!(lines[0]["reason"], "bad_address");
    assert!(lines[0]["file"].as_str().is_some_and(|f| f.ends_with("vpc-broken.log")));
    assert!(lines[8]["text"].as_str().is_some_and(|t| t.contains("<script>")), "the raw line is kept, as data");
}

#[test]
fn stdin_and_gzip() {
    let data = std::fs::read(fixtures().join("zeek-conn.log")).expect("fixture");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).expect("gz");
    let gz = gz.finish().expect("gz");
    let mut child =
        bin().args(["inspect", "--json", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(&gz).expect("write");
    let o = child.wait_with_output().expect("wait");
    let v = json(&o);
    assert_eq!(v["records"], 4);
    assert_eq!(v["files"][0]["format"], "zeek");
    assert_eq!(v["files"][0]["name"], "<stdin>");
}

#[test]
fn convert_round_trips_through_every_output_format() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = fixtures().join("zeek-conn.log").display().to_string();
    let base = json(&run(&["inspect", "--json", &src]));
    for (to, name) in [("jsonl", "out.jsonl"), ("csv", "out.csv.gz"), ("vpc", "out.log")] {
        let out = dir.path().join(name);
        let o = run(&["convert", &src, "--to", to, "-o", out.to_str().unwrap_or_default(), "-q"]);
        assert_eq!(o.status.code(), Some(0), "{to}: {}", text(&o.stderr));
        let back = json(&run(&["inspect", "--json", out.to_str().unwrap_or_default()]));
        assert_eq!(back["records"], base["records"], "{to}");
        assert_eq!(back["rejected"], 0, "{to}");
        assert_eq!(back["top_dst_ports"], base["top_dst_ports"], "{to}");
        assert_eq!(back["protocols"], base["protocols"], "{to}");
    }
    // A VPC file starts with its header line.
    let head = std::fs::read_to_string(dir.path().join("out.log")).expect("vpc");
    assert!(head.starts_with("version account-id interface-id srcaddr dstaddr"));
}

#[test]
fn convert_with_a_toml_mapping() {
    let fx = fixtures();
    let o = run(&[
        "convert",
        fx.join("custom.csv").to_str().unwrap_or_default(),
        "--map-file",
        fx.join("custom.toml").to_str().unwrap_or_default(),
        "--to",
        "jsonl",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let recs: Vec<Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[1]["category"], "bruteforce");
    assert_eq!(recs[1]["extra"]["rtt_ms"], 0.4);
    // The same mapping given as flags.
    let o = run(&[
        "inspect",
        "--json",
        fx.join("custom.csv").to_str().unwrap_or_default(),
        "--map",
        "start=when",
        "--map",
        "src=source",
        "--map",
        "dst=target",
        "--map",
        "dst_port=dport",
        "--map",
        "protocol=proto",
        "--map",
        "bytes=octets",
    ]);
    // Without `delimiter = ";"` the file is one column: nothing maps, every line fails.
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn generate_is_deterministic_and_labeled() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n).display().to_string();
    for (name, seed) in [("a.log", "9"), ("b.log", "9"), ("c.log", "10")] {
        let o = run(&["generate", "-o", &p(name), "--flows", "20000", "--seed", seed, "--anomaly-ratio", "0.1", "-q"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    }
    let read = |n: &str| std::fs::read(dir.path().join(n)).expect("read");
    assert!(read("a.log") == read("b.log"), "same seed, same bytes");
    assert!(read("a.log.labels.csv") == read("b.log.labels.csv"));
    assert!(read("a.log") != read("c.log"), "another seed, other traffic");
    let labels = text(&read("a.log.labels.csv"));
    assert_eq!(labels.lines().count(), 20_001);
    let malicious = labels.lines().filter(|l| l.contains(",true,")).count();
    assert_eq!(malicious, 2000);
    // Every scenario is there, and the log is valid VPC with no rejects.
    for s in [
        "port_scan_vertical",
        "port_scan_horizontal",
        "dos",
        "ddos",
        "exfiltration",
        "connection_burst",
        "unknown_ip",
        "abnormal_protocol",
    ] {
        assert!(labels.contains(&format!(",true,{s}\n")), "{s} missing");
    }
    let v = json(&run(&["inspect", "--json", &p("a.log")]));
    assert_eq!((v["records"].as_u64(), v["rejected"].as_u64()), (Some(20_000), Some(0)));
    // CSV carries the labels in columns.
    let o = run(&["generate", "-o", &p("d.csv"), "--flows", "500", "--format", "csv", "-q"]);
    assert_eq!(o.status.code(), Some(0));
    let v = json(&run(&["inspect", "--json", &p("d.csv")]));
    assert_eq!(v["labels"]["malicious"], 25);
}

#[test]
fn generate_lists_every_bad_parameter() {
    let o =
        run(&["generate", "-o", "/tmp/never.log", "--flows", "0", "--anomaly-ratio", "1.5", "--start", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("--flows") && e.contains("--anomaly-ratio") && e.contains("--start"), "{e}");
}

#[test]
fn demo_runs_end_to_end() {
    let o = run(&["demo", "--flows", "5000"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let t = text(&o.stdout);
    assert!(t.contains("(7500 VPC flow records, 375 in injected attacks)"), "{t}");
    assert!(t.contains("trained on 7125 of 7500 flows, benign only"), "{t}");
    assert!(t.contains("5000 flows scored"), "{t}");
    // Every injected scenario is reported, and most attack flows are found.
    for s in ["port_scan_vertical", "port_scan_horizontal", "ddos", "dos", "exfiltration", "unknown_ip"] {
        assert!(t.contains(s), "{s} missing: {t}");
    }
    let recall: f64 = t
        .split("(recall ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no recall in {t}"));
    // At the default false-positive budget (0.5 %) the generated attacks'
    // recall is ~84 %: the flows of a scenario that look like normal traffic
    // (the first probes of a scan) stay below the budget's level.
    assert!(recall >= 80.0, "recall {recall} %: {t}");
    // The top incidents, each with its class and a reason.
    let top = t.split("top incidents").nth(1).unwrap_or_else(|| panic!("no incidents: {t}"));
    assert!(top.lines().skip(2).take(10).all(|l| l.split_whitespace().count() > 10), "{top}");
    assert!(top.contains("port_scan") && top.contains("probed"), "{top}");
    // And the dashboard's static report, whose path it prints.
    let path = t.split("written to ").last().and_then(|l| l.lines().next()).unwrap_or_default();
    assert!(path.ends_with(".html"), "{t}");
    let html = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(html.contains("id=\"flowhound-report\""));
    let _ = std::fs::remove_file(path);
}

#[test]
fn extra_all_takes_every_dataset_column_but_row_numbers() {
    let unsw = fixtures().join("unsw.csv").display().to_string();
    let o = run(&["features", &unsw, "--extra", "all", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let t = text(&o.stdout);
    let head: Vec<&str> = t.lines().next().unwrap_or_default().split(',').collect();
    let extras: Vec<&str> = head.iter().copied().filter(|h| h.starts_with("x_")).collect();
    // id is a row number; dur, proto, bytes, … are flowhound's own features.
    assert_eq!(extras, ["x_rate", "x_sttl"], "{head:?}");
    let rows: Vec<&str> = t.lines().skip(1).collect();
    assert!(!rows.is_empty() && rows.iter().all(|r| r.split(',').count() == head.len()));
    // The model keeps the resolved names: detect needs no --extra. (The
    // fixture's rows, repeated with other rates, to have enough to train on.)
    let tmp = tempfile::tempdir().expect("tempdir");
    let fixture = std::fs::read_to_string(&unsw).expect("fixture");
    let mut lines = fixture.lines();
    let mut big = String::from(lines.next().unwrap_or_default());
    big.push('\n');
    let body: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    for i in 0..200 {
        let cells: Vec<String> = body[i % body.len()].split(',').map(str::to_string).collect();
        let mut cells = cells;
        cells[9] = format!("{}", 100 + i * 7);
        big += &(cells.join(",") + "\n");
    }
    let unsw = tmp.path().join("unsw-200.csv");
    std::fs::write(&unsw, big).expect("write");
    let unsw = unsw.display().to_string();
    let model = tmp.path().join("m").display().to_string();
    let o = run(&["train", &unsw, "-m", &model, "--extra", "all", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let manifest = std::fs::read_to_string(tmp.path().join("m/manifest.json")).expect("manifest");
    let m: Value = serde_json::from_str(&manifest).expect("json");
    assert_eq!(m["features"]["extras"], serde_json::json!(["rate", "sttl"]));
    let o = run(&["detect", "-m", &model, &unsw, "--all", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[test]
fn features_rows_name_every_feature_once() {
    let zeek = fixtures().join("zeek-conn.log").display().to_string();
    let o = run(&["features", &zeek, "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let t = text(&o.stdout);
    let mut lines = t.lines();
    let head: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    assert_eq!(&head[..6], &["time", "src", "dst", "src_port", "dst_port", "protocol"]);
    let mut unique = head.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), head.len(), "no column named twice");
    for want in
        ["src_distinct_dst_ports_1h", "dst_distinct_src_60s", "src_burst_60s_15m", "external_unseen", "malicious"]
    {
        assert!(head.contains(&want), "{want} missing");
    }
    let lines: Vec<&str> = lines.collect();
    assert_eq!(lines.len(), 4);
    // The third flow's service is `ssl,http`: quoted, as CSV wants.
    assert!(lines[2].contains(",\"ssl,http\","), "{}", lines[2]);
    let rows: Vec<Vec<String>> =
        lines.iter().map(|l| l.replace("\"ssl,http\"", "ssl+http").split(',').map(str::to_string).collect()).collect();
    assert!(rows.iter().all(|r| r.len() == head.len()));
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap_or(usize::MAX);
    assert_eq!(rows[0][col("state")], "REJ", "categories print as text");
    assert_eq!(rows[0][col("rejected")], "", "Zeek has no ACCEPT/REJECT: absent, not 0");
    assert_eq!(rows[2][col("bytes")], "60580");

    let o = run(&["features", &zeek, "-q", "--format", "jsonl", "--windows", "10s,10m", "--baseline", "1h"]);
    let first: Value = serde_json::from_str(text(&o.stdout).lines().next().unwrap_or_default()).expect("json");
    assert_eq!(first["src_flows_10s"], 1);
    assert_eq!(first["duration_s"], 0.000064);
    assert!(first.get("src_flows_60s").is_none());

    let o = run(&["features", &zeek, "--windows", "0s,abc", "--baseline", "2q"]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("abc") && e.contains("2q"), "{e}");
}

/// Output to something that is not a regular file is written into, never
/// replaced: renaming a temp file over `/dev/null` once made it a regular file.
/// Tested on a named pipe (the same kind of thing, without risking the
/// machine's `/dev/null` if this ever regressed).
#[test]
fn output_to_a_fifo_or_a_symlink_keeps_them() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().expect("tmp");
    let fifo = dir.path().join("labels.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("note: mkfifo unavailable; skipping the FIFO half");
    } else {
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(&fifo).expect("read fifo"))
        };
        let log = dir.path().join("g.log");
        let o = run(&[
            "generate",
            "-o",
            log.to_str().unwrap_or_default(),
            "--flows",
            "300",
            "--labels",
            fifo.to_str().unwrap_or_default(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        // Checked before joining: had the FIFO been replaced, the reader would
        // wait on the old one forever.
        assert!(std::fs::symlink_metadata(&fifo).expect("still there").file_type().is_fifo(), "the FIFO was replaced");
        let got = reader.join().expect("reader");
        assert!(got.starts_with(b"line,malicious,category\n"));
        assert_eq!(got.iter().filter(|b| **b == b'\n').count(), 301);
    }
    // A symlink: its target gets the output, the link stays a link.
    let target = dir.path().join("real.jsonl");
    std::fs::write(&target, b"old").expect("write");
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let zeek = fixtures().join("zeek-conn.log").display().to_string();
    let o = run(&["convert", &zeek, "--to", "jsonl", "-o", link.to_str().unwrap_or_default(), "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(std::fs::symlink_metadata(&link).expect("link").file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).expect("target").lines().count(), 4);
    // A directory is an error, not a rename.
    let o = run(&["convert", &zeek, "--to", "jsonl", "-o", dir.path().to_str().unwrap_or_default(), "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("is a directory"));
}

/// Generates a labeled VPC log in `dir`; returns (log, labels).
fn generated(dir: &Path, name: &str, flows: u64, seed: u64) -> (String, String) {
    let log = dir.join(name);
    let o = run(&[
        "generate",
        "-o",
        &log.display().to_string(),
        "--flows",
        &flows.to_string(),
        "--seed",
        &seed.to_string(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    (log.display().to_string(), format!("{}.labels.csv", log.display()))
}

/// train → detect on generated traffic: the injected attacks are found, the
/// output has every promised field, and the bundle is byte-identical per seed.
#[test]
fn train_then_detect_finds_the_injected_attacks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (train_log, train_labels) = generated(tmp.path(), "train.log", 30_000, 1);
    // Same seed = same VPC (hosts, services); another size = other traffic.
    let (test_log, test_labels) = generated(tmp.path(), "test.log", 20_000, 1);
    let model = tmp.path().join("model").display().to_string();
    let args = ["train", &train_log, "--labels", &train_labels, "-m", &model, "--benign-only", "--seed", "3"];
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let summary = text(&o.stderr);
    assert!(summary.contains("benign only: 1500 attack flows left out"), "{summary}");
    for f in [
        "manifest.json",
        "pipeline.json",
        "calibration.json",
        "known_external.txt",
        "iforest.safetensors",
        "lof.safetensors",
        "ocsvm.safetensors",
        "autoencoder.safetensors",
    ] {
        assert!(Path::new(&model).join(f).is_file(), "{f} missing");
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(Path::new(&model).join("manifest.json")).expect("read")).expect("json");
    assert_eq!(manifest["format_version"], flowhound_detect::bundle::FORMAT_VERSION);
    assert_eq!(manifest["training"]["rows"], 28_500);
    // A fifth held out to calibrate the thresholds on.
    assert_eq!(manifest["training"]["fit_rows"], 22_800);
    assert_eq!(manifest["training"]["calibration_rows"], 5_700);
    assert_eq!(manifest["detectors"].as_array().map(Vec::len), Some(4));

    // Same seed, same data: the same bytes.
    let again = tmp.path().join("again").display().to_string();
    let o = run(&["train", &train_log, "--labels", &train_labels, "-m", &again, "--benign-only", "--seed", "3", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    for f in std::fs::read_dir(&model).expect("dir") {
        let name = f.expect("entry").file_name();
        let (a, b) = (std::fs::read(Path::new(&model).join(&name)), std::fs::read(Path::new(&again).join(&name)));
        assert!(a.expect("read") == b.expect("read"), "{name:?} differs between two trainings with one seed");
    }

    let o = run(&["detect", "-m", &model, &test_log, "--labels", &test_labels, "--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows: Vec<Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(rows.len(), 20_000);
    let r = &rows[0];
    for k in [
        "flow",
        "time",
        "src",
        "dst",
        "src_port",
        "dst_port",
        "protocol",
        "score",
        "votes",
        "severity",
        "confidence",
        "models",
        "label",
        "category",
    ] {
        assert!(r.get(k).is_some(), "field {k} missing: {r}");
    }
    for m in ["iforest", "lof", "ocsvm", "autoencoder"] {
        assert!(r["models"][m]["score"].is_number() && r["models"][m]["flagged"].is_boolean(), "{r}");
    }
    let flagged = |v: &Value| v["severity"] != "none";
    let (mal, ben): (Vec<&Value>, Vec<&Value>) = rows.iter().partition(|v| v["label"] == "malicious");
    let recall = mal.iter().filter(|v| flagged(v)).count() as f64 / mal.len() as f64;
    let fpr = ben.iter().filter(|v| flagged(v)).count() as f64 / ben.len() as f64;
    assert!(recall > 0.9 && fpr < 0.12, "recall {recall:.3}, false-positive rate {fpr:.3}");
    // Anomaly at ≥ 2 of 4 votes; severity from how far past the budget the
    // vote score is, at least medium when all four agree; confidence between
    // half the agreement and half of it plus one half.
    for v in &rows {
        let votes = v["votes"].as_u64().expect("votes");
        // Below the vote only a rule raising alerts on its own (a port
        // scan, an ICMP flood) makes an anomaly, and a low one.
        let by_rule = votes < 2 && v["severity"] != "none";
        assert!(
            !by_rule
                || (v["severity"] == "low"
                    && ["port_scan", "abnormal_protocol", "brute_force", "beacon", "long_connection"]
                        .contains(&v["threat_class"].as_str().unwrap_or(""))),
            "{v}"
        );
        assert_eq!(v["severity"] == "none", votes < 2 && !by_rule, "{v}");
        if votes == 4 {
            assert!(v["severity"] == "medium" || v["severity"] == "high", "{v}");
        }
        let c = v["confidence"].as_f64().expect("confidence");
        let agree = votes as f64 / 4.0;
        assert!(c >= agree / 2.0 - 1e-6 && c <= agree / 2.0 + 0.5 + 1e-6, "{v}");
    }
    // Default output: anomalies only, and the summary counts them.
    let o = run(&["detect", "-m", &model, &test_log, "--min-severity", "high", "--format", "csv"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let high = rows.iter().filter(|v| v["severity"] == "high").count();
    assert_eq!(text(&o.stdout).lines().count(), high + 1, "header + high-severity rows");
    assert!(text(&o.stderr).contains("20000 flows scored"), "{}", text(&o.stderr));
}

/// A damaged or foreign model folder is a clear error (exit 2), never a panic
/// or silent scores.
#[test]
fn detect_refuses_broken_models() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (log, _) = generated(tmp.path(), "f.log", 3_000, 5);
    let model = tmp.path().join("m");
    let m = model.display().to_string();
    let o = run(&["train", &log, "-m", &m, "--detectors", "iforest,autoencoder", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let detect = |m: &Path| run(&["detect", "-m", &m.display().to_string(), &log, "-q"]);
    assert_eq!(detect(&model).status.code(), Some(0));

    let copy = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        for f in std::fs::read_dir(&model).expect("dir") {
            let f = f.expect("entry");
            std::fs::copy(f.path(), d.join(f.file_name())).expect("copy");
        }
        d
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        {
            let d = copy("truncated");
            let p = d.join("iforest.safetensors");
            let b = std::fs::read(&p).expect("read");
            std::fs::write(&p, &b[..b.len() / 2]).expect("write");
            (d, "checksum")
        },
        {
            let d = copy("version");
            let p = d.join("manifest.json");
            let v = flowhound_detect::bundle::FORMAT_VERSION;
            let s = std::fs::read_to_string(&p)
                .expect("read")
                .replace(&format!("\"format_version\": {v}"), "\"format_version\": 99");
            std::fs::write(&p, s).expect("write");
            (d, "format 99")
        },
        {
            let d = copy("features");
            let p = d.join("manifest.json");
            let s = std::fs::read_to_string(&p).expect("read").replace("3600", "7200");
            std::fs::write(&p, s).expect("write");
            (d, "fitted on other features")
        },
        {
            let d = copy("missing");
            std::fs::remove_file(d.join("autoencoder.safetensors")).expect("rm");
            (d, "autoencoder.safetensors")
        },
        (tmp.path().join("nowhere"), "no such model folder"),
        (tmp.path().to_path_buf(), "not a flowhound model folder"),
    ];
    for (dir, want) in cases {
        let o = detect(&dir);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", dir.display());
        assert!(err.contains(want), "{}: expected {want:?} in {err}", dir.display());
        assert!(!err.contains("panicked"), "{err}");
    }
    // Bad training settings are listed together.
    let o = run(&["train", &log, "-m", &m, "--detectors", "iforest,knn,iforest", "--contamination", "0.9"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("\"knn\" is not a detector") && err.contains("listed twice"), "{err}");
    // Training never clobbers a folder that is not a model.
    let keep = tmp.path().join("keep");
    std::fs::create_dir_all(&keep).expect("mkdir");
    std::fs::write(keep.join("notes.txt"), "mine").expect("write");
    let o = run(&["train", &log, "-m", &keep.display().to_string(), "-q"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("refusing to replace"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(keep.join("notes.txt")).expect("kept"), "mine");
}

/// evaluate on labeled generated traffic: the numbers agree with each other
/// and with the injected attacks; the report is the dashboard's page, its
/// ground truth the same numbers for every detector; input without ground
/// truth is an input error.
#[test]
fn evaluate_measures_every_detector_and_the_ensemble() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (train_log, train_labels) = generated(tmp.path(), "train.log", 20_000, 4);
    let (test_log, test_labels) = generated(tmp.path(), "test.log", 12_000, 4);
    let model = tmp.path().join("model").display().to_string();
    let o = run(&["train", &train_log, "--labels", &train_labels, "-m", &model, "--benign-only", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let report = tmp.path().join("quality.html");
    let o = run(&[
        "evaluate",
        "-m",
        &model,
        &test_log,
        "--labels",
        &test_labels,
        "--json",
        "--report",
        &report.display().to_string(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v = json(&o);
    assert_eq!(v["n"], 12_000);
    let positives = v["positives"].as_u64().expect("positives");
    assert_eq!(positives, 600, "5 % injected attacks");
    let mut names: Vec<&str> = v["models"].as_object().expect("models").keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["autoencoder", "iforest", "lof", "ocsvm"]);
    for q in v["models"].as_object().expect("models").values().chain([&v["ensemble"]]) {
        let c = &q["confusion"];
        let [tp, fp, tn, fn_] = ["tp", "fp", "tn", "fn"].map(|k| c[k].as_u64().expect("count"));
        assert_eq!(tp + fp + tn + fn_, 12_000);
        assert_eq!(tp + fn_, positives);
        let recall = q["recall"].as_f64().expect("recall");
        assert!((recall - tp as f64 / positives as f64).abs() < 1e-12);
        assert!((q["fpr"].as_f64().expect("fpr") - fp as f64 / (fp + tn) as f64).abs() < 1e-12);
        let per: u64 = q["per_category"].as_object().expect("per").values().map(|d| d["n"].as_u64().unwrap_or(0)).sum();
        assert_eq!(per, positives, "every malicious flow in one category");
    }
    let e = &v["ensemble"];
    // The default budget (0.5 %) holds on traffic like the training's.
    assert!(e["recall"].as_f64().expect("recall") > 0.9, "{e}");
    assert!(e["roc_auc"].as_f64().expect("roc") > 0.95, "{e}");
    assert!(e["fpr"].as_f64().expect("fpr") < 0.01, "{e}");
    assert_eq!(e["per_category"].as_object().map(|m| m.len()), Some(8), "the eight injected scenarios");
    assert!(v["classification"].is_null(), "no forest, no classification");
    let html = std::fs::read_to_string(&report).expect("report");
    assert!(!html.contains("<script src") && !html.contains("<link "), "everything inlined");
    let data = html.split_once("id=\"flowhound-report\">").and_then(|(_, r)| r.split_once("</script>")).expect("data");
    let data: serde_json::Value = serde_json::from_str(data.0).expect("report data");
    let g = &data["analysis"]["summary"]["ground_truth"];
    let scorers = g["detectors"].as_array().expect("detectors");
    let names: Vec<&str> = scorers.iter().map(|d| d["name"].as_str().unwrap_or("")).collect();
    assert_eq!(names, ["iforest", "lof", "ocsvm", "autoencoder", "ensemble"]);
    for d in scorers {
        let printed =
            if d["name"] == "ensemble" { &v["ensemble"] } else { &v["models"][d["name"].as_str().unwrap_or("")] };
        assert_eq!(d["quality"]["confusion"], printed["confusion"], "{}: the page's numbers are evaluate's", d["name"]);
        assert_eq!(d["quality"]["roc_auc"], printed["roc_auc"]);
        let roc = d["roc"].as_array().expect("roc");
        assert!(roc.len() > 10 && roc[0] == serde_json::json!([0.0, 0.0]), "{}: a ROC curve from (0, 0)", d["name"]);
    }
    // The same flows without their labels cannot be evaluated.
    let o = run(&["evaluate", "-m", &model, &test_log, "-q"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("no flow of the input carries ground truth"), "{}", text(&o.stderr));
}

/// train --supervised adds a Random Forest: a fifth voter that names the
/// attack category; without ground truth it is an input error.
#[test]
fn supervised_training_adds_a_forest_that_names_attacks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (train_log, train_labels) = generated(tmp.path(), "train.log", 20_000, 4);
    let (test_log, test_labels) = generated(tmp.path(), "test.log", 12_000, 4);
    let model = tmp.path().join("model").display().to_string();
    let args = ["train", &train_log, "--labels", &train_labels, "-m", &model, "--benign-only", "--supervised"];
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("anomaly = 2 of 5 voters"), "{}", text(&o.stderr));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(Path::new(&model).join("manifest.json")).expect("read")).expect("json");
    let classes: Vec<&str> =
        manifest["supervised"]["classes"].as_array().expect("classes").iter().filter_map(Value::as_str).collect();
    assert_eq!(classes.len(), 9, "benign + eight scenarios: {classes:?}");
    assert_eq!(classes[0], "benign");
    assert_eq!(manifest["training"]["forest_rows"], 20_000);
    let imp = manifest["supervised"]["importance"].as_array().expect("importance");
    assert_eq!(imp.len(), 20);
    let shares: Vec<f64> = imp.iter().filter_map(|p| p[1].as_f64()).collect();
    assert!(shares.windows(2).all(|w| w[0] >= w[1]) && shares[0] > 0.05, "{shares:?}");
    // The ensemble's score is stacked: a weight per detector and one for the
    // forest, which saw the attacks and must count for them.
    let stack = &manifest["supervised"]["stack"];
    let w: Vec<f64> = stack["weights"].as_array().expect("stacking weights").iter().filter_map(Value::as_f64).collect();
    assert_eq!(w.len(), 5, "{stack}");
    assert!(w[4] > 0.5 && stack["bias"].as_f64().is_some(), "{stack}");

    let out = tmp.path().join("scored.jsonl");
    let o = run(&[
        "detect",
        "-m",
        &model,
        &test_log,
        "--labels",
        &test_labels,
        "--all",
        "-q",
        "-o",
        &out.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows: Vec<Value> =
        std::fs::read_to_string(&out).expect("read").lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let (mut named, mut scans, mut benign_named) = (0, 0, 0);
    for r in &rows {
        let rf = &r["models"]["random_forest"];
        let p = rf["score"].as_f64().expect("P(malicious)");
        assert!((0.0..=1.0).contains(&p));
        // Flagged when an attack class is the most probable: that class then
        // outweighs benign, so P(malicious) > 1/2; unflagged, benign outweighs
        // each of the eight attack classes, so P(malicious) ≤ 8/9.
        let flagged = rf["flagged"].as_bool().unwrap_or(false);
        assert!(!flagged || p > 0.5 - 1e-6, "{r}");
        assert!(flagged || p <= 8.0 / 9.0 + 1e-6, "{r}");
        assert_eq!(r["predicted_category"].is_null(), !rf["flagged"].as_bool().unwrap_or(false));
        if r["category"] == "port_scan_vertical" {
            scans += 1;
            named += usize::from(r["predicted_category"] == "port_scan_vertical");
        }
        if r["label"] == "benign" && !r["predicted_category"].is_null() {
            benign_named += 1;
        }
        // Five voters: all five is at least medium. Below the vote the
        // supervised side decides alone by the stacked probability (the
        // ensemble `score`): above 1/2 a low anomaly, else none.
        if r["votes"] == 5 {
            assert!(r["severity"] == "medium" || r["severity"] == "high", "{r}");
        }
        if r["votes"].as_u64() < Some(2) {
            let stacked = r["score"].as_f64().expect("score");
            let want = if stacked > 0.5 { "low" } else { "none" };
            // Rules raising alerts on their own aside.
            if r["threat_class"] != "port_scan" && r["threat_class"] != "abnormal_protocol" {
                assert_eq!(r["severity"], want, "{r}");
            }
        }
    }
    assert!(scans >= 70 && named * 10 >= scans * 9, "{named} of {scans} vertical scans named");
    assert!(benign_named * 100 < 11_400, "{benign_named} benign flows given an attack name");
    // evaluate lists the forest beside the detectors.
    let o = run(&["evaluate", "-m", &model, &test_log, "--labels", &test_labels, "--json", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v = json(&o);
    assert!(v["models"]["random_forest"]["roc_auc"].as_f64().expect("roc") > 0.99, "{}", v["models"]["random_forest"]);
    // Stacked, the ensemble ranks at least about as well as the forest alone.
    let pr = |m: &Value| m["pr_auc"].as_f64().expect("pr_auc");
    assert!(pr(&v["ensemble"]) >= pr(&v["models"]["random_forest"]) - 0.02, "{}", v["ensemble"]);
    let c = &v["classification"];
    assert!(c["per_class"]["port_scan_vertical"]["recall"].as_f64().expect("recall") > 0.9, "{c}");
    assert_eq!(c["per_class"]["benign"]["support"], 11_400);
    let rows_in_confusion: u64 = c["confusion"]
        .as_object()
        .expect("confusion")
        .values()
        .flat_map(|m| m.as_object().expect("row").values().filter_map(Value::as_u64))
        .sum();
    assert_eq!(rows_in_confusion, 12_000);
    assert!((0.0..=1.0).contains(&c["macro_f1"].as_f64().expect("macro")));
    // The same seed gives the same forest.
    let again = tmp.path().join("again").display().to_string();
    let o = run(&["train", &train_log, "--labels", &train_labels, "-m", &again, "--benign-only", "--supervised", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (a, b) = (
        std::fs::read(Path::new(&model).join("random_forest.safetensors")).expect("a"),
        std::fs::read(Path::new(&again).join("random_forest.safetensors")).expect("b"),
    );
    assert!(a == b, "forest bytes differ between two runs with one seed");
    let again: Value =
        serde_json::from_slice(&std::fs::read(Path::new(&again).join("manifest.json")).expect("read")).expect("json");
    assert_eq!(again["supervised"]["stack"], manifest["supervised"]["stack"]);
    // No ground truth, no forest.
    let o = run(&["train", &train_log, "-m", &tmp.path().join("x").display().to_string(), "--supervised", "-q"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("needs ground truth with benign and malicious flows"), "{}", text(&o.stderr));
}

/// train --holdout keeps a seeded share of flows out of training, and
/// evaluate --holdout on the same inputs scores exactly those.
#[test]
fn holdout_flows_are_left_out_of_training_and_evaluated() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (log, labels) = generated(tmp.path(), "flows.log", 12_000, 6);
    let model = tmp.path().join("model").display().to_string();
    let o = run(&["train", &log, "--labels", &labels, "-m", &model, "--holdout", "0.25", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(Path::new(&model).join("manifest.json")).expect("read")).expect("json");
    let held = manifest["training"]["held_out"].as_u64().expect("held_out");
    assert!((2_700..3_300).contains(&held), "{held} of 12000 held out for 0.25");
    assert_eq!(manifest["training"]["rows"].as_u64(), Some(12_000 - held));
    let o = run(&["evaluate", "-m", &model, &log, "--labels", &labels, "--holdout", "--json", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(json(&o)["n"].as_u64(), Some(held), "evaluate scores exactly the held-out flows");
    let o = run(&["train", &log, "-m", &model, "--holdout", "1.5", "-q"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("fraction 1.5"), "{}", text(&o.stderr));
    // A model trained without --holdout has nothing held out to evaluate.
    let o = run(&["train", &log, "-m", &model, "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = run(&["evaluate", "-m", &model, &log, "--labels", &labels, "--holdout", "-q"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("trained without --holdout"), "{}", text(&o.stderr));
}

/// Input far from time order is warned about: the same generated log with
/// its later half first warns in `features`, `train` and `detect` (their
/// windows would mix periods); the log as written does not, nor the swapped
/// one with `--sort-time`, which gives the ordered log's features.
#[test]
fn input_out_of_time_order_is_warned_about() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (log, _) = generated(tmp.path(), "day.log", 6000, 3);
    let body = std::fs::read_to_string(&log).expect("read");
    let mut lines: Vec<&str> = body.lines().collect();
    let (head, rows) = lines.split_at_mut(1);
    rows.rotate_left(rows.len() / 2);
    let swapped = tmp.path().join("swapped.log");
    std::fs::write(&swapped, format!("{}\n{}\n", head[0], rows.join("\n"))).expect("write");
    let swapped = swapped.display().to_string();
    let warned = |o: &Output| text(&o.stderr).contains("inputs not in time order?");
    // inspect counts it: half the swapped log starts hours before flows read earlier.
    let order = |log: &str| json(&run(&["inspect", "--json", log]))["time_order"].clone();
    assert_eq!(order(&log)["behind_1h"], 0);
    assert_eq!(order(&swapped)["behind_1h"], 3000);
    assert_eq!(json(&run(&["inspect", "--json", "--sort-time", &swapped]))["time_order"]["behind_1h"], 0);

    let o = run(&["features", &log, "-o", &tmp.path().join("f.csv").display().to_string()]);
    assert!(o.status.success() && !warned(&o), "{}", text(&o.stderr));
    let o = run(&["features", &swapped, "-o", &tmp.path().join("g.csv").display().to_string()]);
    assert!(o.status.success() && warned(&o), "{}", text(&o.stderr));
    let share: f64 = text(&o.stderr)
        .split(" flows (")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .expect("a share");
    assert!((10.0..=60.0).contains(&share), "{}", text(&o.stderr));
    let o = run(&["features", &swapped, "-q", "-o", &tmp.path().join("h.csv").display().to_string()]);
    assert!(o.status.success() && text(&o.stderr).is_empty(), "-q keeps it quiet: {}", text(&o.stderr));
    // --sort-time puts the flows back in order: no warning, and every row's
    // features as from the log as written (rows of one second may swap).
    let sorted = tmp.path().join("s.csv");
    let o = run(&["features", &swapped, "--sort-time", "-o", &sorted.display().to_string()]);
    assert!(o.status.success() && !warned(&o), "{}", text(&o.stderr));
    let rows_of = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_to_string(p).expect("csv").lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert!(rows_of(&sorted) == rows_of(&tmp.path().join("f.csv")), "sorted features differ from the ordered log's");
    assert!(rows_of(&tmp.path().join("g.csv")) != rows_of(&tmp.path().join("f.csv")), "swapping changed nothing");

    let model = tmp.path().join("model").display().to_string();
    let o = run(&["train", &swapped, "-m", &model]);
    assert!(o.status.success() && warned(&o), "{}", text(&o.stderr));
    let o = run(&["detect", "-m", &model, &swapped, "-o", &tmp.path().join("a.jsonl").display().to_string()]);
    assert!(o.status.success() && warned(&o), "{}", text(&o.stderr));
    let o = run(&["detect", "-m", &model, &log, "-o", &tmp.path().join("b.jsonl").display().to_string()]);
    assert!(o.status.success() && !warned(&o), "{}", text(&o.stderr));
}

/// A Zeek conn log of `n` ordinary flows (60 % DNS, 40 % SSH, completed), then
/// `odd` extra rows as given, one second apart.
fn zeek_log(path: &Path, n: usize, odd: &[&str]) {
    let mut s = String::from(
        "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\t\
         duration\torig_bytes\tresp_bytes\tconn_state\torig_pkts\tresp_pkts\n",
    );
    let t0 = 1_713_484_800u64;
    for i in 0..n {
        let (proto, service, port, bytes) = if i % 5 < 3 { ("udp", "dns", 53, 40) } else { ("tcp", "ssh", 22, 900) };
        s.push_str(&format!(
            "{}.0\tC{i}\t10.0.0.{}\t{}\t10.0.1.{}\t{port}\t{proto}\t{service}\t0.{:03}\t{bytes}\t{}\tSF\t{}\t{}\n",
            t0 + i as u64,
            1 + i % 20,
            30_000 + i % 1000,
            1 + i % 3,
            10 + i % 90,
            bytes * 3,
            2 + i % 3,
            2 + i % 2,
        ));
    }
    for (k, row) in odd.iter().enumerate() {
        s.push_str(&format!("{}.0\tX{k}\t{row}\n", t0 + (n + k) as u64));
    }
    std::fs::write(path, s).expect("write zeek log");
}

/// Categorical features are explained by name: a Zeek flow's service and
/// connection state read `irc` and `S0` (usual `dns`, `SF`), never as the
/// numeric codes the models see; a name training never saw comes from the
/// flow itself. The time-of-day features read as a clock time.
#[test]
fn explanations_name_categories() {
    let tmp = tempfile::tempdir().expect("tmp");
    let train = tmp.path().join("train.log");
    zeek_log(&train, 4000, &[]);
    let test = tmp.path().join("test.log");
    // An SSH-sized flow of a service and state training never saw.
    let odd = "10.0.0.5\t30005\t10.0.1.2\t22\ttcp\tirc\t0.050\t900\t2700\tS0\t3\t2";
    // The same with a hostile service name: a terminal escape sequence.
    let hostile = odd.replace("\tirc\t", "\t\u{1b}[2J\u{1b}]0;pwned\u{7}\t");
    zeek_log(&test, 200, &[&hostile, odd, odd, odd]);
    let model = tmp.path().join("model").display().to_string();
    let o = run(&["train", &train.display().to_string(), "-m", &model, "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = run(&["detect", "-m", &model, &test.display().to_string(), "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows: Vec<Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let odd_rows: Vec<&Value> = rows.iter().filter(|r| r["flow"].as_u64() >= Some(200)).collect();
    assert_eq!(odd_rows.len(), 4, "the odd flows are flagged ({} flagged)", rows.len());
    let (mut named, mut hostile_named) = (0, false);
    for r in &rows {
        for c in r["explanation"].as_array().into_iter().flatten() {
            let f = c["feature"].as_str().unwrap_or_default();
            if ["service", "state", "proto", "hour_sin", "hour_cos"].contains(&f) {
                assert!(c["value"].is_string() && c["baseline"].is_string(), "{c}");
                named += 1;
            }
            if f.starts_with("hour_") {
                // The generated log runs from 00:00 UTC for about an hour.
                assert!(c["value"].as_str().is_some_and(|v| v.starts_with("00:") || v.starts_with("01:")), "{c}");
            }
            let odd = r["flow"].as_u64() >= Some(200);
            if r["flow"] == 200 && f == "service" {
                assert_eq!(c["value"].as_str(), Some("\\u{1b}[2J\\u{1b}]0;pwned\\u{7}"), "{c}");
                hostile_named = true;
            } else if odd && f == "service" {
                assert_eq!((c["value"].as_str(), c["baseline"].as_str()), (Some("irc"), Some("dns")), "{c}");
            }
            if odd && f == "state" {
                assert_eq!((c["value"].as_str(), c["baseline"].as_str()), (Some("S0"), Some("SF")), "{c}");
            }
        }
        let reason = r["reason"].as_str().unwrap_or_default();
        for f in ["service ", "state "] {
            if let Some(at) = reason.find(f) {
                let word = reason[at + f.len()..].split(' ').next().unwrap_or_default();
                assert!(word.parse::<f64>().is_err() && !word.ends_with('M') && !word.ends_with('k'), "{reason}");
            }
        }
    }
    assert!(
        named > 0 && hostile_named,
        "no categorical feature among the explanations, or not the hostile one: {odd_rows:?}"
    );
    // Nothing of the hostile name reaches a terminal raw.
    let o = run(&["detect", "-m", &model, &test.display().to_string(), "-q", "--format", "table"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert!(table.contains("pwned") && !table.contains('\u{1b}') && !table.contains('\u{7}'), "{table}");
}

/// detect explains, classifies, groups and suppresses: every flagged flow
/// has a class, a reason and its top features; each injected scenario comes
/// out mostly as its own class and as an incident of it; an allowlisted
/// scanner is suppressed (counted, shown with --show-suppressed), never lost.
#[test]
fn detect_explains_classifies_groups_and_suppresses() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (train_log, train_labels) = generated(tmp.path(), "train.log", 30_000, 5);
    let (test_log, test_labels) = generated(tmp.path(), "test.log", 20_000, 5);
    let model = tmp.path().join("model").display().to_string();
    let o = run(&["train", &train_log, "--labels", &train_labels, "-m", &model, "--benign-only", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    let o = run(&["detect", "-m", &model, &test_log, "--labels", &test_labels]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows: Vec<Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert!(rows.len() > 500, "{} anomalies", rows.len());
    let mut by_cat: std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>> = Default::default();
    for r in &rows {
        let class = r["threat_class"].as_str().unwrap_or_else(|| panic!("no class: {r}"));
        assert!(r["reason"].as_str().is_some_and(|s| s.len() > 10), "{r}");
        assert_eq!(r["suppressed"], false);
        let e = r["explanation"].as_array().unwrap_or_else(|| panic!("no explanation: {r}"));
        assert!((1..=5).contains(&e.len()), "{r}");
        let shares: Vec<f64> = e.iter().map(|c| c["contribution"].as_f64().expect("contribution")).collect();
        assert!(shares.windows(2).all(|w| w[0] >= w[1]) && shares.iter().sum::<f64>() <= 1.001, "{shares:?}");
        for c in e {
            assert!(
                c["feature"].is_string()
                    && c.get("value").is_some()
                    && c.get("baseline").is_some()
                    && c["z"].is_number()
            );
        }
        if let Some(cat) = r["category"].as_str() {
            *by_cat.entry(cat.to_string()).or_default().entry(class.to_string()).or_default() += 1;
        }
    }
    for (cat, want) in [
        ("port_scan_vertical", "port_scan"),
        ("port_scan_horizontal", "port_scan"),
        ("dos", "dos"),
        ("ddos", "ddos"),
        ("exfiltration", "exfiltration"),
        ("connection_burst", "connection_burst"),
        ("unknown_ip", "unknown_ip"),
        ("abnormal_protocol", "abnormal_protocol"),
    ] {
        let classes = &by_cat[cat];
        let total: usize = classes.values().sum();
        let right = classes.get(want).copied().unwrap_or(0);
        assert!(right * 10 >= total * 6, "{cat}: {right} of {total} flows classed {want}: {classes:?}");
    }
    let summary = text(&o.stderr);
    assert!(summary.contains("threat class given to the malicious flows"), "{summary}");
    let scan = rows
        .iter()
        .find(|r| r["category"] == "port_scan_vertical" && r["threat_variant"] == "vertical")
        .expect("a vertical scan flow");
    assert_eq!(scan["attack_technique"], "T1046");
    assert!(scan["reason"].as_str().is_some_and(|s| s.contains("distinct ports on 1 host(s) within 60s")), "{scan}");

    let incidents = |extra: &[&str]| {
        let mut args = vec!["detect", "-m", &model, &test_log, "--incidents"];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let list: Vec<Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
        (list, text(&o.stderr))
    };
    let (list, _) = incidents(&[]);
    let rank = |v: &Value| ["none", "low", "medium", "high"].iter().position(|s| v["severity"] == *s);
    assert!(list.windows(2).all(|w| rank(&w[0]) >= rank(&w[1])), "sorted by severity");
    for class in ["port_scan", "dos", "ddos", "exfiltration", "connection_burst", "unknown_ip", "abnormal_protocol"] {
        assert!(list.iter().any(|i| i["threat_class"] == class), "no {class} incident");
    }
    let scanner = list
        .iter()
        .find(|i| i["threat_variant"] == "vertical" && i["flows"].as_u64() > Some(100))
        .expect("a vertical scan incident");
    assert!(scanner["distinct_ports"].as_u64() > Some(100) && scanner["distinct_targets"] == 1, "{scanner}");
    assert_eq!(scanner["samples"].as_array().map(Vec::len), Some(5));
    let actor = scanner["actor"].as_str().expect("actor").to_string();

    let allow = tmp.path().join("allow.toml");
    std::fs::write(&allow, format!("[[allow]]\ncidr = \"{actor}/32\"\nreason = \"our pentest\"\n")).expect("write");
    let allow = allow.display().to_string();
    let (list, summary) = incidents(&["--allowlist", &allow]);
    assert!(!list.iter().any(|i| i["actor"] == actor.as_str()), "the allowlisted scanner is not reported");
    assert!(summary.contains("anomalies suppressed by the allowlist"), "{summary}");
    let (list, _) = incidents(&["--allowlist", &allow, "--show-suppressed"]);
    let shown = list.iter().find(|i| i["actor"] == actor.as_str() && i["threat_class"] == "port_scan").expect("shown");
    assert_eq!(shown["suppressed_flows"], shown["flows"]);

    // Broken allowlists and rule tables are usage errors naming every problem.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[[allow]]\ncidr = \"10.0.0.0/99\"\nports = [70000]\n").expect("write");
    let o = run(&["detect", "-m", &model, &test_log, "--allowlist", &bad.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("\"10.0.0.0/99\" is not an address or CIDR") && e.contains("port 70000"), "{e}");
    std::fs::write(&bad, "[[rule]]\nclass = \"x\"\nwhen = [\"no_such_feature > 1\"]\nreason = \"r\"\n").expect("write");
    let o = run(&["detect", "-m", &model, &test_log, "--rules", &bad.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no feature named \"no_such_feature\""), "{}", text(&o.stderr));
}

/// The embedded data of a static report.
fn report_data(html: &str) -> Value {
    let start = html.find(r#"id="flowhound-report">"#).expect("data element") + r#"id="flowhound-report">"#.len();
    let end = start + html[start..].find("</script>").expect("end");
    serde_json::from_str(&html[start..end]).expect("report JSON")
}

/// `report` writes one self-contained page whose numbers are `detect`'s;
/// `train --feedback DB` turns the dashboard's false positives into benign
/// training rows: the retrained model flags far fewer of them and keeps the
/// attacks.
#[test]
fn report_and_training_with_dashboard_feedback() {
    let dir = tempfile::tempdir().expect("tmp");
    let (train, train_labels) = generated(dir.path(), "train.log", 12_000, 21);
    let (day, day_labels) = generated(dir.path(), "day.log", 8_000, 22);
    let m1 = dir.path().join("m1").display().to_string();
    let o = run(&["train", &train, "--labels", &train_labels, "--benign-only", "-m", &m1, "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    let html_path = dir.path().join("r.html");
    let o = run(&["report", "-m", &m1, &day, "--labels", &day_labels, "-o", &html_path.display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(&html_path).expect("report");
    assert!(!html.contains("src=\"/assets/") && !html.contains("href=\"/assets/"), "every asset inlined");
    let data = report_data(&html);
    let o = run(&["detect", "-m", &m1, &day, "--labels", &day_labels, "-q"]);
    let detected = text(&o.stdout).lines().count() as u64;
    assert_eq!(data["analysis"]["summary"]["flows"], 8000);
    assert_eq!(data["analysis"]["summary"]["anomalies"], detected, "the report counts what detect writes");
    assert_eq!(data["anomalies"].as_array().map(Vec::len), Some(detected as usize));
    assert!(data["analysis"]["summary"]["ground_truth"]["quality"]["roc_auc"].as_f64().is_some_and(|a| a > 0.9));
    assert!(data["incidents"].as_array().is_some_and(|i| !i.is_empty()));
    // Incidents as detect reports them: the digest counted, not listed.
    let o = run(&["detect", "-m", &m1, &day, "--incidents"]);
    let incidents = text(&o.stdout).lines().count();
    assert_eq!(data["incidents"].as_array().map(Vec::len), Some(incidents), "the report's incidents are detect's");
    assert_eq!(data["analysis"]["summary"]["incidents"]["total"], incidents);
    let digest = text(&o.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("digest: ")?.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert_eq!(data["analysis"]["summary"]["incidents"]["digest"], digest);
    let o = run(&["report", "-m", &m1, "/nonexistent.log", "-o", &html_path.display().to_string()]);
    assert_eq!(o.status.code(), Some(3), "a missing input is an input error");

    // A dashboard database where the analyst marked every false positive of
    // the day's analysis.
    let db = dir.path().join("fh.db");
    let store = flowhound_server::Store::open(&db).expect("db");
    let bundle = flowhound_detect::Bundle::load(Path::new(&m1)).expect("model");
    let labels =
        flowhound_flow::labels::LabelTable::parse(&std::fs::read(&day_labels).expect("labels")).expect("table");
    let opts = flowhound_source::ScanOptions { labels: Some(std::sync::Arc::new(labels)), ..Default::default() };
    let inputs = [flowhound_source::Input::Path(day.clone().into())];
    let a =
        flowhound_server::analyze(&bundle, &inputs, &opts, &Default::default(), &Default::default()).expect("analysis");
    let id = store.create_analysis("day.log", 1).expect("create");
    store.finish_analysis(id, &a).expect("store");
    let label = |x: &flowhound_server::analysis::Anomaly| {
        serde_json::from_str::<Value>(&x.json).expect("json")["label"].clone()
    };
    let fp: Vec<u64> = a.anomalies.iter().filter(|x| label(x) == "benign").map(|x| x.flow).collect();
    let tp = a.anomalies.iter().filter(|x| label(x) == "malicious").count();
    // Enough to measure their effect (at the 0.5 % budget: ~80 of 12,000 flows).
    assert!(fp.len() > 30, "{} false positives to mark", fp.len());
    for f in &fp {
        let v = flowhound_engine::feedback::Judgement::FalsePositive;
        store.add_feedback(id, Some(*f as i64), None, v, "fine").expect("feedback").expect("flagged flow");
    }
    drop(store);

    let m2 = dir.path().join("m2").display().to_string();
    let db = db.display().to_string();
    let o = run(&["train", &train, "--labels", &train_labels, "--benign-only", "-m", &m2, "--feedback", &db]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("feedback: {} false positives as benign rows", fp.len())), "{err}");
    let o = run(&["detect", "-m", &m2, &day, "--labels", &day_labels, "-q"]);
    let after: Vec<Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    // At a false-positive budget the share of normal flows flagged stays
    // about the budget; what feedback changes is which: the flows the
    // analyst called normal are not flagged again.
    let marked: std::collections::HashSet<u64> = fp.iter().copied().collect();
    let fp_after = after.iter().filter(|v| v["label"] == "benign").count();
    let again = after.iter().filter(|v| v["flow"].as_u64().is_some_and(|f| marked.contains(&f))).count();
    let tp_after = after.iter().filter(|v| v["label"] == "malicious").count();
    eprintln!(
        "false positives {} → {fp_after} ({again} of the marked ones again), attacks flagged {tp} → {tp_after}",
        fp.len()
    );
    assert!(again * 2 < fp.len(), "{again} of {} marked false positives flagged again", fp.len());
    assert!(fp_after < fp.len() * 2, "false positives {} → {fp_after}", fp.len());
    assert!(tp_after * 100 >= tp * 95, "attacks flagged {tp} → {tp_after}");

    // A file that is not a dashboard database is a usage error.
    let o = run(&["train", &train, "-m", &m2, "--feedback", &train]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

#[test]
fn serve_refuses_to_listen_openly_without_a_token() {
    let o = run(&["serve", "-m", "/nonexistent", "--addr", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--token"), "{}", text(&o.stderr));
    let o = run(&["serve", "-m", "/nonexistent", "--max-upload", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--max-upload"), "{}", text(&o.stderr));
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("x.db").display().to_string();
    let o = run(&["serve", "-m", "/nonexistent", "--db", &db, "--addr", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2), "a missing model is a usage error");
    assert!(text(&o.stderr).contains("/nonexistent"), "{}", text(&o.stderr));
}

/// A pcap header (µs, little-endian) of link type `link`, and one Ethernet
/// frame of a TCP SYN 10.0.0.1:40000 → 10.0.0.2:80 at 2023-11-14.
fn capture(link: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
    out.extend_from_slice(&link.to_le_bytes());
    let mut f = vec![2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x04, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(f.len() as u32).to_le_bytes());
    out.extend_from_slice(&(f.len() as u32).to_le_bytes());
    out.extend_from_slice(&f);
    out
}

/// What a new user meets with odd inputs: every answer names what is wrong,
/// nothing untrusted reaches the terminal raw, and nothing exits 0 that read
/// nothing.
#[test]
fn odd_inputs_get_answers_that_name_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n).display().to_string();
    // Empty and blank-only inputs: exit 3 as the help promises, and said.
    std::fs::write(p("empty.log"), b"").expect("write");
    std::fs::write(p("blank.log"), b"\n  \n\t\n\n").expect("write");
    for (name, said) in [("empty.log", "the input is empty"), ("blank.log", "only blank lines")] {
        let o = run(&["inspect", &p(name)]);
        assert_eq!(o.status.code(), Some(3), "{name}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains(said), "{name}: {}", text(&o.stderr));
    }
    // A capture: its format by name; a corrupt header is not "empty"; an
    // unknown link type is not silence.
    std::fs::write(p("ok.pcap"), capture(1)).expect("write");
    let o = run(&["inspect", &p("ok.pcap")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("[pcap]  1 records"), "{}", text(&o.stdout));
    let mut corrupt = capture(1);
    corrupt[4..8].copy_from_slice(&[9, 9, 9, 9]);
    corrupt.truncate(22);
    std::fs::write(p("corrupt.pcap"), &corrupt).expect("write");
    std::fs::write(p("odd-link.pcap"), capture(147)).expect("write");
    for (name, said) in [("corrupt.pcap", "pcap header"), ("odd-link.pcap", "link type")] {
        let o = run(&["inspect", &p(name)]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{name}: {err}");
        assert!(err.contains(said) && !err.contains("empty"), "{name}: {err}");
        assert!(text(&o.stdout).contains("[pcap]"), "{name}: {}", text(&o.stdout));
    }
    // A binary that is no flow log: said in words, no raw bytes on the terminal.
    let mut elf = b"\x7fELF\x02\x01\x01\x00\x00\x00\x1b[2J,\x1b]0;pwned\x07,x\n".to_vec();
    elf.extend(std::iter::repeat_n(0x1bu8, 2000));
    std::fs::write(p("prog"), &elf).expect("write");
    let o = run(&["inspect", &p("prog")]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("binary data") && err.contains("7f 45 4c 46"), "{err}");
    assert!(!out.contains('\x1b') && !err.contains('\x1b') && !err.contains('\0'), "raw control bytes: {err:?}");
    // A CSV without a column the mapping names: the first line is no header,
    // so no later line becomes one; by position, the same file reads.
    let mut rows = String::new();
    for i in 0..50 {
        rows += &format!("10.0.0.{i},10.0.1.9,{},tcp,300\n", 40000 + i);
    }
    // A data line that happens to hold the mapped names.
    rows += "src_ip,dst_ip,sport,proto,bytes\n";
    for i in 0..10 {
        rows += &format!("10.0.2.{i},10.0.1.9,{},tcp,300\n", 41000 + i);
    }
    std::fs::write(p("bare.csv"), &rows).expect("write");
    let named = ["--map", "src=src_ip", "--map", "dst=dst_ip", "--map", "protocol=proto", "--map", "bytes=bytes"];
    let o = run(&[&["inspect", "--json", &p("bare.csv")][..], &named[..]].concat());
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(json(&o)["records"], 0, "no garbage rows under a data line taken for a header");
    assert!(text(&o.stderr).contains("map columns by position"), "{}", text(&o.stderr));
    let pos =
        ["--map", "src=#1", "--map", "dst=#2", "--map", "src_port=#3", "--map", "protocol=#4", "--map", "bytes=#5"];
    let o = run(&[&["inspect", "--json", &p("bare.csv")][..], &pos[..]].concat());
    assert_eq!(json(&o)["records"], 60, "{}", text(&o.stderr));
    // The names line itself is rejected (not a record), nothing else.
    assert_eq!(json(&o)["rejected"], 1, "{}", text(&o.stderr));
    let o = run(&["inspect", &p("bare.csv"), "--no-header", "--map", "src=src_ip"]);
    assert_eq!(o.status.code(), Some(2), "a named column and no header contradict: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("by position"), "{}", text(&o.stderr));
    // train with an input it cannot read writes no model, and says so.
    let (log, _) = generated(dir.path(), "day.log", 3000, 3);
    let o = run(&["train", &log, &p("corrupt.pcap"), "-m", &p("model"), "-q"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("no model was written") && err.contains("corrupt.pcap"), "{err}");
    assert!(!dir.path().join("model").exists());
}

/// review picks flows to judge, tune learns from the verdicts: the flows
/// called normal are not flagged again, confirmed attacks train a forest,
/// and bad verdict files are refused with every problem.
#[test]
fn review_picks_flows_to_judge_and_tune_learns_from_the_verdicts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (train_log, train_labels) = generated(tmp.path(), "train.log", 12_000, 1);
    let (day, day_labels) = generated(tmp.path(), "day.log", 8_000, 1);
    let model = tmp.path().join("model").display().to_string();
    let o = run(&["train", &train_log, "--labels", &train_labels, "-m", &model, "--benign-only", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    let o = run(&["review", "-m", &model, &day, "--labels", &day_labels, "-n", "30"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let queue: Vec<Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(queue.len(), 30, "{}", text(&o.stderr));
    let why = |w: &str| queue.iter().filter(|r| r["review"] == w).count();
    assert_eq!(why("most anomalous") + why("at the operating point"), 30);
    assert!(why("most anomalous") >= 15, "half the queue from the top");
    // No source fills the queue: two per source while others are left.
    let mut per_src: std::collections::HashMap<String, usize> = Default::default();
    for r in &queue {
        *per_src.entry(r["src"].to_string()).or_default() += 1;
    }
    assert!(per_src.values().all(|n| *n <= 2), "{per_src:?}");
    // Flows come as detect prints them, with an explanation.
    assert!(queue.iter().all(|r| r["flow"].is_u64() && r["score"].is_number() && r["threat_class"].is_string()));

    // The analyst's verdicts (ground truth plays the analyst).
    let mut csv = String::from("flow,verdict\n");
    for r in &queue {
        let v = if r["label"] == "malicious" { "true_positive" } else { "false_positive" };
        csv += &format!("{},{v}\n", r["flow"]);
    }
    let verdicts = tmp.path().join("verdicts.csv");
    std::fs::write(&verdicts, &csv).expect("write");
    let fps: Vec<u64> = queue.iter().filter(|r| r["label"] != "malicious").filter_map(|r| r["flow"].as_u64()).collect();
    let tps = queue.len() - fps.len();
    let tuned = tmp.path().join("tuned").display().to_string();
    let v = verdicts.display().to_string();
    let o = run(&["tune", "-m", &model, &day, "--verdicts", &v, "-o", &tuned]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains(&format!("{} false positives as normal rows, {tps} true positives", fps.len())), "{err}");
    // A second review with the verdicts skips what was judged.
    let o = run(&["review", "-m", &tuned, &day, "-n", "10", "--skip", &v, "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let judged: std::collections::HashSet<u64> = queue.iter().filter_map(|r| r["flow"].as_u64()).collect();
    for l in text(&o.stdout).lines() {
        let r: Value = serde_json::from_str(l).expect("json");
        assert!(!judged.contains(&r["flow"].as_u64().unwrap_or(u64::MAX)), "judged flow {} picked again", r["flow"]);
    }
    // The tuned model has a forest when there were attacks to learn from,
    // and does not flag again what the analyst called normal.
    if tps > 0 {
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(tmp.path().join("tuned/manifest.json")).expect("manifest"))
                .expect("json");
        assert!(m["supervised"]["classes"].as_array().is_some_and(|c| c.len() >= 2), "{}", m["supervised"]);
    }
    let o = run(&["detect", "-m", &tuned, &day, "-q"]);
    let flagged: std::collections::HashSet<u64> =
        text(&o.stdout).lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()?["flow"].as_u64()).collect();
    let again = fps.iter().filter(|f| flagged.contains(f)).count();
    assert!(again * 2 <= fps.len(), "{again} of {} false positives flagged again", fps.len());

    // Bad verdict files: every bad line listed; flows past the input named.
    std::fs::write(&verdicts, "flow,verdict\n3,maybe\nx,true_positive\n5,benign\n").expect("write");
    let o = run(&["tune", "-m", &model, &day, "--verdicts", &v, "-o", &tuned]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("2 bad line(s)") && err.contains("line 2") && err.contains("line 3"), "{err}");
    std::fs::write(&verdicts, "{\"flow\": 99999999, \"verdict\": \"malicious\"}\n").expect("write");
    let o = run(&["tune", "-m", &model, &day, "--verdicts", &v, "-o", &tuned]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("99999999"), "{}", text(&o.stderr));
}

/// Beacons, brute force and long connections need a pair's many connections
/// or hours: with enough attack records (here 2,000) `generate` injects
/// them, and each comes out mostly as its class, in incidents of one peer
/// whose reasons carry the measurements.
#[test]
fn generated_beacons_brute_force_and_long_connections_are_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (train, train_labels) = generated(tmp.path(), "train", 40_000, 42);
    let (test, test_labels) = generated(tmp.path(), "test", 40_000, 43);
    let model = tmp.path().join("model").display().to_string();
    let o = run(&["train", &train, "--labels", &train_labels, "--benign-only", "-m", &model, "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = run(&["detect", "-m", &model, &test, "--labels", &test_labels, "--all", "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let mut by_cat: std::collections::BTreeMap<String, (usize, std::collections::BTreeMap<String, usize>)> =
        std::collections::BTreeMap::new();
    for l in text(&o.stdout).lines() {
        let r: Value = serde_json::from_str(l).expect("json line");
        let Some(cat) = r["category"].as_str() else { continue };
        let e = by_cat.entry(cat.to_string()).or_default();
        e.0 += 1;
        if r["severity"] != "none" {
            *e.1.entry(r["threat_class"].as_str().unwrap_or("?").to_string()).or_default() += 1;
        }
    }
    // Shares of all the scenario's flows: a beacon's first 20 calls and a
    // tunnel's first hour (a quarter to a half of its records here) cannot
    // be what they become, and are first contact with a stranger meanwhile.
    for (cat, share) in [("beacon", 0.6), ("brute_force", 0.8), ("long_connection", 0.5)] {
        let (total, classes) = &by_cat[cat];
        let right = classes.get(cat).copied().unwrap_or(0);
        eprintln!("{cat}: {right} of {total} flows classed {cat}: {classes:?}");
        assert!(right as f64 >= *total as f64 * share, "{cat}: {right} of {total} flows classed {cat}: {classes:?}");
    }
    let o = run(&["detect", "-m", &model, &test, "--incidents", "-q"]);
    let list: Vec<Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    for (class, says) in
        [("beacon", " every ~"), ("brute_force", " attempts "), ("long_connection", " has been open for ")]
    {
        let of: Vec<&Value> = list.iter().filter(|i| i["threat_class"] == class).collect();
        assert!(!of.is_empty(), "no {class} incident");
        for i in of {
            assert!(i["peer"]["port"].is_u64(), "{i}");
            assert!(i["reason"].as_str().is_some_and(|r| r.contains(says)), "{i}");
        }
    }
}
