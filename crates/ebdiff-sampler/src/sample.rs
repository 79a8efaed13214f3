//! The one sampling entry point: a [`SamplingConfig`] and a [`Target`] in, a [`SampleResult`]
//! out, whatever the sampler. The CLI, evaluation, sweeps and the trainer's sample grids all call
//! [`sample`]; the individual samplers (`sample_ancestral`, `sample_ddim`, `sample_annealed`)
//! stay public for callers that want one directly.

use crate::ancestral::{AncestralOptions, DdimOptions, sample_ancestral, sample_ddim};
use crate::annealed::{LevelDiagnostics, sample_annealed};
use crate::config::{SamplerConfig, SamplerKind, SamplingConfig};
use crate::progress::Progress;
use crate::smc::sample_smc;
use crate::step_law::fit_step_law;
use crate::target::{Chunked, Respaced, Target, TargetAsEps};
use burn::tensor::{Device, Tensor};
use ebdiff_core::NoiseSchedule;

/// Why a sampling request was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleError {
    /// A key of the sampling config (dotted path, e.g. `sampler.leapfrog`) holds a bad value.
    Config { key: String, message: String },
    /// The target cannot be sampled this way (e.g. MALA on a score-only composition).
    Target(String),
}

impl SampleError {
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        SampleError::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SampleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SampleError::Config { key, message } => write!(f, "at `{key}`: {message}"),
            SampleError::Target(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SampleError {}

/// What every sampler returns.
pub struct SampleResult {
    /// `[count, dim]`, unweighted (SMC resamples at the end).
    pub samples: Tensor<2>,
    /// Per-level diagnostics of the levels where MCMC ran (empty for ancestral/DDIM).
    pub levels: Vec<LevelDiagnostics>,
    /// Target evaluations per chain, all of them.
    pub nfe: usize,
    /// SMC only: ESS, resampling, log Ẑ per level, final weights and ancestry.
    pub smc: Option<crate::smc::SmcDiagnostics>,
    /// The step law fitted by `sampler.fit_step_law`, when set.
    pub step_law: Option<crate::step_law::StepLawFit>,
}

impl SampleResult {
    /// The samples as flat host `f32`, `[count · dim]`.
    pub fn samples_vec(&self) -> Vec<f32> {
        self.samples
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 samples")
    }

    /// Mean Metropolis acceptance over the levels that report one.
    pub fn mean_acceptance(&self) -> Option<f64> {
        let acc: Vec<f64> = self.levels.iter().filter_map(|d| d.acceptance).collect();
        (!acc.is_empty()).then(|| acc.iter().sum::<f64>() / acc.len() as f64)
    }
}

/// Draws `cfg.count` samples of `target` with `cfg.sampler` and seed `cfg.seed`. `schedule` is
/// the schedule the target's models were trained with; with `sampler.respace` every sampler
/// steps through that many evenly spaced levels of it. `progress` hears every level.
pub fn sample(
    cfg: &SamplingConfig,
    target: &dyn Target,
    schedule: &NoiseSchedule,
    device: &Device,
    mut progress: impl FnMut(&Progress),
) -> Result<SampleResult, SampleError> {
    cfg.validate(schedule.len())?;
    let n = cfg.count;
    let s = &cfg.sampler;
    if s.kind.is_metropolis() && !target.has_energy() && s.line_points < 2 {
        return Err(SampleError::config(
            "sampler.line_points",
            "score-only MALA/HMC need ≥ 2 line-integral points",
        ));
    }
    if let Some(b) = target.fixed_batch()
        && b != n
    {
        return Err(SampleError::config(
            "count",
            format!("the target has {b} per-example labels but {n} samples were asked for"),
        ));
    }
    let chunked = s.max_batch.map(|rows| Chunked {
        inner: target,
        rows,
    });
    let target: &dyn Target = match &chunked {
        Some(c) => c,
        None => target,
    };
    let sampled = s
        .sampling_schedule(schedule)
        .map_err(|m| SampleError::config("sampler.respace", m))?;
    let levels = s.sampled_levels(schedule);
    // A fitted step law replaces `step_size` for the run proper.
    let (fitted, step_law);
    let s = match s.fit_step_law {
        None => {
            step_law = None;
            s
        }
        Some(_) => {
            let fit = fit_step_law(s, cfg.seed, &respaced(target, &levels), &sampled, device)?;
            fitted = SamplerConfig {
                step_size: Some(fit.law()),
                fit_step_law: None,
                ..s.clone()
            };
            step_law = Some(fit);
            &fitted
        }
    };
    match s.kind {
        SamplerKind::Ancestral | SamplerKind::Ddim => {
            // The reverse samplers feed the model its source levels themselves.
            let eps = TargetAsEps { target, schedule };
            let x = if s.kind == SamplerKind::Ancestral {
                let opts = AncestralOptions {
                    variance: s.variance,
                    clip_x0: s.clip_x0,
                    seed: cfg.seed,
                };
                sample_ancestral(&eps, &sampled, n, None, &opts, device, &mut progress)
            } else {
                let opts = DdimOptions {
                    eta: s.ddim_eta,
                    clip_x0: s.clip_x0,
                    seed: cfg.seed,
                };
                sample_ddim(&eps, &sampled, n, None, &opts, device, &mut progress)
            };
            Ok(SampleResult {
                samples: x,
                levels: Vec::new(),
                nfe: sampled.len(),
                smc: None,
                step_law,
            })
        }
        SamplerKind::Ula | SamplerKind::Mala | SamplerKind::Uhmc | SamplerKind::Hmc => {
            let respaced = respaced(target, &levels);
            let opts = s.annealed_options(sampled.len(), cfg.seed);
            let run = sample_annealed(&respaced, &sampled, n, &opts, device, progress)?;
            Ok(SampleResult {
                samples: run.samples,
                levels: run.levels,
                nfe: run.nfe,
                smc: None,
                step_law,
            })
        }
        SamplerKind::Smc => {
            let respaced = respaced(target, &levels);
            let opts = s.smc_options(sampled.len(), cfg.seed);
            let run = sample_smc(&respaced, &sampled, n, &opts, device, progress)?;
            Ok(SampleResult {
                samples: run.samples,
                levels: run.kernel_levels,
                nfe: run.nfe,
                smc: Some(run.diagnostics),
                step_law,
            })
        }
    }
}

/// `target` with sampler level k mapped to level `levels[k]` of the schedule it was built on.
fn respaced<'a>(target: &'a dyn Target, levels: &[usize]) -> Respaced<'a> {
    Respaced {
        inner: target,
        source: levels.to_vec(),
    }
}
