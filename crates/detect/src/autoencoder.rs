//! Dense autoencoder (candle, CPU): d → 32 → 8 → 32 → d with ReLU between
//! layers and a linear output, trained with Adam on mean squared error, with
//! early stopping on a held-out validation share (the best epoch's weights are
//! kept). Score = a row's mean squared reconstruction error; the per-feature
//! errors are what explanations use.
//!
//! Deterministic: weights are initialized from our seeded RNG (PyTorch's
//! U(±1/√fan_in) rule) rather than candle's global one, and batches are
//! shuffled by the same RNG.

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ndarray::{Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::tensors::{Reader, Writer};
use crate::{rng, subsample, DetectError, Detector, Kind};

const NAME: &str = "autoencoder";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoencoderParams {
    /// Hidden layer widths of the encoder; the decoder mirrors them
    /// (`[32, 8]` = d → 32 → 8 → 32 → d).
    pub layers: Vec<usize>,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// Share of the training rows held out for early stopping.
    pub validation: f64,
    /// Training rows at most (a seeded sample).
    pub max_train: usize,
}

impl Default for AutoencoderParams {
    fn default() -> Self {
        AutoencoderParams {
            layers: vec![32, 8],
            epochs: 40,
            batch: 256,
            learning_rate: 1e-3,
            patience: 4,
            validation: 0.1,
            max_train: 50_000,
        }
    }
}

fn candle(e: candle_core::Error) -> DetectError {
    DetectError::Fit { model: NAME, reason: e.to_string() }
}

impl AutoencoderParams {
    pub fn check(&self) -> Result<(), DetectError> {
        let mut p = Vec::new();
        if self.layers.is_empty() || self.layers.iter().any(|w| !(1..=4096).contains(w)) {
            p.push(format!("layers {:?} must be 1 to 4096 wide, at least one", self.layers));
        }
        if !(1..=10_000).contains(&self.epochs) {
            p.push(format!("epochs {} must be 1..=10000", self.epochs));
        }
        if !(1..=1 << 16).contains(&self.batch) {
            p.push(format!("batch {} must be 1..=65536", self.batch));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            p.push(format!("learning_rate {} must be in (0, 1)", self.learning_rate));
        }
        if !(0.0..0.9).contains(&self.validation) {
            p.push(format!("validation {} must be in [0, 0.9)", self.validation));
        }
        if self.max_train < 10 {
            p.push(format!("max_train {} must be at least 10", self.max_train));
        }
        DetectError::params(NAME, p)
    }

    pub fn fit(&self, x: ArrayView2<'_, f32>, seed: u64) -> Result<Autoencoder, DetectError> {
        self.check()?;
        let n = x.nrows();
        if n < 10 {
            return Err(DetectError::TooFew { model: NAME, need: 10, got: n });
        }
        let d = x.ncols();
        let mut r = rng(seed, 4);
        let mut rows = subsample(n, self.max_train, &mut r);
        rows.shuffle(&mut r);
        let n_val = ((rows.len() as f64 * self.validation) as usize).min(rows.len() - 1);
        let (val, train) = rows.split_at(n_val);
        let dev = Device::Cpu;
        let gather = |idx: &[usize]| -> Result<Tensor, DetectError> {
            let mut v: Vec<f32> = Vec::with_capacity(idx.len() * d);
            for &i in idx {
                v.extend(x.row(i).iter());
            }
            Tensor::from_vec(v, (idx.len(), d), &dev).map_err(candle)
        };
        let val_x = if val.is_empty() { None } else { Some(gather(val)?) };

        let mut dims = vec![d];
        dims.extend(&self.layers);
        dims.extend(self.layers.iter().rev().skip(1));
        dims.push(d);
        let mut vars = Vec::new();
        for w in dims.windows(2) {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = 1.0 / (fan_in as f32).sqrt();
            let mut init = |len: usize| (0..len).map(|_| r.gen_range(-bound..bound)).collect::<Vec<f32>>();
            let weight =
                Var::from_tensor(&Tensor::from_vec(init(fan_out * fan_in), (fan_out, fan_in), &dev).map_err(candle)?)
                    .map_err(candle)?;
            let bias =
                Var::from_tensor(&Tensor::from_vec(init(fan_out), fan_out, &dev).map_err(candle)?).map_err(candle)?;
            vars.push((weight, bias));
        }
        let all: Vec<Var> = vars.iter().flat_map(|(w, b)| [w.clone(), b.clone()]).collect();
        let mut opt = AdamW::new(all, ParamsAdamW { lr: self.learning_rate, weight_decay: 0.0, ..Default::default() })
            .map_err(candle)?;

        let snapshot = |vars: &[(Var, Var)]| -> Vec<(Tensor, Tensor)> {
            vars.iter()
                .map(|(w, b)| {
                    (
                        w.as_tensor().copy().unwrap_or_else(|_| w.as_tensor().clone()),
                        b.as_tensor().copy().unwrap_or_else(|_| b.as_tensor().clone()),
                    )
                })
                .collect()
        };
        let mut best = (f32::INFINITY, snapshot(&vars), 0usize);
        let mut order: Vec<usize> = train.to_vec();
        let mut since_best = 0;
        let mut epochs_run = 0;
        for epoch in 0..self.epochs {
            order.shuffle(&mut r);
            let mut train_loss = 0.0f32;
            for chunk in order.chunks(self.batch) {
                let xb = gather(chunk)?;
                let layers: Vec<(Tensor, Tensor)> =
                    vars.iter().map(|(w, b)| (w.as_tensor().clone(), b.as_tensor().clone())).collect();
                let loss = forward(&layers, &xb).and_then(|y| (y - &xb)?.sqr()?.mean_all()).map_err(candle)?;
                train_loss += loss.to_scalar::<f32>().map_err(candle)? * chunk.len() as f32;
                opt.backward_step(&loss).map_err(candle)?;
            }
            epochs_run = epoch + 1;
            let layers: Vec<(Tensor, Tensor)> =
                vars.iter().map(|(w, b)| (w.as_tensor().clone(), b.as_tensor().clone())).collect();
            let loss = match &val_x {
                Some(v) => {
                    forward(&layers, v).and_then(|y| (y - v)?.sqr()?.mean_all()?.to_scalar::<f32>()).map_err(candle)?
                }
                None => train_loss / order.len() as f32,
            };
            if !loss.is_finite() {
                return Err(DetectError::Fit { model: NAME, reason: format!("loss diverged at epoch {epochs_run}") });
            }
            // "Better" means by at least 0.1 %: noise-level gains do not
            // keep training alive.
            if loss < best.0 * 0.999 {
                best = (loss, snapshot(&vars), epochs_run);
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= self.patience {
                    break;
                }
            }
        }
        let mut layers = Vec::new();
        for (w, b) in best.1 {
            let (w, b) = (w.to_vec2::<f32>().map_err(candle)?, b.to_vec1::<f32>().map_err(candle)?);
            layers.push(Layer::new(w, b));
        }
        Autoencoder::from_layers(d, layers, best.0, best.2, epochs_run).map_err(|e| match e {
            DetectError::Corrupt { reason, .. } => DetectError::Fit { model: NAME, reason },
            e => e,
        })
    }
}

/// ReLU between layers, linear output.
fn forward(layers: &[(Tensor, Tensor)], x: &Tensor) -> candle_core::Result<Tensor> {
    let mut h = x.clone();
    for (i, (w, b)) in layers.iter().enumerate() {
        h = h.matmul(&w.t()?)?.broadcast_add(b)?;
        if i + 1 < layers.len() {
            h = h.relu()?;
        }
    }
    Ok(h)
}

/// One dense layer: weight (out × in) and bias, as saved.
#[derive(Debug, Clone, PartialEq)]
struct Layer {
    out: usize,
    inp: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Layer {
    fn new(w: Vec<Vec<f32>>, b: Vec<f32>) -> Self {
        let out = w.len();
        let inp = w.first().map_or(0, Vec::len);
        Layer { out, inp, w: w.into_iter().flatten().collect(), b }
    }
}

/// A trained autoencoder.
#[derive(Debug, Clone)]
pub struct Autoencoder {
    width: usize,
    layers: Vec<Layer>,
    /// Candle tensors of the layers, for scoring.
    tensors: Vec<(Tensor, Tensor)>,
    /// Validation loss of the kept epoch, the epoch, and epochs run.
    pub validation_loss: f32,
    pub best_epoch: usize,
    pub epochs_run: usize,
}

impl Autoencoder {
    fn from_layers(
        width: usize,
        layers: Vec<Layer>,
        validation_loss: f32,
        best_epoch: usize,
        epochs_run: usize,
    ) -> Result<Self, DetectError> {
        // Layers must chain: d → … → d.
        let mut prev = width;
        for l in &layers {
            if l.inp != prev || l.w.len() != l.out * l.inp || l.b.len() != l.out {
                return Err(DetectError::corrupt(NAME, "layer shapes do not chain"));
            }
            prev = l.out;
        }
        if prev != width || layers.is_empty() {
            return Err(DetectError::corrupt(NAME, "output width differs from input width"));
        }
        let dev = Device::Cpu;
        let tensors = layers
            .iter()
            .map(|l| {
                Ok((
                    Tensor::from_slice(&l.w, (l.out, l.inp), &dev)?.t()?.contiguous()?,
                    Tensor::from_slice(&l.b, l.out, &dev)?,
                ))
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(|e| DetectError::corrupt(NAME, e))?;
        Ok(Autoencoder { width, layers, tensors, validation_loss, best_epoch, epochs_run })
    }

    /// Reconstructions of `x`.
    fn reconstruct(&self, x: ArrayView2<'_, f32>) -> candle_core::Result<(Tensor, Tensor)> {
        let x = x.as_standard_layout();
        let xt = Tensor::from_slice(x.as_slice().unwrap_or(&[]), (x.nrows(), x.ncols()), &Device::Cpu)?;
        let mut h = xt.clone();
        for (i, (wt, b)) in self.tensors.iter().enumerate() {
            h = h.matmul(wt)?.broadcast_add(b)?;
            if i + 1 < self.tensors.len() {
                h = h.relu()?;
            }
        }
        Ok((xt, h))
    }

    /// Squared reconstruction error per row and feature (for explanations).
    pub fn errors(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let n = x.nrows();
        let v = self
            .reconstruct(x)
            .and_then(|(xt, y)| (y - xt)?.sqr()?.flatten_all()?.to_vec1::<f32>())
            .unwrap_or_else(|_| vec![f32::NAN; n * self.width]);
        Array2::from_shape_vec((n, self.width), v).unwrap_or_else(|_| Array2::from_elem((n, self.width), f32::NAN))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DetectError> {
        let r = Reader::new(NAME, bytes)?;
        let (_, meta) = r.u32("meta", &[Some(4)])?;
        let (width, n_layers) = (meta[0] as usize, meta[1] as usize);
        if n_layers == 0 || n_layers > 64 {
            return Err(DetectError::corrupt(NAME, format!("{n_layers} layers")));
        }
        let mut layers = Vec::new();
        for i in 0..n_layers {
            let (s, w) = r.f32(&format!("layer{i}.weight"), &[None, None])?;
            let (_, b) = r.f32(&format!("layer{i}.bias"), &[Some(s[0])])?;
            layers.push(Layer { out: s[0], inp: s[1], w, b });
        }
        let loss = r.scalar("validation_loss")?;
        Autoencoder::from_layers(width, layers, loss, meta[2] as usize, meta[3] as usize)
    }
}

impl Detector for Autoencoder {
    fn kind(&self) -> Kind {
        Kind::Autoencoder
    }

    fn width(&self) -> usize {
        self.width
    }

    /// Squared reconstruction error per column: the columns the model could
    /// not rebuild are what it found unusual.
    fn attribute(&self, x: ArrayView2<'_, f32>) -> Option<Array2<f32>> {
        Some(self.errors(x))
    }

    fn score(&self, x: ArrayView2<'_, f32>, out: &mut [f32]) {
        let v = self
            .reconstruct(x)
            .and_then(|(xt, y)| (y - xt)?.sqr()?.mean(D::Minus1)?.to_dtype(DType::F32)?.to_vec1::<f32>());
        match v {
            Ok(v) => out.iter_mut().zip(v).for_each(|(o, v)| *o = v),
            // Only a shape bug reaches here; NaN scores are never "normal".
            Err(_) => out.iter_mut().for_each(|o| *o = f32::NAN),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(
            "meta",
            &[4],
            &[self.width as u32, self.layers.len() as u32, self.best_epoch as u32, self.epochs_run as u32],
        );
        w.f32("validation_loss", &[1], &[self.validation_loss]);
        for (i, l) in self.layers.iter().enumerate() {
            w.f32(&format!("layer{i}.weight"), &[l.out, l.inp], &l.w);
            w.f32(&format!("layer{i}.bias"), &[l.out], &l.b);
        }
        w.finish()
    }
}
