//! The model bundle: one folder holding everything `detect` needs.
//!
//! ```text
//! MODEL_DIR/
//!   manifest.json         format version, flowhound version, feature settings and names,
//!                         detectors with their parameters, training summary, SHA-256 of every file
//!   pipeline.json         fitted preprocessing (flowhound-features)
//!   calibration.json      per detector: threshold and training-score quantiles
//!   known_external.txt    external addresses seen in training, sorted (the unknown-IP feature),
//!                         then `open inbound|outbound HOST`: hosts whose new external peers are normal
//!   <detector>.safetensors one per detector
//!   training_sample.safetensors  ≤ 20 000 raw training rows, for retraining with feedback
//! ```
//!
//! Written into a sibling temporary folder and renamed into place, so a
//! reader sees the old bundle or the new one, never half of either. Loading
//! checks the format version, every checksum, the feature names against this
//! build's extractor, every tensor's shape and each model's width — a corrupt,
//! truncated, foreign or mismatched bundle is an error naming the problem.
//! Nothing time-dependent is written: same seed + same data = same bytes.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use flowhound_features::{ExtractorParams, FeatureError, KnownExternal, Pipeline};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::calibrate::Calibration;
use crate::ensemble::{Ensemble, EnsembleParams, Member, Supervised};
use crate::forest::{Forest, ForestParams};
use crate::{DetectError, Kind, Params};

/// Bundle layout version this build writes and reads.
pub const FORMAT_VERSION: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is not a flowhound model folder (no manifest.json)", .0.display())]
    NotABundle(PathBuf),
    #[error("refusing to replace {}: it is not empty and holds no flowhound model", .0.display())]
    WouldClobber(PathBuf),
    #[error("model was saved in bundle format {found}; this flowhound reads format {expected}: retrain")]
    Version { found: u64, expected: u32 },
    #[error("{file} does not match its checksum in manifest.json: the model folder is corrupt or was edited")]
    Checksum { file: String },
    #[error("{file}: {reason}")]
    Corrupt { file: String, reason: String },
    #[error("the model holds no training sample (written by an older flowhound): retrain it from its logs with `train --feedback`")]
    NoSample,
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error(transparent)]
    Detect(#[from] DetectError),
}

fn corrupt(file: &str, reason: impl ToString) -> BundleError {
    BundleError::Corrupt { file: file.to_string(), reason: reason.to_string() }
}

/// Feature extraction settings, as saved (the extractor must be rebuilt
/// exactly as in training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSettings {
    pub windows: Vec<u32>,
    pub baseline_secs: u32,
    pub internal: Vec<String>,
    pub extras: Vec<String>,
}

impl FeatureSettings {
    pub fn from_params(p: &ExtractorParams) -> Self {
        FeatureSettings {
            windows: p.windows.clone(),
            baseline_secs: p.baseline_secs,
            internal: p.internal.iter().map(ToString::to_string).collect(),
            extras: p.extras.clone(),
        }
    }

    pub fn to_params(&self) -> Result<ExtractorParams, String> {
        let internal = self
            .internal
            .iter()
            .map(|s| s.parse().map_err(|_| format!("internal range {s:?} is not a CIDR")))
            .collect::<Result<_, _>>()?;
        Ok(ExtractorParams {
            windows: self.windows.clone(),
            baseline_secs: self.baseline_secs,
            internal,
            extras: self.extras.clone(),
        })
    }
}

