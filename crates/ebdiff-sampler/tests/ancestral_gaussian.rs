//! Ancestral sampling with the *exact* ε of Gaussian data must reproduce that Gaussian.
//! For x₀ ~ N(μ, s²I): x_k ~ N(√ᾱ μ, (ᾱ s² + σ²) I), so ε*(x) = σ (x − √ᾱ μ)/(ᾱ s² + σ²).

use burn::tensor::{Device, Tensor};
use ebdiff_core::{NoiseSchedule, ScheduleConfig};
use ebdiff_model::{Conditioning, EpsModel};
use ebdiff_sampler::{AncestralOptions, Variance, sample_ancestral};

struct ExactGaussianEps {
    schedule: NoiseSchedule,
    mean: [f32; 2],
    std: f64,
}

impl EpsModel for ExactGaussianEps {
    fn data_dim(&self) -> usize {
        2
    }
    fn eps(&self, x: Tensor<2>, cond: &Conditioning) -> Tensor<2> {
        // All examples share one level in ancestral sampling.
        let k = cond
            .t
            .clone()
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap()[0] as usize;
        let (ab, sigma) = (self.schedule.alpha_bar(k), self.schedule.sigma(k));
        let var = ab * self.std * self.std + sigma * sigma;
        let mu = Tensor::<2>::from_data([[self.mean[0], self.mean[1]]], &x.device())
            .mul_scalar(ab.sqrt());
        (x - mu).mul_scalar(sigma / var)
    }
}

fn moments(v: &[f32]) -> ([f64; 2], [f64; 2]) {
    let n = (v.len() / 2) as f64;
    let mut m = [0.0; 2];
    let mut q = [0.0; 2];
    for p in v.chunks_exact(2) {
        for d in 0..2 {
            m[d] += p[d] as f64 / n;
            q[d] += (p[d] as f64).powi(2) / n;
        }
    }
    (m, [q[0] - m[0] * m[0], q[1] - m[1] * m[1]])
}

/// For Gaussian data every ancestral step is affine: x ← a·x + b + std·z with
/// a = (1 − β/V)/√α, b = (β/V)·√ᾱ·μ/√α, V = ᾱs² + σ². Propagating mean and variance from N(0, 1)
/// gives, independently of the sampler code, the moments it must produce.
fn predicted_moments(sched: &NoiseSchedule, mean: f64, std: f64, variance: Variance) -> (f64, f64) {
    let (mut m, mut v) = (0.0, 1.0);
    for k in (0..sched.len()).rev() {
        let big_v = sched.alpha_bar(k) * std * std + sched.sigma(k).powi(2);
        let a = (1.0 - sched.beta(k) / big_v) / sched.alpha(k).sqrt();
        let b = sched.beta(k) / big_v * sched.alpha_bar(k).sqrt() * mean / sched.alpha(k).sqrt();
        let noise = if k == 0 {
            0.0
        } else {
            match variance {
                Variance::FixedLarge => sched.beta(k),
                Variance::FixedSmall => sched.posterior_variance(k),
            }
        };
        m = a * m + b;
        v = a * a * v + noise;
    }
    (m, v)
}

#[test]
fn exact_eps_gives_the_predicted_moments_and_converges_to_the_data() {
    let device = Device::flex();
    let (mu, std) = ([0.3f32, -0.5], 0.4);
    for (sched, variance) in [
        (ScheduleConfig::cosine(100).build(), Variance::FixedSmall),
        (ScheduleConfig::cosine(100).build(), Variance::FixedLarge),
        (ScheduleConfig::linear(1000).build(), Variance::FixedSmall),
    ] {
        let model = ExactGaussianEps {
            schedule: sched.clone(),
            mean: mu,
            std,
        };
        let n = 20_000;
        let opts = AncestralOptions {
            variance,
            clip_x0: None,
            seed: 3,
        };
        let mut levels = 0;
        let x = sample_ancestral(&model, &sched, n, None, &opts, &device, |_| levels += 1);
        assert_eq!(levels, sched.len());
        let v: Vec<f32> = x.into_data().try_to_vec().unwrap();
        let (m, var) = moments(&v);
        for d in 0..2 {
            let (pm, pv) = predicted_moments(&sched, mu[d] as f64, std, variance);
            // Standard errors at n = 20000: mean ≈ 0.003, variance ≈ 0.0016.
            assert!(
                (m[d] - pm).abs() < 0.012,
                "{variance:?} T={}: mean {} vs predicted {pm}",
                sched.len(),
                m[d]
            );
            assert!(
                (var[d] - pv).abs() < 0.008,
                "{variance:?} T={}: variance {} vs predicted {pv}",
                sched.len(),
                var[d]
            );
            if sched.len() == 1000 {
                // With a fine schedule the reverse chain reaches the data distribution itself.
                assert!(
                    (pm - mu[d] as f64).abs() < 1e-3 && (pv - std * std).abs() < 0.004,
                    "predicted {pm}, {pv}"
                );
            }
        }
    }
}

