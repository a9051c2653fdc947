//! `flowhound demo`: the whole job on embedded defaults, in a temporary folder.

use std::path::{Path, PathBuf};

use super::convert::OutFormat;
use super::detect::{self, DetectFormat, ScoreArgs};
use super::features::FeatureArgs;
use super::{generate, report, train, InputArgs};
use crate::exit::{Classify, CliResult};

/// Run flowhound end to end on generated traffic: generate a training day and
/// a detection day of one VPC (with injected attacks), train on the benign
/// flows of the first, detect on the second, and report what was found.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flowhound demo\n  flowhound demo --flows 200000 --dir demo-out   # keep the files"
)]
pub struct Args {
    /// Flow records of the detection day (the training day has 1.5× as many).
    #[arg(long, default_value_t = 40_000)]
    pub flows: u64,

    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Keep the generated files and the model here instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

fn input(log: &Path, labels: PathBuf) -> InputArgs {
    InputArgs {
        inputs: vec![log.display().to_string()],
        input_format: None,
        map_file: None,
        map: Vec::new(),
        no_header: false,
        since: None,
        until: None,
        labels: Some(labels),
        rejects: None,
        sort_time: false,
        quiet: true,
    }
}

pub fn run(a: Args) -> CliResult {
    let tmp = tempfile::tempdir().runtime("creating a temporary folder")?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).runtime(format!("creating {}", dir.display()))?;
    let mut days = Vec::new();
    // One seed = one VPC (hosts, services, peers); different sizes give
    // different traffic, so detection runs on flows the model never saw.
    for (name, flows, start) in
        [("train.log", a.flows * 3 / 2, "2026-11-02T00:00:00Z"), ("detect.log", a.flows, "2026-11-03T00:00:00Z")]
    {
        let log = dir.join(name);
        let g = generate::Args {
            output: log.clone(),
            flows,
            anomaly_ratio: 0.05,
            seed: a.seed,
            format: OutFormat::Vpc,
            vpc_layout: Default::default(),
            labels: None,
            start: start.into(),
            hours: 24,
            quiet: true,
        };
        let made = generate::generate(&g)?;
        println!(
            "generated {} ({} VPC flow records, {} in injected attacks)",
            log.display(),
            made.records,
            made.malicious
        );
        days.push((log.clone(), generate::default_labels_path(&log)));
    }

    let model = dir.join("model");
    println!("\ntraining on the benign flows of {} …", days[0].0.display());
    let t = train::Args {
        input: input(&days[0].0, days[0].1.clone()),
        model: model.clone(),
        detectors: "iforest,lof,ocsvm,autoencoder".into(),
        fpr: None,
        contamination: None,
        min_votes: None,
        benign_only: true,
        supervised: false,
        holdout: None,
        seed: a.seed,
        scaling: train::ScalingArg::Standard,
        features: FeatureArgs {
            windows: "60s,1h".into(),
            baseline: "15m".into(),
            extras: Vec::new(),
            internal: Vec::new(),
        },
        feedback: None,
        feedback_weight: flowhound_engine::retrain::DEFAULT_WEIGHT,
    };
    let (bundle, report) = train::train(&t)?;
    print!("{}", train::summary(&bundle, &report, &model));

    println!("\ndetecting on {} …", days[1].0.display());
    let d = detect::Args {
        input: input(&days[1].0, days[1].1.clone()),
        model: model.clone(),
        output: Some(dir.join("anomalies.jsonl")),
        format: DetectFormat::Jsonl,
        score: ScoreArgs::default(),
        findings: Default::default(),
        sinks: Default::default(),
    };
    let (tally, verdict) = detect::detect(&d)?;
    verdict?;
    print!("{}", tally.render());
    println!("\nby injected scenario (flows flagged / flows):");
    for (cat, (n, flagged)) in &tally.by_category {
        println!("  {cat:<24} {flagged:>6} / {n:<6} {:>5.1} %", 100.0 * *flagged as f64 / (*n).max(1) as f64);
    }
    println!("\ntop incidents ({} in all):", tally.incidents.len());
    print!("{}", flowhound_engine::write::incident_table_head());
    for i in tally.incidents.iter().take(10) {
        print!("{}", flowhound_engine::write::incident_table_row(i));
    }
    println!("\nanomalies written to {}", dir.join("anomalies.jsonl").display());
    // The report outlives a temporary demo folder.
    let html = match &a.dir {
        Some(d) => d.join("report.html"),
        None => std::env::temp_dir().join(format!("flowhound-demo-report-{}.html", a.seed)),
    };
    let r = report::Args {
        input: input(&days[1].0, days[1].1.clone()),
        model: model.clone(),
        output: html.clone(),
        allowlist: None,
        max_anomalies: 5000,
    };
    report::report(&r)?;
    println!("dashboard report (charts, tables, explanations) written to {}", html.display());
    println!(
        "Next: `flowhound detect -m {} {} --format table --min-severity high`",
        model.display(),
        days[1].0.display()
    );
    if a.dir.is_none() {
        println!("(files are removed on exit; keep them with --dir DIR)");
    }
    Ok(())
}
