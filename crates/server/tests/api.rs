//! The dashboard API in-process (`Router` + `oneshot`): uploads analyzed in
//! the background, anomalies and incidents served with their explanations,
//! feedback kept, allowlist suggestions applied, retraining with feedback
//! that makes the next run better, tokens and upload limits enforced.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use flowhound_detect::{EnsembleParams, Params, Trainer};
use flowhound_features::{ExtractorParams, PipelineParams};
use flowhound_flow::{Action, Counts, FlowRecord, GroundTruth, Timestamp};
use flowhound_server::{AppState, ServerConfig, Store};
use flowhound_synth::GenParams;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const DAY: i64 = 86_400;
/// 2026-11-02T00:00:00Z
const START: i64 = 1_793_577_600;
const BACKUP_SRC: &str = "10.0.1.77";
const BACKUP_DST: &str = "198.51.100.20";

fn synth(flows: u64, day: i64) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    let p = GenParams { flows, seed: 5, start: Timestamp((START + day * DAY) * 1_000_000), ..Default::default() };
    flowhound_synth::generate(&p, |b| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .expect("generate");
    out
}

/// A benign pattern the training day never saw: a nightly-style backup job
/// pushing ~40 MB to one external address every 10 minutes all day.
fn backup(day: i64) -> Vec<FlowRecord> {
    (0..144)
        .map(|k| {
            let t = (START + day * DAY + k * 600 + 7) * 1_000_000;
            let mut r = FlowRecord {
                start: Some(Timestamp(t)),
                end: Some(Timestamp(t + 55_000_000)),
                src: BACKUP_SRC.parse().ok(),
                dst: BACKUP_DST.parse().ok(),
                src_port: Some(40_000 + k as u16),
                dst_port: Some(443),
                protocol: Some(6),
                packets: Counts::total(28_000 + k as u64),
                bytes: Counts::total(40_000_000 + 1000 * k as u64),
                action: Some(Action::Accept),
                tcp_flags: Some(0x1b),
                truth: Some(GroundTruth { malicious: false, category: None }),
                ..Default::default()
            };
            r.derive_duration();
            r
        })
        .collect()
}

fn merged(mut a: Vec<FlowRecord>, b: Vec<FlowRecord>) -> Vec<FlowRecord> {
    a.extend(b);
    a.sort_by_key(|r| r.start.map(|t| t.0));
    a
}

/// VPC text and its labels file, as `generate` writes them.
fn vpc(recs: &[FlowRecord]) -> (Vec<u8>, Vec<u8>) {
    flowhound_synth::vpc_with_labels(recs)
}

fn train(dir: &Path) {
    let mut t = Trainer::new(ExtractorParams::default(), true, None, None).expect("trainer");
    t.push(&synth(30_000, 0));
    let dets: Vec<Params> = ["iforest", "lof", "ocsvm", "autoencoder"]
        .iter()
        .map(|n| Params::default_for(flowhound_detect::Kind::parse(n).expect("kind")))
        .collect();
    let ep = EnsembleParams { contamination: 0.05, min_votes: None, fpr: None };
    let (b, _) = t.finish(&PipelineParams::default(), &dets, &ep, 7, Duration::ZERO, &|_, _| {}).expect("fit");
    b.save(dir).expect("save");
}

struct Fixture {
    _tmp: tempfile::TempDir,
    app: Router,
    state: Arc<AppState>,
}

fn fixture(token: Option<&str>, max_upload: usize) -> Fixture {
    fixture_keeping(token, max_upload, 100, u64::MAX)
}

fn fixture_keeping(token: Option<&str>, max_upload: usize, keep: usize, max_db_bytes: u64) -> Fixture {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    train(&model);
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().expect("addr"),
        model_dir: model,
        db: tmp.path().join("data/flowhound.db"),
        token: token.map(str::to_string),
        max_upload,
        workers: 2,
        feedback_weight: flowhound_engine::retrain::DEFAULT_WEIGHT,
        keep,
        max_db_bytes,
    };
    let state = AppState::new(&config).expect("state");
    Fixture { app: flowhound_server::api::router(state.clone()), state, _tmp: tmp }
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

