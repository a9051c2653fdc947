//! `flowhound demo`: the whole job on embedded defaults, in a temporary folder.

use std::path::PathBuf;

use flowhound_flow::labels::LabelTable;
use flowhound_flow::net::Networks;
use flowhound_source::{Input, ScanOptions};

use super::convert::OutFormat;
use super::generate;
use crate::exit::{Classify, CliResult};

/// Run flowhound end to end on generated traffic: generate a labeled VPC flow
/// log, then inspect it. (Training, detection and explanations join as they land.)
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flowhound demo\n  flowhound demo --flows 200000 --dir demo-out   # keep the files"
)]
pub struct Args {
    /// Flow records to generate.
    #[arg(long, default_value_t = 50_000)]
    pub flows: u64,

    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Keep the generated files here instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(a: Args) -> CliResult {
    let tmp = tempfile::tempdir().runtime("creating a temporary folder")?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).runtime(format!("creating {}", dir.display()))?;
    let log = dir.join("flows.log");
    println!("flowhound demo: generating {} VPC flow records with injected attacks", a.flows);
    let g = generate::Args {
        output: log.clone(),
        flows: a.flows,
        anomaly_ratio: 0.05,
        seed: a.seed,
        format: OutFormat::Vpc,
        vpc_layout: Default::default(),
        labels: None,
        start: "2026-11-02T00:00:00Z".into(),
        hours: 24,
        quiet: true,
    };
    let made = generate::generate(&g)?;
    let labels_path = generate::default_labels_path(&log);
    println!("  {} ({} records, {} malicious)", log.display(), made.records, made.malicious);
    println!("  {} (ground truth by line)\n", labels_path.display());

    let labels = LabelTable::parse(&std::fs::read(&labels_path).runtime("reading labels")?).runtime("labels")?;
    let opts = ScanOptions { labels: Some(labels.into()), ..Default::default() };
    let inputs = [Input::Path(log.clone())];
    let (total, report) = super::inspect::summarize(&inputs, &opts, &mut (), &Networks::default());
    print!("{}", super::inspect::table(&total, &report, 5));
    println!("\nNext: `flowhound inspect {}` or `flowhound convert {} --to jsonl`", log.display(), log.display());
    if a.dir.is_none() {
        println!("(files are removed on exit; keep them with --dir DIR)");
    }
    Ok(())
}