/// What the models were trained on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Flow records read.
    pub records: u64,
    /// Valid training rows after preprocessing.
    pub rows: u64,
    /// Of those, rows the detectors were fitted on, and rows held out to
    /// calibrate their thresholds (the same rows when too few to split).
    pub fit_rows: u64,
    pub calibration_rows: u64,
    /// Rows left out as invalid (non-finite values).
    pub invalid_rows: u64,
    /// Rows left out because their ground truth said malicious (`--benign-only`).
    pub excluded_malicious: u64,
    pub benign_only: bool,
    pub seed: u64,
    pub known_external: u64,
    /// Rows with ground truth the Random Forest was fitted on (0 without one).
    #[serde(default)]
    pub forest_rows: u64,
    /// Flows kept out of training for `evaluate --holdout`, and how chosen.
    #[serde(default)]
    pub holdout: Option<crate::run::Holdout>,
    #[serde(default)]
    pub held_out: u64,
    /// Analyst verdicts trained in (see [`crate::run::Feedback`]), and attack
    /// verdicts left out for want of a Random Forest.
    #[serde(default)]
    pub feedback: u64,
    #[serde(default)]
    pub feedback_unused: u64,
    /// Days training covered each hour of day (UTC, 24 entries); the time
    /// of day counts only where that is at least
    /// [`flowhound_features::MIN_HOUR_DAYS`].
    #[serde(default)]
    pub hour_days: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DetectorEntry {
    name: Kind,
    file: String,
    params: Params,
}

/// The Random Forest, when trained with ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SupervisedEntry {
    file: String,
    /// Class names; `benign` first.
    classes: Vec<String>,
    params: ForestParams,
    /// The most important model-input columns (mean decrease in impurity).
    importance: Vec<(String, f32)>,
    /// The ensemble score's stacking weights (absent in models written
    /// before them: the plain mean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stack: Option<crate::ensemble::Stack>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    flowhound_version: String,
    features: FeatureSettings,
    /// Raw feature names, then the model-input column names.
    feature_names: Vec<String>,
    model_input: Vec<String>,
    detectors: Vec<DetectorEntry>,
    ensemble: EnsembleParams,
    /// The false-positive budget's operating point (absent when trained
    /// with `--contamination`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operating_point: Option<crate::ensemble::OperatingPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    supervised: Option<SupervisedEntry>,
    training: TrainingSummary,
    /// The training sample's file, when saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sample: Option<String>,
    /// Readable names of the category codes seen in training.
    #[serde(default)]
    category_names: BTreeMap<u32, String>,
    /// SHA-256 of every other file.
    files: BTreeMap<String, String>,
}

/// Everything `detect` needs, loaded and checked.
#[derive(Debug)]
pub struct Bundle {
    pub features: ExtractorParams,
    pub pipeline: Pipeline,
    pub known: KnownExternal,
    pub ensemble: Ensemble,
    pub ensemble_params: EnsembleParams,
    pub params: Vec<Params>,
    /// The forest's settings when the ensemble has one.
    pub forest_params: Option<ForestParams>,
    pub training: TrainingSummary,
    pub flowhound_version: String,
    /// Training rows kept for retraining with feedback (absent in models
    /// written before it existed).
    pub sample: Option<crate::sample::TrainingSample>,
    pub category_names: BTreeMap<u32, String>,
}

const FOREST_FILE: &str = "random_forest.safetensors";
const SAMPLE_FILE: &str = "training_sample.safetensors";

fn sha256(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io { path: path.to_path_buf(), source }
}