#[test]
fn clipping_bounds_the_denoised_estimate() {
    // At k = 0 the posterior-mean coefficients are c1 = 1, c2 = 0 and no noise is added, so the
    // output is the clipped x̂₀ itself: every sample lies in [−c, c] although the data mean is ±2.
    let device = Device::flex();
    let sched = ScheduleConfig::linear(50).build();
    let model = ExactGaussianEps {
        schedule: sched.clone(),
        mean: [2.0, -2.0],
        std: 1.0,
    };
    let opts = AncestralOptions {
        variance: Variance::FixedSmall,
        clip_x0: Some(1.0),
        seed: 1,
    };
    let x = sample_ancestral(&model, &sched, 500, None, &opts, &device, |_| {});
    let v: Vec<f32> = x.into_data().try_to_vec().unwrap();
    assert!(v.iter().all(|&a| a.abs() <= 1.0 + 1e-5));
}

#[test]
fn ddim_with_eta_one_is_ancestral_fixed_small_and_eta_zero_is_deterministic() {
    let device = Device::flex();
    let sched = ScheduleConfig::cosine(50).build();
    let model = ExactGaussianEps {
        schedule: sched.clone(),
        mean: [0.3, -0.5],
        std: 0.4,
    };
    let anc = sample_ancestral(
        &model,
        &sched,
        256,
        None,
        &AncestralOptions {
            variance: Variance::FixedSmall,
            clip_x0: None,
            seed: 9,
        },
        &device,
        |_| {},
    );
    let ddim1 =
        ebdiff_sampler::sample_ddim(&model, &sched, 256, None, &ddim(1.0, 9), &device, |_| {});
    let (a, d): (Vec<f32>, Vec<f32>) = (
        anc.into_data().try_to_vec().unwrap(),
        ddim1.into_data().try_to_vec().unwrap(),
    );
    let diff = a
        .iter()
        .zip(&d)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-4,
        "DDIM(η=1) differs from ancestral fixed-small by {diff}"
    );
    // η = 0 with the exact ε of Gaussian data: each step is the affine map
    // x ← √ᾱ' (x − σ ε)/√ᾱ + √(1 − ᾱ') ε, ε = σ(x − √ᾱ μ)/V; its variance is predicted exactly,
    // and converges to the data's as the number of steps grows.
    let full = ScheduleConfig::linear(1000).build();
    let predicted_var = |sched: &ebdiff_core::NoiseSchedule| {
        let mut v = 1.0f64;
        for k in (0..sched.len()).rev() {
            let (ab, s, ab_prev) = (sched.alpha_bar(k), sched.sigma(k), sched.alpha_bar_prev(k));
            let big_v = ab * 0.16 + s * s;
            let c = ab_prev.sqrt() / ab.sqrt() * (1.0 - s * s / big_v)
                + (1.0 - ab_prev).sqrt() * s / big_v;
            v *= c * c;
        }
        v
    };
    let respaced = full.respaced(&full.evenly_spaced_levels(100)).unwrap();
    // The model knows the original 1000 levels; the sampler feeds it the source level.
    let model = ExactGaussianEps {
        schedule: full.clone(),
        mean: [0.3, -0.5],
        std: 0.4,
    };
    let x = ebdiff_sampler::sample_ddim(
        &model,
        &respaced,
        20_000,
        None,
        &ddim(0.0, 4),
        &device,
        |_| {},
    );
    let v: Vec<f32> = x.into_data().try_to_vec().unwrap();
    let (m, var) = moments(&v);
    let pv = predicted_var(&respaced);
    assert!(
        (m[0] - 0.3).abs() < 0.01 && (m[1] + 0.5).abs() < 0.01,
        "mean {m:?}"
    );
    assert!(
        (var[0] - pv).abs() < 0.006 && (var[1] - pv).abs() < 0.006,
        "variance {var:?}, predicted {pv}"
    );
    let fine = predicted_var(&full);
    assert!(
        (fine - 0.16).abs() < (pv - 0.16).abs() && (fine - 0.16).abs() < 0.005,
        "100 steps {pv}, 1000 steps {fine}"
    );
}

fn ddim(eta: f64, seed: u64) -> ebdiff_sampler::DdimOptions {
    ebdiff_sampler::DdimOptions {
        eta,
        clip_x0: None,
        seed,
    }
}
