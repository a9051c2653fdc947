//! The Lambda handler with a real S3 ObjectCreated event (AWS's JSON shape)
//! against moto_server: the model is fetched from S3, the new object is
//! read, incidents reach SNS (and the SQS queue behind it) and an OCSF file.
//! Skips with a note when moto_server is not installed (CI installs it).

#[path = "../../cli/tests/aws/harness.rs"]
mod harness;

use aws_lambda_events::event::s3::S3Event;
use clap::Parser;
use flowhound::cmd::{generate, train};
use harness::{aws_env, gzip, Moto};

#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
enum Cmd {
    Generate(generate::Args),
    Train(Box<train::Args>),
}

fn flowhound(args: &[&str]) {
    let r = match Cmd::try_parse_from(args).expect("flags") {
        Cmd::Generate(a) => generate::run(a),
        Cmd::Train(a) => train::run(*a),
    };
    assert!(r.is_ok(), "{args:?}: {:?}", r.err().and_then(|e| e.error));
}

fn event(bucket: &str, key: &str) -> S3Event {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/s3-put.json")).expect("fixture");
    serde_json::from_str(&text.replace("BUCKET", bucket).replace("\"KEY\"", &format!("{key:?}"))).expect("an S3 event")
}

#[test]
fn an_s3_event_is_detected_and_alerted() {
    let Some(moto) = Moto::start() else { return };
    for (k, v) in aws_env(&moto.endpoint) {
        // One test in this binary: no other thread reads the environment.
        std::env::set_var(k, v);
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let p = |name: &str| dir.join(name).display().to_string();
    flowhound(&[
        "generate",
        "-o",
        &p("train.log"),
        "--flows",
        "12000",
        "--seed",
        "7",
        "--start",
        "2026-11-01T00:00:00Z",
        "-q",
    ]);
    flowhound(&["train", &p("train.log"), "-m", &p("model"), "--seed", "1", "-q"]);
    flowhound(&[
        "generate",
        "-o",
        &p("new.log"),
        "--flows",
        "6000",
        "--seed",
        "7",
        "--start",
        "2026-11-03T00:00:00Z",
        "-q",
    ]);
    gzip(&dir.join("new.log"), &dir.join("new.log.gz"));
    // A key with a space and a plus: the event carries it URL-encoded.
    let key = "AWSLogs/123456789012/vpcflowlogs/us-east-1/2026/11/03/flow log+1.log.gz";
    let mut files = vec![format!("{}={key}", p("new.log.gz"))];
    for f in std::fs::read_dir(dir.join("model")).expect("model").flatten() {
        files.push(format!("{}=models/v1/{}", f.path().display(), f.file_name().to_string_lossy()));
    }
    let mut args = vec!["setup", "logs", "alerts", "alerts-q"];
    args.extend(files.iter().map(String::as_str));
    let setup = moto.helper(&args);
    let topic = setup["topic_arn"].as_str().expect("topic");
    let queue = setup["queue_url"].as_str().expect("queue");

    let settings = flowhound_lambda::Settings {
        model: "s3://logs/models/v1/".into(),
        sinks: vec![format!("sns:{topic}"), format!("ocsf:{}", p("findings.ocsf.jsonl"))],
        config: None,
        min_severity: flowhound_detect::Severity::Low,
        fpr: None,
        findings: Default::default(),
        dedup_window: None,
        work: dir.join("work"),
    };
    let encoded = key.replace('+', "%2B").replace(' ', "+");
    let summary = flowhound_lambda::process(&event("logs", &encoded), &settings).expect("the handler succeeds");
    let obj = &summary["objects"][0];
    assert_eq!(obj["object"], format!("s3://logs/{key}"));
    assert_eq!(obj["flows"], 6000);
    let n = obj["incidents"].as_u64().expect("incidents");
    assert!(n >= 2, "{summary}");
    // Incidents of one class and actor within the default hour are sent once.
    let sent = n - obj["delivery"]["deduplicated"].as_u64().expect("deduplicated");
    let sns =
        obj["delivery"]["sinks"].as_array().expect("sinks").iter().find(|s| s["kind"] == "sns").expect("sns").clone();
    assert_eq!(
        (sns["sent"].as_u64(), sns["dropped"].as_u64(), sns["pending"].as_u64()),
        (Some(sent), Some(0), Some(0)),
        "{summary}"
    );
    let msgs = moto.helper(&["drain", queue]);
    assert_eq!(msgs.as_array().map(Vec::len), Some(sent as usize));
    let ocsf = std::fs::read_to_string(dir.join("findings.ocsf.jsonl")).expect("ocsf");
    assert_eq!(ocsf.lines().count() as u64, sent);
    assert!(dir.join("work/model/.fetched-from").exists(), "the model came from S3");

    // An object that is not there fails the invocation (Lambda then retries the event).
    let err =
        flowhound_lambda::process(&event("logs", "AWSLogs/missing.log.gz"), &settings).expect_err("missing object");
    assert!(err.contains("missing.log.gz"), "{err}");
}
