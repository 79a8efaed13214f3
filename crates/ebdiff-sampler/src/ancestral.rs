//! Ancestral DDPM sampling (method.md §1.4): from x_{T−1} ~ N(0, I), for k = T−1 … 0:
//! x̂₀ = (x_k − σ_k ε̂)/√ᾱ_k (optionally clipped), μ = c1·x̂₀ + c2·x_k, x_{k−1} = μ + std·z,
//! with no noise added at the last step.

use crate::progress::Progress;
use burn::tensor::{Device, Int, Tensor};
use ebdiff_core::NoiseSchedule;
use ebdiff_core::rng::{randn, stream};
use ebdiff_model::{Conditioning, EpsModel};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Variance {
    /// σ² = β_k ("fixed large"; the 2-D notebook). Over-disperses sharp data at small T.
    FixedLarge,
    /// σ² = β̃_k = β_k(1 − ᾱ_{k−1})/(1 − ᾱ_k) ("fixed small").
    #[default]
    FixedSmall,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AncestralOptions {
    pub variance: Variance,
    /// Clip x̂₀ to [−c, c] (images: 1.0); `None` for 2-D data.
    pub clip_x0: Option<f64>,
    pub seed: u64,
}

/// Options of DDIM sampling.
#[derive(Debug, Clone, PartialEq)]
pub struct DdimOptions {
    /// Stochasticity η ∈ [0, 1]: 0 is deterministic, 1 is ancestral with fixed-small variance.
    pub eta: f64,
    /// Clip x̂₀ to [−c, c] (images: 1.0); `None` for 2-D data.
    pub clip_x0: Option<f64>,
    pub seed: u64,
}

/// Mean of the ancestral step from level k to k − 1 given ε̂ at (x, k): the posterior mean
/// c1·x̂₀ + c2·x with x̂₀ = (x − σ_k ε̂)/√ᾱ_k optionally clipped to [−c, c].
pub fn reverse_mean(
    x: Tensor<2>,
    eps: Tensor<2>,
    k: usize,
    schedule: &NoiseSchedule,
    clip_x0: Option<f64>,
) -> Tensor<2> {
    match clip_x0 {
        Some(c) => {
            let x0 = (x.clone() - eps.mul_scalar(schedule.sigma(k)))
                .div_scalar(schedule.alpha_bar(k).sqrt());
            let (c1, c2) = schedule.posterior_mean_coefs(k);
            x0.clamp(-c, c).mul_scalar(c1) + x.mul_scalar(c2)
        }
        // Without clipping the posterior mean simplifies to (x − β/σ ε̂)/√α.
        None => (x - eps.mul_scalar(schedule.beta(k) / schedule.sigma(k)))
            .div_scalar(schedule.alpha(k).sqrt()),
    }
}

/// Variance of the ancestral step from level k (0 at k = 0 for fixed-small).
pub fn reverse_variance(k: usize, schedule: &NoiseSchedule, variance: Variance) -> f64 {
    match variance {
        Variance::FixedLarge => schedule.beta(k),
        Variance::FixedSmall => schedule.posterior_variance(k),
    }
}

/// One ancestral step from level k to k − 1 given ε̂ at (x, k). No noise is added at k = 0.
pub fn reverse_step(
    x: Tensor<2>,
    eps: Tensor<2>,
    k: usize,
    schedule: &NoiseSchedule,
    variance: Variance,
    clip_x0: Option<f64>,
    noise_rng: &mut StdRng,
) -> Tensor<2> {
    let mean = reverse_mean(x, eps, k, schedule, clip_x0);
    if k == 0 {
        return mean;
    }
    let var = reverse_variance(k, schedule, variance);
    let (device, dims) = (mean.device(), mean.dims());
    mean + randn(noise_rng, dims, &device).mul_scalar(var.sqrt())
}

/// Draws `n` samples, returned flat `[n, dim]`.
pub fn sample_ancestral(
    model: &impl EpsModel,
    schedule: &NoiseSchedule,
    n: usize,
    labels: Option<Tensor<1, Int>>,
    opts: &AncestralOptions,
    device: &Device,
    callback: impl FnMut(&Progress),
) -> Tensor<2> {
    let step = |x, eps, k, rng: &mut StdRng| {
        reverse_step(x, eps, k, schedule, opts.variance, opts.clip_x0, rng)
    };
    reverse_loop(
        model, schedule, n, labels, opts.seed, device, step, callback,
    )
}

/// The reverse loop shared by ancestral and DDIM sampling: x ~ N(0, I) from the "init" stream,
/// then for k = T−1 … 0 one `step(x, ε̂, k, noise_rng)`.
#[allow(clippy::too_many_arguments)]
fn reverse_loop(
    model: &impl EpsModel,
    schedule: &NoiseSchedule,
    n: usize,
    labels: Option<Tensor<1, Int>>,
    seed: u64,
    device: &Device,
    mut step: impl FnMut(Tensor<2>, Tensor<2>, usize, &mut StdRng) -> Tensor<2>,
    mut callback: impl FnMut(&Progress),
) -> Tensor<2> {
    let mut init_rng = stream(seed, "init");
    let mut noise_rng = stream(seed, "reverse-noise");
    let mut x = randn(&mut init_rng, [n, model.data_dim()], device);
    let t_total = schedule.len();
    for k in (0..t_total).rev() {
        // Respaced schedules feed the model its original level.
        let mut cond = Conditioning::new(Tensor::<1, Int>::full(
            [n],
            schedule.source_level(k) as i64,
            device,
        ));
        if let Some(l) = &labels {
            cond = cond.with_labels(l.clone());
        }
        let eps = model.eps(x.clone(), &cond);
        x = step(x, eps, k, &mut noise_rng);
        callback(&Progress::plain(k, t_total - k, t_total, t_total - k));
    }
    x
}

/// DDIM (Song et al. 2021) from level k to k − 1 with stochasticity η:
/// x_{k−1} = √ᾱ_{k−1} x̂₀ + √(1 − ᾱ_{k−1} − σ̃²) ε̂ + σ̃ z, σ̃² = η² β̃_k. η = 0 is deterministic;
/// η = 1 coincides with ancestral sampling with fixed-small variance.
#[allow(clippy::too_many_arguments)]
pub fn ddim_step(
    x: Tensor<2>,
    eps: Tensor<2>,
    k: usize,
    schedule: &NoiseSchedule,
    eta: f64,
    clip_x0: Option<f64>,
    noise_rng: &mut StdRng,
) -> Tensor<2> {
    let x0 =
        (x - eps.clone().mul_scalar(schedule.sigma(k))).div_scalar(schedule.alpha_bar(k).sqrt());
    let x0 = match clip_x0 {
        Some(c) => x0.clamp(-c, c),
        None => x0,
    };
    if k == 0 {
        return x0;
    }
    let ab_prev = schedule.alpha_bar_prev(k);
    let var = eta * eta * schedule.posterior_variance(k);
    let mean =
        x0.mul_scalar(ab_prev.sqrt()) + eps.mul_scalar((1.0 - ab_prev - var).max(0.0).sqrt());
    if var == 0.0 {
        return mean;
    }
    let (device, dims) = (mean.device(), mean.dims());
    mean + randn(noise_rng, dims, &device).mul_scalar(var.sqrt())
}

/// DDIM sampling over all levels of `schedule` (respace the schedule for fewer steps).
pub fn sample_ddim(
    model: &impl EpsModel,
    schedule: &NoiseSchedule,
    n: usize,
    labels: Option<Tensor<1, Int>>,
    opts: &DdimOptions,
    device: &Device,
    callback: impl FnMut(&Progress),
) -> Tensor<2> {
    let step =
        |x, eps, k, rng: &mut StdRng| ddim_step(x, eps, k, schedule, opts.eta, opts.clip_x0, rng);
    reverse_loop(
        model, schedule, n, labels, opts.seed, device, step, callback,
    )
}
