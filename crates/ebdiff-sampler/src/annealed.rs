//! Annealed MCMC (method.md §4.2): pure annealing through the levels, or a reverse-diffusion step
//! followed by K MCMC steps per level, inside a window of levels.

use crate::ancestral::{Variance, reverse_step};
use crate::config::SamplerKind;
use crate::mcmc::{HmcParams, StepOutcome, hmc_step, mala_step, ula_step};
use crate::progress::Progress;
use crate::sample::SampleError;
use crate::step_size::LevelSchedule;
use crate::target::Target;
use burn::tensor::{Device, Tensor};
use ebdiff_core::NoiseSchedule;
use ebdiff_core::rng::{randn, stream};
use serde::{Deserialize, Serialize};

/// How the levels are traversed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnnealMode {
    /// x ~ N(0, I); for k = T−1 … 0: K kernel steps targeting π_k (the 2-D experiments).
    Pure,
    /// For k = T−1 … 0: a reverse step to level k−1, then K steps targeting π_{k−1}
    /// (Sjöberg; the sample lives at k−1 after the step). No MCMC after the final step.
    ReverseThenNext,
    /// As `ReverseThenNext` but the K steps target π_k (the released PyTorch code's choice).
    ReverseThenSame,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnnealedOptions {
    /// The MCMC kernel: `Ula`, `Mala`, `Uhmc` or `Hmc`.
    pub kernel: SamplerKind,
    pub mode: AnnealMode,
    /// K: MCMC steps per level.
    pub steps_per_level: usize,
    /// η for ULA/MALA, ε for the HMC kernels.
    pub step_size: LevelSchedule,
    /// m for the HMC kernels.
    pub mass: LevelSchedule,
    pub leapfrog: usize,
    pub damping: f64,
    pub flip_on_reject: bool,
    /// Trapezoid points for score-only MALA (≥ 2).
    pub line_points: usize,
    /// Extra points per leapfrog segment for score-only HMC.
    pub extra_points: usize,
    /// MCMC runs only at target levels in this inclusive range.
    pub window: (usize, usize),
    /// Reverse-step variance (reverse modes).
    pub variance: Variance,
    /// Clip x̂₀ to [−c, c] in the reverse steps (images), as ancestral sampling does.
    pub clip_x0: Option<f64>,
    /// Per-level automatic step-size search (MH kernels only).
    pub tune: Option<TuneOptions>,
    pub seed: u64,
}

/// Per-level step-size search towards an acceptance band (Sjöberg et al.): from the previous
/// level's step, multiply or divide by 10 until the probe acceptance brackets the band, then
/// bisect geometrically between the bracketing steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TuneOptions {
    /// Target acceptance band [lo, hi].
    pub band: (f64, f64),
    /// Kernel steps per probe (run on a copy of the chains).
    pub probe_steps: usize,
    /// Maximum probes per level.
    pub max_probes: usize,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            band: (0.6, 0.8),
            probe_steps: 2,
            max_probes: 12,
        }
    }
}

impl AnnealedOptions {
    /// The 2-D notebook's defaults for a kernel (method.md §10).
    pub fn paper_2d(kernel: SamplerKind, levels: usize) -> Self {
        let step = if kernel.is_hmc() { 0.03 } else { 0.001 };
        AnnealedOptions {
            kernel,
            mode: AnnealMode::Pure,
            steps_per_level: 10,
            step_size: LevelSchedule::constant(step),
            mass: LevelSchedule::constant(1.0),
            leapfrog: 3,
            damping: 0.5,
            flip_on_reject: false,
            line_points: 3,
            extra_points: 0,
            window: (0, levels.saturating_sub(1)),
            variance: Variance::FixedSmall,
            clip_x0: None,
            tune: None,
            seed: 0,
        }
    }
}

/// Chains whose per-term score norms the diagnostics report (an extra evaluation per level).
pub const TERM_NORM_CHAINS: usize = 16;

/// Diagnostics of one level, passed to the callback and collected.
#[derive(Debug, Clone, Serialize)]
pub struct LevelDiagnostics {
    pub level: usize,
    /// Mean acceptance over the K steps and all chains (MH kernels).
    pub acceptance: Option<f64>,
    /// Step size and mass used.
    pub step_size: f64,
    pub mass: f64,
    /// Mean ‖∇f‖ over chains at the end of the level.
    pub score_norm: f64,
    /// Mean ‖wᵢ∇fᵢ‖ of each term of a composition at the end of the level over the first
    /// [`TERM_NORM_CHAINS`] chains (mixture terms are shown with their prior weight, before
    /// responsibilities).
    pub term_score_norms: Vec<f64>,
    /// Cumulative target evaluations (sampling only).
    pub nfe: usize,
    /// Evaluations spent by the step-size search at this level.
    pub tune_nfe: usize,
}

