//! `flowhound train`: features → preprocessing → detectors → model bundle.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use flowhound_detect::bundle::Bundle;
use flowhound_detect::{EnsembleParams, Kind, Params, TrainReport, Trainer};
use flowhound_features::{PipelineParams, Scaling};
use flowhound_flow::FlowRecord;
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
    let mut out: Vec<Params> = Vec::new();
    let mut bad = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Kind::parse(name) {
            Some(k) if out.iter().any(|p| p.kind() == k) => bad.push(format!("{name:?} is listed twice")),
            Some(k) => out.push(Params::default_for(k)),
            None => bad.push(format!("{name:?} is not a detector")),
        }
    }
    if out.is_empty() && bad.is_empty() {
        bad.push("no detector given".into());
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(CliError::usage(anyhow::anyhow!(
            "--detectors: {} (choose from iforest, lof, ocsvm, autoencoder)",
            bad.join("; ")
        )))
    }
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
    let fparams = a.features.params()?;
    let dets = detectors(&a.detectors)?;
    let ep = match a.contamination {
        Some(contamination) => EnsembleParams { contamination, min_votes: a.min_votes, fpr: None },
        None => EnsembleParams {
            min_votes: a.min_votes,
            fpr: Some(a.fpr.unwrap_or(flowhound_detect::ensemble::DEFAULT_FPR)),
            ..EnsembleParams::default()
        },
    };
    ep.check(dets.len()).usage()?;
    let pp = PipelineParams {
        scaling: match a.scaling {
            ScalingArg::Standard => Scaling::Standard,
            ScalingArg::Robust => Scaling::Robust,
        },
        ..Default::default()
    };
    pp.check().usage()?;
    let (inputs, opts) = a.input.prepare()?;
    let forest = a.supervised.then(flowhound_detect::forest::ForestParams::default);
    let holdout = a.holdout.map(|fraction| flowhound_detect::Holdout { fraction, seed: a.seed });
    let mut trainer = Trainer::new(fparams, a.benign_only, forest, holdout).usage()?;
    let examples = match &a.feedback {
        Some(db) => flowhound_server::Store::open_existing(db)
            .and_then(|s| s.training_examples())
            .map_err(|e| anyhow::Error::from(e).context(format!("--feedback {}", db.display())))
            .usage()?,
        None => Vec::new(),
    };
    let mut events = a.input.events(&inputs)?;
    let t = Instant::now();
    let report = flowhound_source::scan(
        &inputs,
        &opts,
        &mut events,
        |recs: &[FlowRecord]| recs.to_vec(),
        |recs| trainer.push(&recs),
    );
    let extract = t.elapsed();
    if let Err(e) = events.finish(&report) {
        let failed: Vec<String> =
            report.failed_files().map(|f| format!("{}: {}", f.name, f.error.as_deref().unwrap_or_default())).collect();
        if failed.is_empty() {
            return Err(e);
        }
        // A model of part of the data describes other traffic than asked
        // for: none is written, and the user hears so in as many words.
        return Err(CliError::input(anyhow::anyhow!(
            "no model was written to {}: {} of {} inputs could not be read completely; fix or leave out:\n  {}",
            a.model.display(),
            failed.len(),
            report.files.len(),
            failed.join("\n  ")
        )));
    }
    if trainer.records() == 0 {
        return Err(CliError::input(anyhow::anyhow!("no flow records to train on")));
    }
    if !examples.is_empty() {
        let used = flowhound_engine::retrain::add_examples(&mut trainer, &examples, a.feedback_weight).usage()?;
        if !a.input.quiet {
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
    }
    let spinner = (!a.input.quiet && std::io::stderr().is_terminal()).then(|| {
        let s = ProgressBar::new_spinner();
        s.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        s.enable_steady_tick(Duration::from_millis(120));
        s.set_message(format!("fitting {} on {} flows", a.detectors, trainer.records()));
        s
    });
    let done = |k: Kind, d: Duration| {
        if let Some(s) = &spinner {
            s.println(format!("  {} fitted in {:.1} s", k.name(), d.as_secs_f64()));
        }
    };
    let (bundle, report) = trainer.finish(&pp, &dets, &ep, a.seed, extract, &done).map_err(train_error)?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    bundle.save(&a.model).runtime(format!("writing the model to {}", a.model.display()))?;
    Ok((bundle, report))
}

