//! `sampler.fit_step_law`: tune the step law a·β_k^b to a model before sampling (Sjöberg et al.
//! fitted theirs once for their models; ours differ). A pilot of the same Metropolis kernel over
//! the same window searches each level's step until the pilot's acceptance lies in the band
//! (`annealed::tune_step`), then log step is fitted against log β by least squares. The main run
//! uses the fitted law at every level without further search, so its per-level acceptance (in
//! the diagnostics) shows how well one law fits all levels.

use crate::annealed::{AnnealMode, TuneOptions, sample_annealed};
use crate::config::{SamplerConfig, SamplerKind};
use crate::sample::SampleError;
use crate::step_size::{LevelSchedule, fit_beta_power};
use crate::target::Target;
use burn::tensor::Device;
use ebdiff_core::NoiseSchedule;
use serde::Serialize;

/// What the pilot found, recorded next to the samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepLawFit {
    /// The kernel tuned (`mala`, `hmc`).
    pub kernel: String,
    pub a: f64,
    pub b: f64,
    pub band: [f64; 2],
    pub pilot_chains: usize,
    /// Per pilot level: (level, β, searched step, pilot acceptance at that step).
    pub pilot_levels: Vec<(usize, f64, f64, f64)>,
    /// Target evaluations per pilot chain (search and steps): the one-off cost of the fit.
    pub pilot_nfe: usize,
}

/// Runs the pilot for `s` (whose `fit_step_law` is set) on `target` over `schedule` (the levels the
/// sampler steps through) and returns the fit; `s` is checked by `SamplerConfig::validate`.
pub fn fit_step_law(
    s: &SamplerConfig,
    seed: u64,
    target: &dyn Target,
    schedule: &NoiseSchedule,
    device: &Device,
) -> Result<StepLawFit, SampleError> {
    let fit = s.fit_step_law.expect("fit_step_law is set");
    let (kernel, steps) = s.fit_kernel().expect("validated: a Metropolis kernel");
    let mut opts = s.annealed_options(schedule.len(), pilot_seed(seed));
    opts.kernel = kernel;
    opts.steps_per_level = steps;
    if s.kind == SamplerKind::Smc {
        // SMC moves by its proposal, then runs the kernel at the level it reached: the pilot
        // approximates that by a reverse step followed by the kernel at the same level.
        opts.mode = AnnealMode::ReverseThenSame;
    }
    opts.tune = Some(TuneOptions {
        band: (fit.band[0], fit.band[1]),
        probe_steps: fit.probe_steps,
        max_probes: fit.max_probes,
    });
    let run = sample_annealed(target, schedule, fit.pilot_chains, &opts, device, |_| {})?;
    let pilot_levels: Vec<(usize, f64, f64, f64)> = run
        .levels
        .iter()
        .map(|d| {
            (
                d.level,
                schedule.beta(d.level),
                d.step_size,
                d.acceptance.unwrap_or(f64::NAN),
            )
        })
        .collect();
    let points: Vec<(f64, f64)> = pilot_levels.iter().map(|p| (p.1, p.2)).collect();
    let (a, b) =
        fit_beta_power(&points).map_err(|m| SampleError::config("sampler.fit_step_law", m))?;
    let tune_nfe: usize = run.levels.iter().map(|d| d.tune_nfe).sum();
    Ok(StepLawFit {
        kernel: kernel.name().into(),
        a,
        b,
        band: fit.band,
        pilot_chains: fit.pilot_chains,
        pilot_levels,
        pilot_nfe: run.nfe + tune_nfe,
    })
}

/// The pilot draws its own random numbers, apart from the main run's.
fn pilot_seed(seed: u64) -> u64 {
    seed ^ 0x005e_ed0f_9170_u64
}

impl StepLawFit {
    /// The fitted law.
    pub fn law(&self) -> LevelSchedule {
        LevelSchedule::BetaPower {
            a: self.a,
            b: self.b,
        }
    }
}
