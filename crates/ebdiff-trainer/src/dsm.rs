//! The DSM ε-loss: L = E_{k~U{0..T−1}, x₀, ε} mean_d (ε̂(√ᾱ_k x₀ + σ_k ε, k) − ε)², used for
//! score models (ε̂ = g) and energy models (ε̂ = ∇ₓE) alike.

use crate::ema::in_f32;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ebdiff_core::NoiseSchedule;
use ebdiff_core::rng::normal_vec;
use ebdiff_model::{Conditioning, DiffusionModel};
use rand::Rng;
use rand::rngs::StdRng;

/// A noised training batch.
#[derive(Debug, Clone)]
pub struct NoisedBatch {
    pub x_t: Tensor<2>,
    pub eps: Tensor<2>,
    pub levels: Vec<usize>,
    pub cond: Conditioning,
}

/// Draws k ~ U{0..T−1} and ε ~ N(0, I) per example and forms x_t. `x0` is `[B, D]` row-major;
/// `labels` (already with any null-label dropout applied) condition the model.
pub fn noise_batch(
    x0: &[f32],
    dim: usize,
    labels: Option<&[u32]>,
    schedule: &NoiseSchedule,
    rng: &mut StdRng,
    device: &Device,
) -> NoisedBatch {
    let b = x0.len() / dim;
    let levels: Vec<usize> = (0..b)
        .map(|_| rng.random_range(0..schedule.len()))
        .collect();
    let eps = normal_vec(rng, b * dim);
    let mut x_t = Vec::with_capacity(b * dim);
    for (i, &k) in levels.iter().enumerate() {
        let (a, s) = (
            schedule.alpha_bar(k).sqrt() as f32,
            schedule.sigma(k) as f32,
        );
        for d in 0..dim {
            x_t.push(a * x0[i * dim + d] + s * eps[i * dim + d]);
        }
    }
    let t: Vec<i64> = levels.iter().map(|&k| k as i64).collect();
    let mut cond = Conditioning::new(Tensor::<1, Int>::from_data(TensorData::new(t, [b]), device))
        .training(true);
    if let Some(labels) = labels {
        assert_eq!(labels.len(), b, "one label per example");
        let y: Vec<i64> = labels.iter().map(|&y| y as i64).collect();
        cond = cond.with_labels(Tensor::<1, Int>::from_data(TensorData::new(y, [b]), device));
    }
    NoisedBatch {
        x_t: Tensor::from_data(TensorData::new(x_t, [b, dim]), device),
        eps: Tensor::from_data(TensorData::new(eps, [b, dim]), device),
        cond,
        levels,
    }
}

impl NoisedBatch {
    /// Examples `start..end` (for gradient accumulation).
    pub fn slice(&self, start: usize, end: usize) -> NoisedBatch {
        if start == 0 && end == self.levels.len() {
            return self.clone();
        }
        NoisedBatch {
            x_t: self.x_t.clone().slice(start..end),
            eps: self.eps.clone().slice(start..end),
            levels: self.levels[start..end].to_vec(),
            cond: Conditioning {
                t: self.cond.t.clone().slice(start..end),
                labels: self.cond.labels.clone().map(|l| l.slice(start..end)),
                train: self.cond.train,
            },
        }
    }
}

/// Per-level weight of the ε-loss.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LossWeighting {
    /// Plain ε-MSE (Ho et al.'s L_simple).
    #[default]
    Uniform,
    /// Min-SNR-γ (Hang et al. 2023): w_k = min(SNR_k, γ)/SNR_k for ε-prediction, which stops
    /// the easy low-noise levels from dominating.
    MinSnr { gamma: f64 },
}

impl LossWeighting {
    pub fn weight(&self, schedule: &NoiseSchedule, k: usize) -> f64 {
        match *self {
            LossWeighting::Uniform => 1.0,
            LossWeighting::MinSnr { gamma } => {
                let a = schedule.alpha_bar(k);
                let snr = a / (1.0 - a);
                snr.min(gamma) / snr
            }
        }
    }
}

/// Weighted ε-loss: mean over examples of w_k · mean_d (ε̂ − ε)².
pub fn dsm_loss_weighted(
    model: &DiffusionModel,
    batch: &NoisedBatch,
    schedule: &NoiseSchedule,
    weighting: LossWeighting,
) -> Tensor<1> {
    if weighting == LossWeighting::Uniform {
        return dsm_loss(model, batch);
    }
    let b = batch.levels.len();
    let w: Vec<f32> = batch
        .levels
        .iter()
        .map(|&k| weighting.weight(schedule, k) as f32)
        .collect();
    let w = Tensor::<1>::from_data(TensorData::new(w, [b]), &batch.x_t.device());
    let per_example = in_f32(model.eps(batch.x_t.clone(), &batch.cond) - batch.eps.clone())
        .square()
        .mean_dim(1)
        .reshape([b]);
    (per_example * w).mean()
}

/// Mean squared ε error. For an energy model ε̂ = ∇ₓE is itself built from differentiable VJPs,
/// so `dsm_loss(..).backward()` gives ∂L/∂θ with first-order autodiff only.
pub fn dsm_loss(model: &DiffusionModel, batch: &NoisedBatch) -> Tensor<1> {
    // ε̂ − ε widened to f32 on a half-precision device (`--dtype bf16`): squares and a mean
    // over the whole batch would lose a trained model's small errors in half precision.
    in_f32(model.eps(batch.x_t.clone(), &batch.cond) - batch.eps.clone())
        .square()
        .mean()
}