impl Bundle {
    /// The files of the bundle, name → bytes, manifest last.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = vec![("pipeline.json".to_string(), self.pipeline.to_json().into_bytes())];
        let cal: BTreeMap<&str, &Calibration> =
            self.ensemble.members().iter().map(|m| (m.detector.kind().name(), &m.calibration)).collect();
        files.push(("calibration.json".into(), serde_json::to_vec_pretty(&cal).unwrap_or_default()));
        let mut known = String::new();
        for a in self.known.sorted() {
            known.push_str(&a.to_string());
            known.push('\n');
        }
        // Hosts whose new external peers (in one direction) are normal.
        for (h, inbound) in self.known.open_sorted() {
            known.push_str(if inbound { "open inbound " } else { "open outbound " });
            known.push_str(&h.to_string());
            known.push('\n');
        }
        files.push(("known_external.txt".into(), known.into_bytes()));
        for m in self.ensemble.members() {
            files.push((format!("{}.safetensors", m.detector.kind().name()), m.detector.to_bytes()));
        }
        let supervised = self.ensemble.supervised().map(|s| {
            files.push((FOREST_FILE.to_string(), s.forest.to_bytes()));
            let mut imp: Vec<(String, f32)> =
                self.pipeline.output_names.iter().cloned().zip(s.forest.importance().iter().copied()).collect();
            imp.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            imp.truncate(20);
            SupervisedEntry {
                file: FOREST_FILE.into(),
                classes: s.classes.clone(),
                params: self.forest_params.clone().unwrap_or_default(),
                importance: imp,
                stack: s.stack.clone(),
            }
        });
        if let Some(s) = &self.sample {
            files.push((SAMPLE_FILE.to_string(), s.to_bytes()));
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            flowhound_version: self.flowhound_version.clone(),
            features: FeatureSettings::from_params(&self.features),
            feature_names: self.pipeline.input.names().map(str::to_string).collect(),
            model_input: self.pipeline.output_names.clone(),
            detectors: self
                .params
                .iter()
                .map(|p| DetectorEntry {
                    name: p.kind(),
                    file: format!("{}.safetensors", p.kind().name()),
                    params: p.clone(),
                })
                .collect(),
            ensemble: self.ensemble_params.clone(),
            operating_point: self.ensemble.operating_point().cloned(),
            supervised,
            training: self.training.clone(),
            sample: self.sample.as_ref().map(|_| SAMPLE_FILE.to_string()),
            category_names: self.category_names.clone(),
            files: files.iter().map(|(n, b)| (n.clone(), sha256(b))).collect(),
        };
        let mut m = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        m.push(b'\n');
        files.push(("manifest.json".into(), m));
        files
    }

    /// Writes the bundle to `dir` atomically (see the module docs). An
    /// existing bundle there is replaced; any other non-empty folder is left
    /// alone and is an error.
    pub fn save(&self, dir: &Path) -> Result<(), BundleError> {
        if dir.is_dir() && !dir.join("manifest.json").is_file() {
            let empty = std::fs::read_dir(dir).map_err(io(dir))?.next().is_none();
            if !empty {
                return Err(BundleError::WouldClobber(dir.to_path_buf()));
            }
        }
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        let tmp = tempfile::Builder::new().prefix(&format!(".{name}.tmp-")).tempdir_in(&parent).map_err(io(&parent))?;
        for (file, bytes) in self.files() {
            let path = tmp.path().join(&file);
            let mut f = std::fs::File::create(&path).map_err(io(&path))?;
            f.write_all(&bytes).map_err(io(&path))?;
            f.sync_all().map_err(io(&path))?;
        }
        let staged = tmp.keep();
        // Move the old bundle aside, the new one in, then drop the old one.
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        let had_old = dir.exists();
        if had_old {
            std::fs::rename(dir, &old).map_err(io(dir))?;
        }
        if let Err(e) = std::fs::rename(&staged, dir) {
            if had_old {
                let _ = std::fs::rename(&old, dir);
            }
            let _ = std::fs::remove_dir_all(&staged);
            return Err(io(dir)(e));
        }
        if had_old {
            let _ = std::fs::remove_dir_all(&old);
        }
        Ok(())
    }

    /// Reads and checks a bundle.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let mpath = dir.join("manifest.json");
        if !mpath.is_file() {
            if !dir.exists() {
                return Err(BundleError::Io {
                    path: dir.to_path_buf(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such model folder"),
                });
            }
            return Err(BundleError::NotABundle(dir.to_path_buf()));
        }
        let raw = std::fs::read(&mpath).map_err(io(&mpath))?;
        let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| corrupt("manifest.json", e))?;
        match v.get("format_version").and_then(serde_json::Value::as_u64) {
            Some(n) if n == u64::from(FORMAT_VERSION) => {}
            Some(n) => return Err(BundleError::Version { found: n, expected: FORMAT_VERSION }),
            None => return Err(corrupt("manifest.json", "no format_version")),
        }
        let m: Manifest = serde_json::from_value(v).map_err(|e| corrupt("manifest.json", e))?;
        let read = |file: &str| -> Result<Vec<u8>, BundleError> {
            let want = m.files.get(file).ok_or_else(|| corrupt("manifest.json", format!("{file} is not listed")))?;
            let p = dir.join(file);
            let b = std::fs::read(&p).map_err(io(&p))?;
            if sha256(&b) != *want {
                return Err(BundleError::Checksum { file: file.to_string() });
            }
            Ok(b)
        };
        let features = m.features.to_params().map_err(|e| corrupt("manifest.json", e))?;
        features.check()?;
        let schema = features.schema();
        let pipeline = Pipeline::load(&read("pipeline.json")?, &schema)?;
        if pipeline.output_names != m.model_input {
            return Err(corrupt("pipeline.json", "model input columns differ from manifest.json"));
        }
        let cal: BTreeMap<String, Calibration> =
            serde_json::from_slice(&read("calibration.json")?).map_err(|e| corrupt("calibration.json", e))?;
        let known_raw = read("known_external.txt")?;
        let known_text = std::str::from_utf8(&known_raw).map_err(|e| corrupt("known_external.txt", e))?;
        let mut known = KnownExternal::default();
        for l in known_text.lines().filter(|l| !l.is_empty()) {
            let bad = || corrupt("known_external.txt", format!("{l:?} is not an address or an open host"));
            let (open, addr) = match l.strip_prefix("open inbound ") {
                Some(a) => (Some(true), a),
                None => match l.strip_prefix("open outbound ") {
                    Some(a) => (Some(false), a),
                    None => (None, l),
                },
            };
            let a = addr.parse::<IpAddr>().map_err(|_| bad())?;
            match open {
                Some(inbound) => known.open(a, inbound),
                None => known.insert(a),
            }
        }
        let mut members = Vec::new();
        for d in &m.detectors {
            if d.params.kind() != d.name {
                return Err(corrupt(
                    "manifest.json",
                    format!("{} has the parameters of another detector", d.name.name()),
                ));
            }
            let model = crate::load(d.name, &read(&d.file)?)?;
            if model.width() != pipeline.output_width() {
                return Err(corrupt(
                    &d.file,
                    format!("fitted on {} columns, the pipeline gives {}", model.width(), pipeline.output_width()),
                ));
            }
            let c = cal.get(d.name.name()).filter(|c| c.is_valid()).cloned();
            let calibration =
                c.ok_or_else(|| corrupt("calibration.json", format!("no valid entry for {}", d.name.name())))?;
            members.push(Member { detector: model, calibration });
        }
        let mut ensemble = Ensemble::new(members, m.ensemble.min_votes)?;
        if let Some(op) = &m.operating_point {
            ensemble = ensemble.with_operating_point(op.clone()).map_err(|e| corrupt("manifest.json", e))?;
        }
        if let Some(sup) = &m.supervised {
            let forest = Forest::from_bytes(&read(&sup.file)?)?;
            ensemble = ensemble
                .with_supervised(Supervised { forest, classes: sup.classes.clone(), stack: sup.stack.clone() })
                .map_err(|e| corrupt(&sup.file, e))?;
        }
        let sample = match &m.sample {
            Some(f) => Some(crate::sample::TrainingSample::from_bytes(&read(f)?, schema.len())?),
            None => None,
        };
        Ok(Bundle {
            features,
            pipeline,
            known,
            ensemble,
            ensemble_params: m.ensemble,
            params: m.detectors.into_iter().map(|d| d.params).collect(),
            forest_params: m.supervised.map(|s| s.params),
            training: m.training,
            flowhound_version: m.flowhound_version,
            sample,
            category_names: m.category_names,
        })
    }
}
