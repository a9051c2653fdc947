//! The classes that take hours or many alike connections to see, on real
//! traffic (issue 29): an IoT-23 Mirai bot's calls to its controller are a
//! `beacon` incident per controller with the period in the reason; CIC's
//! FTP- and SSH-Patator are `brute_force`; an Internet-facing host's day of
//! SSH password guessing is one incident per service, not one per bot, and
//! no beacon is named for a pair seen fewer than ten times. Skips with a
//! note when `../shared/datasets` is absent (CI has it).

#[path = "aws/run.rs"]
mod run;

use std::collections::BTreeMap;
use std::path::PathBuf;

use run::{flowhound, ok, s};

/// Runs flowhound, which must succeed, and returns its standard output.
fn out(args: &[&str]) -> String {
    let o = flowhound(&[], args);
    ok(&o);
    String::from_utf8_lossy(&o.stdout).into_owned()
}
use serde_json::Value;

fn datasets() -> Option<PathBuf> {
    flowhound_source::datasets_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// Per ground-truth category, the classes its flagged flows got, and how
/// many flows it has.
fn classes_by_category(rows: &[Value]) -> BTreeMap<String, (usize, BTreeMap<String, usize>)> {
    let mut by: BTreeMap<String, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r["label"] == "malicious") {
        let e = by.entry(r["category"].as_str().unwrap_or("?").to_string()).or_default();
        e.0 += 1;
        if r["severity"] != "none" {
            *e.1.entry(r["threat_class"].as_str().unwrap_or("?").to_string()).or_default() += 1;
        }
    }
    by
}

