//! `flowhound report`: the dashboard's charts and tables for one set of
//! inputs, as one self-contained HTML file.

use std::path::PathBuf;

use flowhound_server::{AnalysisParams, Progress};

use super::InputArgs;
use crate::exit::{Classify, CliError, CliResult};

/// Score INPUT with a model and write the dashboard's view of it — summary,
/// anomalies, incidents, charts, and with ground truth ROC/PR curves and
/// confusion matrices — as one HTML file with everything inlined, to share.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flowhound report -m model flows.log -o report.html\n  flowhound report -m model day.log --labels day.log.labels.csv -o report.html"
)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// Model folder written by `train`.
    #[arg(short, long = "model", value_name = "MODEL_DIR")]
    pub model: PathBuf,

    /// The HTML file to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// TOML allowlist: matching flows are marked suppressed.
    #[arg(long, value_name = "FILE")]
    pub allowlist: Option<PathBuf>,

    /// Most flagged flows listed (the most severe first); every incident is.
    #[arg(long, default_value_t = 5000, value_name = "N")]
    pub max_anomalies: usize,
}

/// What the report shows, for the summary line.
#[derive(Debug)]
pub struct Written {
    pub flows: u64,
    pub anomalies: u64,
    pub incidents: usize,
    pub bytes: usize,
}

pub fn run(a: Args) -> CliResult {
    let w = report(&a)?;
    if !a.input.quiet {
        eprintln!(
            "{} flows, {} anomalies, {} incidents; report written to {} ({} KiB)",
            w.flows,
            w.anomalies,
            w.incidents,
            a.output.display(),
            w.bytes >> 10
        );
    }
    Ok(())
}

pub fn report(a: &Args) -> CliResult<Written> {
    let bundle = super::detect::load_model(&a.model, &[], None)?;
    let (inputs, opts) = a.input.prepare()?;
    let allow = super::findings::load_allowlist(a.allowlist.as_deref())?;
    let params = AnalysisParams { allow, ..Default::default() };
    write(&bundle, &inputs, &opts, &params, &a.output, a.max_anomalies)
}

/// Analyses the inputs as the dashboard does and writes its page, with
/// everything inlined, to `output` (`evaluate --report` too).
pub fn write(
    bundle: &flowhound_detect::bundle::Bundle,
    inputs: &[flowhound_source::Input],
    opts: &flowhound_source::ScanOptions,
    params: &AnalysisParams,
    output: &std::path::Path,
    max_anomalies: usize,
) -> CliResult<Written> {
    let analysis =
        flowhound_server::analyze(bundle, inputs, opts, params, &Progress::default()).map_err(|e| match e {
            flowhound_server::analysis::AnalysisError::Input(_) => CliError::input(e),
            other => CliError::from(anyhow::Error::from(other)),
        })?;
    let name: Vec<String> = inputs.iter().map(|i| flowhound_engine::config::file_name(&i.name())).collect();
    let data = flowhound_server::assets::report_data(&name.join(", "), &analysis, max_anomalies);
    let html = flowhound_server::assets::report_html(&data);
    drop(data);
    std::fs::write(output, &html).runtime(format!("writing {}", output.display()))?;
    Ok(Written {
        flows: analysis.summary["flows"].as_u64().unwrap_or(0),
        anomalies: analysis.anomalies.len() as u64,
        incidents: analysis.incidents.len(),
        bytes: html.len(),
    })
}
