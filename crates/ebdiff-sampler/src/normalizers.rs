//! Per-level normalizers log Zᵢ(k) of energy models, for mixtures that mean what they say.
//!
//! An energy model gives p̃ᵢ,ₖ = exp(−Eᵢ/σ_k) with an unknown Zᵢ(k): denoising score matching fits
//! ∇ₓE only, so E carries an arbitrary offset per level, and components of different spread have
//! different Zᵢ even without offsets. A mixture Σ πᵢ pᵢ needs normalized components, otherwise
//! the effective weights are πᵢ·Zᵢ(k). Here Zᵢ(k) is estimated for every level by SMC on the
//! component alone (smc.md §4, AIS from level T−1): start from N(0, I), where pᵢ,T−1 ≈ N(0, I)
//! calibrates the offset, move with the component's own reverse step (ancestral proposal) and
//! exact weights, and read the running log Ẑ after every level.
//!
//! Why SMC/AIS rather than the Itô density estimator (SuperDiff): AIS uses the energies the
//! mixture needs anyway, its Ẑ is unbiased at every level whatever the step count, and with the
//! component's own reverse kernel as proposal its weights stay nearly uniform (the proposal is
//! close to the component's true reverse process). The Itô estimator integrates scores along one
//! trajectory per particle and carries a discretization bias of the reverse SDE; it also needs
//! the divergence-free form to hold exactly, which a trained model's score does not guarantee.
//! The estimate depends on the model and schedule only, so callers cache it (the trainer crate
//! keeps it in the run directory).

use crate::ancestral::Variance;
use crate::annealed::AnnealedOptions;
use crate::config::SamplerKind;
use crate::sample::SampleError;
use crate::smc::{SmcOptions, SmcWeights, sample_smc};
use crate::target::Target;
use burn::tensor::Device;
use ebdiff_core::NoiseSchedule;
use serde::{Deserialize, Serialize};

/// How a mixture treats its components' normalizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalizers {
    /// Estimate log Zᵢ(k) per level (the default): the weights are the components' masses.
    Estimate,
    /// Treat every component as normalized (the paper's mixture; biased unless Zᵢ agree).
    Equal,
}

/// Particles of the normalizer estimate (its standard error is roughly √(Var w)/√N).
pub const DEFAULT_PARTICLES: usize = 4096;

/// log Ẑ(k) for every level k = 0 … T−1 of `component` (one entry per level).
pub fn estimate_log_normalizers(
    component: &dyn Target,
    schedule: &NoiseSchedule,
    particles: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<f64>, SampleError> {
    if !component.has_energy() {
        return Err(SampleError::Target(
            "normalizers need log-densities: a score-only model cannot be calibrated".into(),
        ));
    }
    let levels = schedule.len();
    let mut kernel = AnnealedOptions::paper_2d(SamplerKind::Ancestral, levels);
    // Fixed-large (β): at low noise the true reverse kernel of a spread-out component has
    // variance ≈ β, and β̃ ≪ β there would make the weights degenerate.
    kernel.variance = Variance::FixedLarge;
    kernel.seed = seed;
    let opts = SmcOptions {
        proposal: SamplerKind::Ancestral,
        kernel,
        rejuvenate: None,
        ess_threshold: 0.5,
        clamp_log_weight_increment: None,
        temper: None,
        group_size: None,
        weights: SmcWeights::Exact,
        clip_x0: None,
    };
    let run = sample_smc(component, schedule, particles, &opts, device, |_| {})?;
    let mut log_z = vec![f64::NAN; levels];
    let start = run.diagnostics.start_level;
    log_z[start] = run.diagnostics.log_z_start;
    for l in &run.diagnostics.levels {
        if l.level >= 0 {
            log_z[l.level as usize] = l.log_z;
        }
    }
    // Levels above SMC's start (the clipped top level): importance sampling from N(0, I), which
    // a single model's top level is close to.
    for (k, z) in log_z.iter_mut().enumerate().skip(start + 1) {
        let mut rng = ebdiff_core::rng::stream_at(seed, "normalizer-top", k as u64);
        let x = ebdiff_core::rng::randn(&mut rng, [particles, component.data_dim()], device);
        let sq: Vec<f64> = x
            .clone()
            .square()
            .sum_dim(1)
            .into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .expect("f64");
        let l: Vec<f64> = component
            .evaluate(x, k)
            .log_density
            .expect("checked: energy")
            .into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .expect("f64");
        let d = component.data_dim() as f64;
        let log_w: Vec<f64> = l
            .iter()
            .zip(sq)
            .map(|(l, s)| l + 0.5 * s + 0.5 * d * (2.0 * std::f64::consts::PI).ln())
            .collect();
        *z = crate::resample::log_sum_exp(&log_w) - (particles as f64).ln();
    }
    Ok(log_z)
}