/// Too little or unusable data is the input's fault (exit 3); bad settings
/// are usage errors (2).
fn train_error(e: flowhound_detect::BundleError) -> CliError {
    use flowhound_detect::{BundleError as B, DetectError as D};
    match &e {
        B::Detect(D::Params { .. }) => CliError::usage(e),
        B::Detect(D::TooFew { .. }) | B::Features(_) => CliError::input(e),
        // --supervised on input without usable ground truth.
        B::Detect(D::Fit { model, .. }) if *model == flowhound_detect::ensemble::FOREST_NAME => CliError::input(e),
        _ => CliError::from(anyhow::Error::from(e)),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

pub fn summary(b: &Bundle, r: &TrainReport, dir: &std::path::Path) -> String {
    let t = &b.training;
    let mut s = format!(
        "trained on {} of {} flows{}{} ({} invalid rows left out); {} model columns from {} features\n",
        t.rows,
        t.records,
        if t.held_out > 0 { format!(", {} held out for evaluate --holdout", t.held_out) } else { String::new() },
        if t.benign_only {
            format!(", benign only: {} attack flows left out", t.excluded_malicious)
        } else {
            String::new()
        },
        t.invalid_rows,
        r.columns,
        b.pipeline.input.len(),
    );
    s += &format!("  features      {:>8}\n  preprocessing {:>8}\n", secs(r.extract), secs(r.preprocess));
    for m in b.ensemble.members() {
        let k = m.detector.kind();
        let d = r.fit.iter().find(|(f, _)| *f == k).map(|(_, d)| *d).unwrap_or_default();
        s += &format!("  {:<13} {:>8}  threshold {:.4}\n", k.name(), secs(d), m.calibration.threshold);
    }
    s += &format!(
        "  calibration   {:>8}  {}\n",
        secs(r.calibrate),
        if t.calibration_rows == t.rows {
            format!("on all {} rows (too few to hold some out)", t.rows)
        } else {
            format!("detectors fitted on {} rows, thresholds from {} held-out rows", t.fit_rows, t.calibration_rows)
        }
    );
    if let (Some(sup), Some(d)) = (b.ensemble.supervised(), r.forest) {
        s += &format!(
            "  random_forest {:>8}  {} trees on {} labeled rows; classes: {}\n",
            secs(d),
            sup.forest.trees(),
            t.forest_rows,
            sup.classes.join(", ")
        );
    }
    let covered = flowhound_features::known_hours(&t.hour_days).iter().filter(|k| **k).count();
    if t.hour_days.iter().any(|d| *d > 0) && covered < 24 {
        s += &format!(
            "time of day counts in {covered} of 24 hours (UTC): the others were covered on fewer than {} days of training, so the time of day of their flows is left neutral\n",
            flowhound_features::MIN_HOUR_DAYS
        );
    }
    let open = b.known.open_sorted();
    if !open.is_empty() {
        let inbound = open.iter().filter(|(_, i)| *i).count();
        s += &format!(
            "new external peers are normal for {} host(s) inbound and {} outbound (each met at least {} in training); elsewhere a never-seen external address stays a signal\n",
            inbound,
            open.len() - inbound,
            flowhound_features::OPEN_AFTER
        );
    }
    if let Some(op) = b.ensemble.operating_point() {
        s += &format!(
            "false-positive budget {} ({:.0} alerts per million flows like the training's; measured on {} held-out rows): every detector flags above calibrated level {:.4}\n",
            op.fpr,
            op.fpr * 1e6,
            op.rows,
            op.level
        );
    }
    s += &format!(
        "anomaly = {} of {} voters flag it; {} external addresses known; seed {}\nmodel written to {}\n",
        b.ensemble.min_votes(),
        b.ensemble.voters(),
        t.known_external,
        t.seed,
        dir.display()
    );
    if let Some(w) = &r.order_warning {
        s += &format!("{w}: {}\n", super::SORT_HINT);
    }
    s
}