fn mean_scalar(t: Tensor<1>) -> f64 {
    t.mean().into_scalar::<f64>()
}

/// One application of the configured kernel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply_kernel(
    target: &dyn Target,
    opts: &AnnealedOptions,
    x: Tensor<2>,
    v: Tensor<2>,
    eval: crate::target::Evaluation,
    level: usize,
    step: f64,
    mass: f64,
    rng: &mut rand::rngs::StdRng,
) -> StepOutcome {
    match opts.kernel {
        SamplerKind::Mala => mala_step(target, x, eval, level, step, opts.line_points, rng),
        SamplerKind::Uhmc | SamplerKind::Hmc => {
            let p = HmcParams {
                step,
                leapfrog: opts.leapfrog,
                damping: opts.damping,
                mass,
                metropolis: opts.kernel == SamplerKind::Hmc,
                flip_on_reject: opts.flip_on_reject,
                extra_points: opts.extra_points,
            };
            hmc_step(target, x, v, eval, level, &p, rng)
        }
        // `sample_annealed` admits only MCMC kinds; ULA is the remaining one.
        _ => ula_step(target, x, eval, level, step, rng),
    }
}

/// Searches a step whose probe acceptance lies in the band. Returns (step, acceptance, nfe).
#[allow(clippy::too_many_arguments)]
pub(crate) fn tune_step(
    target: &dyn Target,
    opts: &AnnealedOptions,
    tune: &TuneOptions,
    x: &Tensor<2>,
    v: &Tensor<2>,
    eval: &crate::target::Evaluation,
    level: usize,
    start: f64,
    mass: f64,
    rng: &mut rand::rngs::StdRng,
) -> (f64, f64, usize) {
    let mut nfe = 0;
    let mut probe = |step: f64, nfe: &mut usize| {
        let (mut xp, mut vp, mut ep) = (x.clone(), v.clone(), eval.clone());
        let mut acc = 0.0;
        for _ in 0..tune.probe_steps.max(1) {
            let out = apply_kernel(target, opts, xp, vp.clone(), ep, level, step, mass, rng);
            *nfe += out.nfe;
            acc += out.accepted.map(mean_scalar).unwrap_or(1.0);
            xp = out.x;
            ep = out.eval;
            if let Some(m) = out.momentum {
                vp = m;
            }
        }
        acc / tune.probe_steps.max(1) as f64
    };
    let (lo, hi) = tune.band;
    let mut step = start;
    let mut acc = probe(step, &mut nfe);
    // Bracket: a step with acceptance above the band (small) and one below (large).
    let (mut small, mut large): (Option<f64>, Option<f64>) = (None, None);
    for _ in 0..tune.max_probes {
        if (lo..=hi).contains(&acc) {
            return (step, acc, nfe);
        }
        if acc > hi {
            small = Some(step);
        } else {
            large = Some(step);
        }
        step = match (small, large) {
            (Some(s), Some(l)) => (s * l).sqrt(),
            (Some(s), None) => s * 10.0,
            (None, Some(l)) => l / 10.0,
            (None, None) => unreachable!(),
        };
        acc = probe(step, &mut nfe);
    }
    (step, acc, nfe)
}

/// What [`sample_annealed`] returns.
pub struct AnnealedRun {
    /// `[n, D]`.
    pub samples: Tensor<2>,
    /// One entry per level where MCMC ran.
    pub levels: Vec<LevelDiagnostics>,
    /// Target evaluations per chain, all of them: the reverse steps at levels outside the MCMC
    /// window count too (the last level's cumulative `nfe` misses those below the window).
    pub nfe: usize,
}