/// IoT-23 capture 8-1 unseen in training (the model learns the benign flows
/// of the seven other captures): its bot's C&C flows are flagged, nearly all
/// of them as `beacon`, in one incident per controller saying "every ~80 s".
#[test]
fn a_mirai_bots_calls_to_its_controller_are_a_beacon_with_its_period() {
    let Some(d) = datasets() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let iot = d.join("iot-23");
    let mut train: Vec<String> = std::fs::read_dir(&iot)
        .expect("iot-23")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv") && !s(p).contains("Capture-8-1"))
        .map(|p| s(&p))
        .collect();
    train.sort();
    assert_eq!(train.len(), 7);
    let model = s(&dir.path().join("model"));
    let mut args = vec!["train"];
    args.extend(train.iter().map(String::as_str));
    args.extend(["--sort-time", "--benign-only", "-m", &model, "-q"]);
    ok(&flowhound(&[], &args));
    let test = s(&iot.join("CTU-Malware-Capture-8-1-labeled.csv"));
    let rows = lines(&out(&["detect", "-m", &model, &test, "--sort-time", "--all", "-q"]));
    let by = classes_by_category(&rows);
    let (total, classes) = &by["C&C"];
    let flagged: usize = classes.values().sum();
    let beacon = classes.get("beacon").copied().unwrap_or(0);
    eprintln!("C&C: {total} flows, {flagged} flagged, classes {classes:?}");
    assert!(flagged * 10 >= total * 9, "{flagged} of {total} C&C flows flagged");
    assert!(beacon * 10 >= total * 9, "{beacon} of {total} C&C flows called beacon");
    let benign = rows.iter().filter(|r| r["label"] == "benign").count();
    let benign_flagged = rows.iter().filter(|r| r["label"] == "benign" && r["severity"] != "none").count();
    assert!(benign_flagged * 100 <= benign, "{benign_flagged} of {benign} benign flows flagged");

    let incidents = lines(&out(&["detect", "-m", &model, &test, "--sort-time", "--incidents", "-q"]));
    let beacons: Vec<&Value> = incidents.iter().filter(|i| i["threat_class"] == "beacon").collect();
    // The capture's bot calls two addresses of its controller on port 50.
    assert_eq!(beacons.len(), 2, "{beacons:?}");
    for b in beacons {
        assert_eq!((&b["actor"], &b["peer"]["port"]), (&Value::from("192.168.100.113"), &Value::from(50)), "{b}");
        let reason = b["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("every ~80 s") && reason.contains("4 connection(s) a cycle"), "{reason}");
        assert!(b["flows"].as_u64() > Some(4000), "{b}");
    }
}

/// CIC-IDS2017's FTP-Patator and SSH-Patator (a model of its benign rows):
/// at least 90 % of each attack's flows are `brute_force`, one incident
/// per attacker and service.
#[test]
fn ftp_and_ssh_patator_are_brute_force() {
    let Some(d) = datasets() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let cic = d.join("cic-ids2017-improved-sample");
    let model = s(&dir.path().join("model"));
    ok(&flowhound(&[], &["train", &s(&cic.join("BENIGN_part-a.csv")), "--sort-time", "-m", &model, "-q"]));
    for (file, port) in [("FTP-Patator_3972.csv", 21), ("SSH-Patator_2961.csv", 22)] {
        let f = s(&cic.join(file));
        let rows = lines(&out(&["detect", "-m", &model, &f, "--sort-time", "--all", "-q"]));
        let by = classes_by_category(&rows);
        let (total, classes) = by.values().next().expect("one attack category");
        let brute = classes.get("brute_force").copied().unwrap_or(0);
        eprintln!("{file}: {total} flows, classes {classes:?}");
        assert!(brute * 10 >= total * 9, "{file}: {brute} of {total} flows called brute_force");
        let incidents = lines(&out(&["detect", "-m", &model, &f, "--sort-time", "--incidents", "-q"]));
        let brute: Vec<&Value> = incidents.iter().filter(|i| i["threat_class"] == "brute_force").collect();
        assert_eq!(brute.len(), 1, "{file}: {brute:?}");
        assert_eq!((&brute[0]["actor"], &brute[0]["peer"]["port"]), (&Value::from("172.16.0.1"), &Value::from(port)));
        assert_eq!(brute[0]["attack_technique"], "T1110");
    }
}

/// Twelve hours of an Internet-facing host: its SSH and MySQL password
/// guessing by well over a hundred bots is one incident per service, and no
/// beacon is named for a pair seen fewer than ten times (the host counted
/// as inside, so its own outbound calls could be beacons).
#[test]
fn an_internet_facing_hosts_day_is_one_brute_force_incident_per_service_and_no_thin_beacon() {
    let Some(d) = datasets() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = s(&d.join("zeek-conn"));
    let inputs: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(&logs)
            .expect("zeek-conn")
            .filter_map(|e| e.ok().map(|e| s(&e.path())))
            .filter(|p| p.contains("/conn."))
            .collect();
        v.sort();
        v
    };
    assert_eq!(inputs.len(), 12);
    let model = s(&dir.path().join("model"));
    let mut args = vec!["train"];
    args.extend(inputs.iter().map(String::as_str));
    args.extend(["--internal", "64.225.56.201/32", "-m", &model, "-q"]);
    ok(&flowhound(&[], &args));
    let mut args = vec!["detect", "-m", &model];
    args.extend(inputs.iter().map(String::as_str));
    args.extend(["--incidents", "-q"]);
    let incidents = lines(&out(&args));
    let brute: Vec<&Value> = incidents.iter().filter(|i| i["threat_class"] == "brute_force").collect();
    let mut ports: Vec<u64> = brute.iter().filter_map(|i| i["peer"]["port"].as_u64()).collect();
    ports.sort_unstable();
    assert_eq!(ports, [22, 3306], "{brute:?}");
    let ssh = brute.iter().find(|i| i["peer"]["port"] == 22).expect("the SSH incident");
    assert_eq!((&ssh["actor"], &ssh["threat_variant"]), (&Value::from("64.225.56.201"), &Value::from("from_internet")));
    assert!(ssh["distinct_targets"].as_u64() > Some(100), "the bots are its peers: {ssh}");
    for b in incidents.iter().filter(|i| i["threat_class"] == "beacon") {
        assert!(b["flows"].as_u64() >= Some(10), "a beacon of a thin pair: {b}");
        assert!(b["reason"].as_str().is_some_and(|r| r.contains(" every ~")), "{b}");
    }
    assert!(incidents.len() <= 10, "{} incidents for 12 hours: {incidents:?}", incidents.len());
}
