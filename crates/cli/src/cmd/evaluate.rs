//! `flowhound evaluate`: how well a trained model separates labeled traffic,
//! per detector and for the ensemble, with the metrics of
//! `flowhound_detect::metrics` (defined as scikit-learn's), computed and
//! shown by `flowhound_engine::evaluate`.

use std::path::PathBuf;

use flowhound_engine::evaluate::{Evaluation, Rows};

use super::detect::{load_model, score_each};
use super::InputArgs;
use crate::exit::{CliError, CliResult};

/// Measure a model on labeled flows: accuracy, precision, recall, F1 and the
/// false-positive rate at the calibrated thresholds, ROC-AUC and PR-AUC from
/// the scores, the confusion matrix, and detections per attack category —
/// for every detector and for the ensemble.
#[derive(Debug, clap::Args)]
#[command(after_help = "Flows without ground truth are skipped (and counted). ROC-AUC and PR-AUC are null when the\n\
labeled flows hold a single class.\n\nExamples:\n  flowhound evaluate -m model UNSW_NB15_test.csv\n  flowhound evaluate -m model flows.log --labels flows.log.labels.csv --json | jq .ensemble.f1\n  flowhound evaluate -m model captures/ --report quality.html")]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// Model folder written by `train`.
    #[arg(short, long = "model", value_name = "MODEL_DIR")]
    pub model: PathBuf,

    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Also write the dashboard's report page for the input (as `flowhound
    /// report` does), whose ground-truth tab shows these numbers with every
    /// detector's ROC and PR curves.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,

    /// Score only the flows `train --holdout` kept out of training (give
    /// the same inputs in the same order as to `train`).
    #[arg(long)]
    pub holdout: bool,

    /// Override a detector's threshold (raw score units), e.g. `iforest=0.6`; repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    pub threshold: Vec<String>,
}

pub fn run(a: Args) -> CliResult {
    let bundle = load_model(&a.model, &a.threshold, None)?;
    let (inputs, opts) = a.input.prepare()?;
    let holdout = match (a.holdout, bundle.training.holdout) {
        (false, _) => None,
        (true, Some(h)) => Some(h),
        (true, None) => {
            return Err(CliError::usage(anyhow::anyhow!(
                "--holdout: model {} was trained without --holdout",
                a.model.display()
            )))
        }
    };
    let mut index = 0u64;
    let mut rows = Rows::new(bundle.ensemble.model_names().len());
    let (verdict, _, order_warning) = score_each(&bundle, &inputs, &opts, &a.input, |batch| {
        for (r, v) in batch.iter() {
            index += 1;
            if holdout.is_none_or(|h| h.holds(index - 1)) {
                rows.add(r, v);
            }
        }
        Ok(())
    })?;
    if let Some(w) = order_warning.filter(|_| !a.input.quiet) {
        eprintln!("{w}: {}", super::SORT_HINT);
    }
    if rows.labeled() == 0 {
        return Err(CliError::input(anyhow::anyhow!(
            "no flow of the input carries ground truth ({} flows read): evaluate needs labeled flows \
             (UNSW-NB15, CIC-IDS2017, IoT-23 labels, or --labels for a generated log)",
            rows.unlabeled
        )));
    }
    let ev = Evaluation::new(&bundle, &rows);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&ev.json()).unwrap_or_default());
    } else {
        print!("{}", ev.table());
    }
    if let Some(path) = &a.report {
        let params = flowhound_server::AnalysisParams { holdout, ..Default::default() };
        super::report::write(&bundle, &inputs, &opts, &params, path, 5000)?;
        if !a.input.quiet {
            eprintln!("report written to {}", path.display());
        }
    }
    verdict
}