fn post_json(path: &str, v: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .expect("request")
}

fn multipart(parts: &[(&str, &str, &[u8])]) -> Request<Body> {
    let boundary = "flowhound-test-boundary-7f3a";
    let mut body = Vec::new();
    for (field, file, bytes) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Request::post("/api/analyses")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(body))
        .expect("request")
}

/// Uploads and waits until the analysis is done; returns its id.
async fn analyze(app: &Router, log: &[u8], labels: &[u8]) -> i64 {
    let (s, v) = call(app, multipart(&[("file", "day.log", log), ("labels", "day.labels.csv", labels)])).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_i64().expect("id");
    for _ in 0..600 {
        let (_, a) = call(app, get(&format!("/api/analyses/{id}"))).await;
        match a["status"].as_str() {
            Some("done") => return id,
            Some("failed") => panic!("analysis failed: {a}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("analysis {id} did not finish");
}

/// All flagged flows of an analysis.
async fn flagged(app: &Router, id: i64) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let (s, v) = call(app, get(&format!("/api/analyses/{id}/anomalies?limit=5000&offset={}", out.len()))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return out;
        }
        out.extend(items);
    }
}

fn is_backup(f: &Value) -> bool {
    f["src"] == BACKUP_SRC && f["dst"] == BACKUP_DST
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_makes_the_next_run_better_and_attacks_stay_flagged() {
    let fx = fixture(None, 64 << 20);
    let day = merged(synth(20_000, 1), backup(1));
    let (log, labels) = vpc(&day);
    let first = analyze(&fx.app, &log, &labels).await;

    let (_, a) = call(&fx.app, get(&format!("/api/analyses/{first}"))).await;
    let summary = &a["summary"];
    assert_eq!(summary["flows"], day.len() as u64);
    assert!(summary["order_warning"].is_null(), "{}", summary["order_warning"]);
    assert_eq!(a["model_version"], 1);
    let gt = &summary["ground_truth"];
    assert!(gt["quality"]["roc_auc"].as_f64().expect("auc") > 0.95, "{gt}");
    for chart in ["timeline", "distributions", "heatmap", "pca", "correlation", "models"] {
        assert!(a["charts"][chart].is_object(), "chart {chart} missing");
    }
    assert!(!a["charts"]["pca"]["points"].as_array().expect("points").is_empty());

    // The same day with its later half first: the summary says the windows mixed periods.
    let mut swapped = day.clone();
    swapped.rotate_left(day.len() / 2);
    let (slog, slabels) = vpc(&swapped);
    let s_id = analyze(&fx.app, &slog, &slabels).await;
    let (_, s_a) = call(&fx.app, get(&format!("/api/analyses/{s_id}"))).await;
    let warning = s_a["summary"]["order_warning"].as_str().unwrap_or_default();
    assert!(warning.contains("not in time order") && warning.contains("upload the flows in time order"), "{warning}");

    let before = flagged(&fx.app, first).await;
    let backups: Vec<&Value> = before.iter().filter(|f| is_backup(f)).collect();
    let attacks_before = before.iter().filter(|f| f["label"] == "malicious").count();
    assert!(backups.len() >= 100, "the unseen backup job is flagged: {} of 144", backups.len());
    assert!(attacks_before > 700, "{attacks_before}");
    // Every flagged flow carries its explanation and class.
    assert!(before
        .iter()
        .all(|f| f["threat_class"].is_string() && f["explanation"].as_array().is_some_and(|e| !e.is_empty())));

    // The analyst marks the backup flows false positives.
    let mut suggestion = Value::Null;
    for f in &backups {
        let (s, v) = call(
            &fx.app,
            post_json(
                "/api/feedback",
                &json!({"analysis_id": first, "flow_id": f["flow"], "verdict": "false_positive", "note": "backup job"}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["flows"], 1);
        suggestion = v["allowlist_suggestion"].clone();
    }
    // The review queue leaves out what was judged, spreads over incidents
    // and says why each flow is there.
    let (s, q) = call(&fx.app, get(&format!("/api/analyses/{first}/review?n=12"))).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    let items = q["items"].as_array().expect("items");
    assert_eq!(items.len(), 12, "{q}");
    let judged: std::collections::HashSet<u64> = backups.iter().filter_map(|f| f["flow"].as_u64()).collect();
    assert!(items.iter().all(|i| !judged.contains(&i["flow"].as_u64().unwrap_or(0))), "judged flows queued");
    let top = items.iter().filter(|i| i["review"] == "most anomalous").count();
    let near = items.iter().filter(|i| i["review"] == "at the operating point").count();
    assert_eq!((top, near), (6, 6), "{q}");
    let mut per_incident: std::collections::HashMap<String, usize> = Default::default();
    for i in items.iter().filter(|i| i["threat_class"] != "other_anomaly") {
        *per_incident.entry(i["incident"].to_string()).or_default() += 1;
    }
    assert!(per_incident.values().all(|n| *n <= 2), "{per_incident:?}");

    // And confirms the flagged vertical port scan flows as attacks.
    let scans: Vec<&Value> =
        before.iter().filter(|f| f["label"] == "malicious" && f["category"] == "port_scan_vertical").collect();
    assert!(scans.len() > 50, "{}", scans.len());
    for f in &scans {
        let body = json!({"analysis_id": first, "flow_id": f["flow"], "verdict": "true_positive"});
        let (s, v) = call(&fx.app, post_json("/api/feedback", &body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert!(v["allowlist_suggestion"].is_null(), "a true positive suggests no allowlist entry");
    }
    assert_eq!(suggestion["src"], BACKUP_SRC);
    assert_eq!(suggestion["dst"], BACKUP_DST);
    assert_eq!(suggestion["ports"], json!([443]));
    let (_, fb) = call(&fx.app, get("/api/feedback")).await;
    assert_eq!(fb.as_array().map(Vec::len), Some(backups.len() + scans.len()));
    // Feedback shows on the flows.
    let again = flagged(&fx.app, first).await;
    assert!(again.iter().filter(|f| is_backup(f)).all(|f| f["feedback"] == "false_positive"));

    let (s, r) = call(&fx.app, Request::post("/api/models/retrain").body(Body::empty()).expect("req")).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["version"], 2);
    assert_eq!(r["feedback"]["benign"], backups.len() as u64);
    assert_eq!(r["feedback"]["attacks"], scans.len() as u64, "true positives train a Random Forest");
    assert_eq!(fx.state.current_model().version, 2);

    let second = analyze(&fx.app, &log, &labels).await;
    let (_, a2) = call(&fx.app, get(&format!("/api/analyses/{second}"))).await;
    assert_eq!(a2["model_version"], 2);
    let voters = &a2["summary"]["voters"];
    assert_eq!(voters.as_array().map(Vec::len), Some(5), "the forest joined the vote: {voters}");
    assert_eq!(a2["summary"]["min_votes"], 2, "the vote rule is the root's");
    let after = flagged(&fx.app, second).await;
    // The forest names each confirmed flow by the class it was confirmed as.
    let confirmed: std::collections::HashMap<&Value, &Value> =
        scans.iter().map(|f| (&f["flow"], &f["threat_class"])).collect();
    let named =
        after.iter().filter(|f| confirmed.get(&f["flow"]).is_some_and(|c| f["predicted_category"] == **c)).count();
    eprintln!("confirmed port-scan flows named by the new forest: {named} of {}", scans.len());
    assert!(named * 10 >= scans.len() * 9, "the forest names the confirmed attacks: {named} of {}", scans.len());
    let backups_after = after.iter().filter(|f| is_backup(f)).count();
    let attacks_after = after.iter().filter(|f| f["label"] == "malicious").count();
    eprintln!(
        "backup flows flagged: {} → {backups_after} of 144; attack flows flagged: {attacks_before} → {attacks_after}",
        backups.len()
    );
    assert!(backups_after * 4 <= backups.len(), "retraining must clear most of the marked pattern");
    assert!(attacks_after * 100 >= attacks_before * 97, "attacks stay flagged: {attacks_before} → {attacks_after}");

    // One click turns the suggestion into an allowlist entry: the next run
    // marks whatever is left of the pattern suppressed.
    let (s, v) = call(&fx.app, post_json("/api/allowlist", &json!({"entry": suggestion, "feedback_id": 1}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let third = analyze(&fx.app, &log, &labels).await;
    let (_, a3) = call(&fx.app, get(&format!("/api/analyses/{third}"))).await;
    assert_eq!(a3["summary"]["suppressed"], backups_after as u64);
    assert!(flagged(&fx.app, third).await.iter().filter(|f| is_backup(f)).all(|f| f["suppressed"] == true));

    // Two uploads at once: both queue and run in the background while the
    // API keeps answering, and both finish with the same counts.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (s, v) = call(&fx.app, multipart(&[("file", "day.log", &log), ("labels", "l.csv", &labels)])).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        ids.push(v["id"].as_i64().expect("id"));
    }
    let (s, _) = call(&fx.app, get("/api/health")).await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = call(&fx.app, get("/api/analyses")).await;
    let pending = list.as_array().expect("list").iter().filter(|a| a["status"] != "done").count();
    assert!(pending >= 1, "the API answered while analyses were still under way: {list}");
    for id in &ids {
        for _ in 0..600 {
            let (_, a) = call(&fx.app, get(&format!("/api/analyses/{id}"))).await;
            if a["status"] == "done" {
                assert_eq!(a["summary"]["anomalies"], a3["summary"]["anomalies"]);
                break;
            }
            assert_ne!(a["status"], "failed", "{a}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Export as CSV: one header and one row per verdict.
    let res = fx.app.clone().oneshot(get("/api/feedback/export?format=csv")).await.expect("res");
    assert_eq!(res.status(), StatusCode::OK);
    let csv = res.into_body().collect().await.expect("body").to_bytes();
    let csv = String::from_utf8_lossy(&csv);
    assert_eq!(csv.lines().count(), backups.len() + scans.len() + 1);
    assert!(csv.lines().any(|l| l.contains("false_positive") && l.contains(BACKUP_SRC)));

    // The store survives a restart: a new state on the same database sees
    // the analyses, the feedback and model version 2.
    let db = fx.state.data_dir.join("flowhound.db");
    drop(fx.app);
    let store = Store::open(&db).expect("reopen");
    assert_eq!(store.feedback().expect("feedback").len(), backups.len() + scans.len());
    assert_eq!(store.latest_model().expect("models").map(|m| m.0), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_limits_and_bad_requests_get_clear_json_errors() {
    let token = "s3cret-token-for-tests-only";
    let fx = fixture(Some(token), 4096);
    // Without the token: 401, as JSON; the page and health stay reachable.
    let (s, v) = call(&fx.app, get("/api/analyses")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["error"].as_str().is_some_and(|e| e.contains("token")), "{v}");
    let (s, _) = call(&fx.app, get("/api/health")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, page) = call(&fx.app, get("/")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.as_str().is_some_and(|p| p.contains("flowhound")));
    let auth = |r: Request<Body>| {
        let (mut parts, body) = r.into_parts();
        parts.headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().expect("header"));
        Request::from_parts(parts, body)
    };
    let wrong = Request::get("/api/analyses").header(header::AUTHORIZATION, "Bearer nope").body(Body::empty());
    assert_eq!(call(&fx.app, wrong.expect("req")).await.0, StatusCode::UNAUTHORIZED);
    let (s, v) = call(&fx.app, auth(get("/api/analyses"))).await;
    assert_eq!((s, v), (StatusCode::OK, json!([])));

    // Too large: 413 with the limit named.
    let big = vec![b'x'; 10_000];
    let (s, v) = call(&fx.app, auth(multipart(&[("file", "big.log", &big)]))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("(4 KiB)") && !e.contains("--")), "{v}");
    let (s, v) = call(&fx.app, auth(multipart(&[("file", "empty.log", b"")]))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let leftovers: Vec<String> = std::fs::read_dir(fx.state.data_dir.join("uploads"))
        .expect("uploads")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(leftovers.is_empty(), "refused uploads leave nothing behind: {leftovers:?}");

    // Garbage is analyzed and fails with the reason, without a panic.
    let (s, v) = call(&fx.app, auth(multipart(&[("file", "junk.log", b"\x00\x01 not a flow log\n")]))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let id = v["id"].as_i64().expect("id");
    let mut status = Value::Null;
    for _ in 0..100 {
        status = call(&fx.app, auth(get(&format!("/api/analyses/{id}")))).await.1;
        if status["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["status"], "failed", "{status}");
    let err = status["error"].as_str().unwrap_or("");
    assert!(err.contains("junk.log") && !err.contains("uploads/"), "names the file, not the server's folders: {err}");

    // Bad feedback and unknown items.
    let bad = [
        (json!({"analysis_id": id, "flow_id": 1, "verdict": "maybe"}), StatusCode::BAD_REQUEST),
        (json!({"analysis_id": id, "verdict": "true_positive"}), StatusCode::BAD_REQUEST),
        (json!({"analysis_id": 999, "flow_id": 1, "verdict": "true_positive"}), StatusCode::NOT_FOUND),
        (json!({"nonsense": true}), StatusCode::BAD_REQUEST),
    ];
    for (body, want) in bad {
        let (s, v) = call(&fx.app, auth(post_json("/api/feedback", &body))).await;
        assert_eq!(s, want, "{body} → {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let (s, _) = call(&fx.app, auth(get("/api/analyses/999"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&fx.app, auth(get(&format!("/api/analyses/{id}/anomalies?severity=extreme")))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for q in ["n=0", "n=501", "n=many"] {
        let (s, _) = call(&fx.app, auth(get(&format!("/api/analyses/{id}/review?{q}")))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "review?{q}");
    }
    let (s, _) = call(&fx.app, auth(get("/api/analyses/999/review"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = call(&fx.app, auth(post_json("/api/allowlist", &json!({"entry": {"src": "not-an-ip"}})))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = call(&fx.app, auth(Request::post("/api/models/retrain").body(Body::empty()).expect("req"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no feedback yet: {v}");
}

/// Files below the uploads folder (upload folders of analyses included).
fn upload_files(state: &AppState) -> usize {
    walk(&state.data_dir.join("uploads"))
}

fn walk(p: &Path) -> usize {
    std::fs::read_dir(p).map_or(0, |d| d.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_are_bounded_analyses_can_be_deleted_and_retention_holds() {
    let token = "another-token-for-tests-only";
    let fx = fixture_keeping(Some(token), 64 << 20, 2, u64::MAX);
    let auth = |r: Request<Body>, scheme: &str| {
        let (mut parts, body) = r.into_parts();
        parts.headers.insert(header::AUTHORIZATION, format!("{scheme} {token}").parse().expect("header"));
        Request::from_parts(parts, body)
    };
    // The scheme is case-insensitive.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (s, v) = call(&fx.app, auth(get("/api/analyses"), scheme)).await;
        assert_eq!(s, StatusCode::OK, "{scheme}: {v}");
    }
    let (s, _) = call(&fx.app, auth(get("/api/analyses"), "Basic")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // A JSON body far past what feedback needs is refused by its size, not
    // read up to the upload limit (64 MiB here) first.
    let huge =
        format!(r#"{{"analysis_id": 1, "flow_id": 1, "verdict": "true_positive", "note": "{}"}}"#, "x".repeat(8 << 20));
    for path in ["/api/feedback", "/api/allowlist"] {
        let req = Request::post(path).header(header::CONTENT_TYPE, "application/json").body(Body::from(huge.clone()));
        let (s, v) = call(&fx.app, auth(req.expect("req"), "Bearer")).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {v}");
    }
    let limit = flowhound_server::MAX_JSON_BODY;
    let note = "y".repeat(limit);
    let body = json!({"analysis_id": 1, "flow_id": 1, "verdict": "true_positive", "note": note});
    let (s, _) = call(&fx.app, auth(post_json("/api/feedback", &body), "Bearer")).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "one byte past the limit");

    // Three small analyses; uploads go once analysed (done or failed).
    let (log, labels) = vpc(&synth(3_000, 1));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, v) = call(
            &fx.app,
            auth(multipart(&[("file", "day.log", &log), ("labels", "day.labels.csv", &labels)]), "Bearer"),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let id = v["id"].as_i64().expect("id");
        for _ in 0..600 {
            let (_, a) = call(&fx.app, auth(get(&format!("/api/analyses/{id}")), "Bearer")).await;
            if a["status"] == "done" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ids.push(id);
    }
    let (s, junk) = call(&fx.app, auth(multipart(&[("file", "junk.log", b"\x7fELF\x02\x01\x01\n")]), "Bearer")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{junk}");
    let junk = junk["id"].as_i64().expect("id");
    for _ in 0..200 {
        let (_, a) = call(&fx.app, auth(get(&format!("/api/analyses/{junk}")), "Bearer")).await;
        if a["status"] == "failed" {
            assert!(!a["error"].as_str().unwrap_or("--").contains("--"), "no command-line flags on the page: {a}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(upload_files(&fx.state), 0, "no upload outlives its analysis");

    // keep = 2: of the four finished analyses the two newest stay.
    let (_, list) = call(&fx.app, auth(get("/api/analyses"), "Bearer")).await;
    let left: Vec<i64> = list.as_array().expect("list").iter().filter_map(|a| a["id"].as_i64()).collect();
    assert_eq!(left, vec![junk, ids[2]], "{list}");

    // Feedback on a flow, then the analysis deleted: the flow stays for retraining.
    let (_, page) = call(&fx.app, auth(get(&format!("/api/analyses/{}/anomalies?limit=5", ids[2])), "Bearer")).await;
    let flow = page["items"][0]["flow"].as_i64().expect("a flagged flow");
    let fb = json!({"analysis_id": ids[2], "flow_id": flow, "verdict": "false_positive"});
    let (s, v) = call(&fx.app, auth(post_json("/api/feedback", &fb), "Bearer")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let req = |id: i64| Request::delete(format!("/api/analyses/{id}")).body(Body::empty()).expect("req");
    let (s, _) = call(&fx.app, auth(req(ids[2]), "Bearer")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&fx.app, auth(req(ids[2]), "Bearer")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&fx.app, auth(get(&format!("/api/analyses/{}", ids[2])), "Bearer")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(fx.state.store.training_examples().expect("examples").len(), 1, "the judged flow stays");
    let (_, fbs) = call(&fx.app, auth(get("/api/feedback"), "Bearer")).await;
    assert!(fbs[0]["flow"].is_object(), "feedback still shows its flow: {fbs}");

    // A byte budget: the oldest finished analyses go until the database fits.
    let used = fx.state.store.used_bytes().expect("bytes");
    let one = fx.state.store.retain(100, 1).expect("retain");
    assert_eq!(one, vec![] as Vec<i64>, "the newest finished analysis always stays");
    assert!(used > 0);
}
