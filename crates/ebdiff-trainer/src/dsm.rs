//! The DSM ε-loss: L = E_{k~U{0..T−1}, x₀, ε} mean_d (ε̂(√ᾱ_k x₀ + σ_k ε, k) − ε)², used for
//! score models (ε̂ = g) and energy models (ε̂ = ∇ₓE) alike.

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

/// Draws k ~ U{0..T−1} and ε ~ N(0, I) per example and forms x_t. `x0` is `[B, D]` row-major.
pub fn noise_batch(
    x0: &[f32],
    dim: usize,
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
    NoisedBatch {
        x_t: Tensor::from_data(TensorData::new(x_t, [b, dim]), device),
        eps: Tensor::from_data(TensorData::new(eps, [b, dim]), device),
        cond: Conditioning::new(Tensor::<1, Int>::from_data(TensorData::new(t, [b]), device))
            .training(true),
        levels,
    }
}

/// Mean squared ε error. For an energy model ε̂ = ∇ₓE is itself built from differentiable VJPs,
/// so `dsm_loss(..).backward()` gives ∂L/∂θ with first-order autodiff only.
pub fn dsm_loss(model: &DiffusionModel, batch: &NoisedBatch) -> Tensor<1> {
    (model.eps(batch.x_t.clone(), &batch.cond) - batch.eps.clone())
        .square()
        .mean()
}
