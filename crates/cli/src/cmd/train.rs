//! `flowhound train`: features → preprocessing → detectors → model bundle.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{Kind, Params, TrainReport};
pub use flowhound_engine::train::summary;
use flowhound_engine::train::{TrainError, TrainParams};
use flowhound_features::{PipelineParams, Scaling};
use indicatif::{ProgressBar, ProgressStyle};

use super::features::FeatureArgs;
use super::InputArgs;
use crate::exit::{Classify, CliError, CliResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScalingArg {
    Standard,
    Robust,
}

/// Learn what normal traffic looks like: fit the feature preprocessing and the
/// anomaly detectors on INPUT and save them as a model folder for `detect`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flowhound train flows.log -m model\n  flowhound train UNSW_NB15_training-set.csv -m unsw-model --benign-only\n  flowhound train logs/ -m model --detectors iforest,autoencoder --fpr 0.001 --seed 7\n  flowhound train UNSW_NB15_training-set.csv -m unsw-model --benign-only --supervised"
)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// Model folder to write (replaced atomically if it holds a model).
    #[arg(short, long = "model", value_name = "MODEL_DIR")]
    pub model: PathBuf,

    /// Detectors to fit, comma-separated: iforest, lof, ocsvm, autoencoder.
    #[arg(long, default_value = "iforest,lof,ocsvm,autoencoder", value_name = "LIST")]
    pub detectors: String,

    /// False-positive budget: the share of normal flows allowed to become
    /// alerts. Every detector's threshold is set on held-out training rows so
    /// that this share of them gets the votes of an anomaly; `detect --fpr`
    /// moves it later. Default 0.005 (5,000 alerts per million normal flows
    /// at most on traffic like the training's).
    #[arg(long, value_name = "SHARE", conflicts_with = "contamination")]
    pub fpr: Option<f64>,

    /// Instead of a budget: the expected share of anomalies in the training
    /// data, each detector flagging rows above that quantile of its own
    /// scores (the rule before --fpr; 2 of 4 detectors at 0.05 each flag
    /// ~4 % of normal traffic).
    #[arg(long, value_name = "C")]
    pub contamination: Option<f64>,

    /// Votes needed to call a flow anomalous (default: half the detectors, rounded up).
    #[arg(long, value_name = "N")]
    pub min_votes: Option<usize>,

    /// Train only on flows whose ground truth says benign (flows without
    /// ground truth are kept); attacks still shape the window features.
    #[arg(long)]
    pub benign_only: bool,

    /// Also train a Random Forest on the flows' ground truth (benign and every
    /// attack category; needs labeled input). It becomes a fifth voter and
    /// names the attack category of what it flags.
    #[arg(long)]
    pub supervised: bool,

    /// Keep this share of the flows (chosen by position, seeded) out of
    /// training; `evaluate --holdout` on the same inputs then scores exactly
    /// them, with window features computed over the whole stream.
    #[arg(long, value_name = "FRACTION")]
    pub holdout: Option<f64>,

    /// Seed for every random choice: same seed + same data = same model.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Scaling of numeric features.
    #[arg(long, value_enum, default_value_t = ScalingArg::Standard)]
    pub scaling: ScalingArg,

    #[command(flatten)]
    pub features: FeatureArgs,

    /// The dashboard's database (`serve --db`): its analyst verdicts join the
    /// training data — false positives as benign rows (their external
    /// addresses become known), true positives as Random Forest examples
    /// (with --supervised).
    #[arg(long, value_name = "DB")]
    pub feedback: Option<PathBuf>,

    /// Training rows each verdict counts as.
    #[arg(long, default_value_t = flowhound_engine::retrain::DEFAULT_WEIGHT, value_name = "N")]
    pub feedback_weight: usize,
}

/// Parses `--detectors`, listing every unknown name.
pub fn detectors(list: &str) -> CliResult<Vec<Params>> {
    Ok(flowhound_engine::train::detectors(list)?)
}