/// Runs annealed sampling of `target` for `n` chains. `callback` hears every level.
pub fn sample_annealed(
    target: &dyn Target,
    schedule: &NoiseSchedule,
    n: usize,
    opts: &AnnealedOptions,
    device: &Device,
    mut callback: impl FnMut(&Progress),
) -> Result<AnnealedRun, SampleError> {
    if !opts.kernel.is_mcmc() {
        return Err(SampleError::config(
            "sampler.kind",
            format!(
                "`{}` is not an MCMC kernel; annealed sampling needs ula, mala, uhmc or hmc",
                opts.kernel.name()
            ),
        ));
    }
    if opts.kernel.is_metropolis() && !target.has_energy() && opts.line_points < 2 {
        return Err(SampleError::config(
            "sampler.line_points",
            "score-only MALA/HMC estimate f(x') − f(x) by a line integral: need ≥ 2 points",
        ));
    }
    if n == 0 {
        return Err(SampleError::config("count", "must be ≥ 1"));
    }
    let dim = target.data_dim();
    let mut init_rng = stream(opts.seed, "init");
    let mut noise_rng = stream(opts.seed, "reverse-noise");
    let mut mcmc_rng = stream(opts.seed, "mcmc");
    let mut x = randn(&mut init_rng, [n, dim], device);
    let mut nfe = 0usize;
    let mut diagnostics = Vec::new();
    let mut tuned_prev: Option<f64> = None;
    let t_total = schedule.len();
    for k in (0..t_total).rev() {
        let tau = match opts.mode {
            AnnealMode::Pure => Some(k),
            AnnealMode::ReverseThenSame | AnnealMode::ReverseThenNext => {
                let score = target.score(x.clone(), k);
                nfe += 1;
                let eps = score.mul_scalar(-schedule.sigma(k));
                x = reverse_step(
                    x,
                    eps,
                    k,
                    schedule,
                    opts.variance,
                    opts.clip_x0,
                    &mut noise_rng,
                );
                match opts.mode {
                    AnnealMode::ReverseThenSame => Some(k),
                    _ => k.checked_sub(1),
                }
            }
        };
        let plain = Progress::plain(k, t_total - k, t_total, nfe);
        let Some(level) = tau.filter(|l| (opts.window.0..=opts.window.1).contains(l)) else {
            callback(&plain);
            continue;
        };
        if opts.steps_per_level == 0 {
            callback(&plain);
            continue;
        }
        let mass = opts.mass.at(schedule, level);
        let mut eval = target.evaluate(x.clone(), level);
        nfe += 1;
        let mut v = randn(&mut mcmc_rng, [n, dim], device).mul_scalar(mass);
        let mut step = opts.step_size.at(schedule, level);
        let mut tune_nfe = 0;
        if let (Some(tune), true) = (&opts.tune, opts.kernel.is_metropolis()) {
            // Warm start from the previous level's tuned step.
            let start = tuned_prev.unwrap_or(step);
            let (s, _, cost) = tune_step(
                target,
                opts,
                tune,
                &x,
                &v,
                &eval,
                level,
                start,
                mass,
                &mut mcmc_rng,
            );
            step = s;
            tuned_prev = Some(s);
            tune_nfe = cost;
        }
        let mut acc_sum = 0.0;
        for _ in 0..opts.steps_per_level {
            let out = apply_kernel(
                target,
                opts,
                x.clone(),
                v.clone(),
                eval,
                level,
                step,
                mass,
                &mut mcmc_rng,
            );
            nfe += out.nfe;
            if let Some(a) = out.accepted {
                acc_sum += mean_scalar(a);
            }
            x = out.x;
            eval = out.eval;
            if let Some(m) = out.momentum {
                v = m;
            }
        }
        let score_norm = crate::target::mean_row_norm(eval.score.clone());
        // Diagnostic evaluations are not counted in `nfe` (they are not part of the sampler); a
        // few chains show the terms' balance at a fraction of a composed evaluation's cost.
        let probe = x.clone().slice(0..n.min(TERM_NORM_CHAINS));
        let term_score_norms = target.term_score_norms(probe, level);
        let d = LevelDiagnostics {
            level,
            acceptance: opts
                .kernel
                .is_metropolis()
                .then(|| acc_sum / opts.steps_per_level as f64),
            step_size: step,
            mass,
            score_norm,
            term_score_norms,
            nfe,
            tune_nfe,
        };
        callback(&Progress {
            acceptance: d.acceptance,
            ..Progress::plain(k, t_total - k, t_total, nfe)
        });
        diagnostics.push(d);
    }
    Ok(AnnealedRun {
        samples: x,
        levels: diagnostics,
        nfe,
    })
}