pub fn run(a: Args) -> CliResult {
    let (bundle, report) = train(&a)?;
    if !a.input.quiet {
        eprint!("{}", summary(&bundle, &report, &a.model));
    }
    Ok(())
}

/// Trains and saves; returns the bundle and timings.
pub fn train(a: &Args) -> CliResult<(Bundle, TrainReport)> {
    let feedback = match &a.feedback {
        Some(db) => flowhound_server::Store::open_existing(db)
            .and_then(|s| s.training_examples())
            .map_err(|e| anyhow::Error::from(e).context(format!("--feedback {}", db.display())))
            .usage()?,
        None => Vec::new(),
    };
    let params = TrainParams {
        features: a.features.params()?,
        pipeline: PipelineParams {
            scaling: match a.scaling {
                ScalingArg::Standard => Scaling::Standard,
                ScalingArg::Robust => Scaling::Robust,
            },
            ..Default::default()
        },
        detectors: a.detectors.clone(),
        fpr: a.fpr,
        contamination: a.contamination,
        min_votes: a.min_votes,
        benign_only: a.benign_only,
        supervised: a.supervised,
        holdout: a.holdout,
        seed: a.seed,
        feedback,
        feedback_weight: a.feedback_weight,
    };
    let job = params.check()?;
    let (inputs, opts) = a.input.prepare()?;
    let mut events = a.input.events(&inputs)?;
    let read = job.read(&inputs, &opts, &mut events).map_err(|e| match e {
        // A model of part of the data describes other traffic than asked
        // for: none is written, and the user hears so in as many words.
        TrainError::Inputs { .. } => {
            CliError::input(anyhow::anyhow!("no model was written to {}: {e}", a.model.display()))
        }
        e => train_error(e),
    })?;
    events.finish(&read.scan)?;
    let spinner = (!a.input.quiet && std::io::stderr().is_terminal()).then(|| {
        let s = ProgressBar::new_spinner();
        s.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        s.enable_steady_tick(Duration::from_millis(120));
        s.set_message(format!("fitting {} on {} flows", a.detectors, read.records()));
        s
    });
    let done = |k: Kind, d: Duration| {
        if let Some(s) = &spinner {
            s.println(format!("  {} fitted in {:.1} s", k.name(), d.as_secs_f64()));
        }
    };
    let t = read.fit(&done).map_err(train_error);
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let t = t?;
    if let (Some(used), false) = (&t.feedback, a.input.quiet) {
        eprintln!(
            "feedback: {} false positives as benign rows, {} true positives as forest examples{} (×{} each)",
            used.benign,
            used.attacks,
            if used.unused > 0 {
                format!(", {} true positives unused without --supervised", used.unused)
            } else {
                String::new()
            },
            a.feedback_weight
        );
    }
    t.bundle.save(&a.model).runtime(format!("writing the model to {}", a.model.display()))?;
    Ok((t.bundle, t.report))
}

/// Too little or unusable data is the input's fault (exit 3); bad settings
/// are usage errors (2).
fn train_error(e: TrainError) -> CliError {
    use flowhound_detect::{BundleError as B, DetectError as D};
    match &e {
        TrainError::NoRecords | TrainError::Inputs { .. } => CliError::input(e),
        TrainError::Detect(_) | TrainError::Settings(_) => CliError::usage(e),
        TrainError::Bundle(B::Detect(D::Params { .. })) => CliError::usage(e),
        TrainError::Bundle(B::Detect(D::TooFew { .. }) | B::Features(_)) => CliError::input(e),
        // --supervised on input without usable ground truth.
        TrainError::Bundle(B::Detect(D::Fit { model, .. })) if *model == flowhound_detect::ensemble::FOREST_NAME => {
            CliError::input(e)
        }
        _ => CliError::from(anyhow::Error::from(e)),
    }
}
