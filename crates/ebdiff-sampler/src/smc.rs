//! Sequential Monte Carlo over the diffusion path (smc.md): N weighted particles follow the level
//! targets π_{T−1} → … → π_0 of a composition, reweighted at every move so that the weighted
//! particles target π_k exactly, resampled (systematic) when the effective sample size drops.
//!
//! Weights (per move from level k+1 to k; ℓ_k = log π̃_k):
//! - every leaf has an energy, ancestral proposal M_k with the forward kernel as backward kernel
//!   L_k(x_{k+1} | x_k) = N(√α_{k+1} x_k, β_{k+1} I):
//!   log G = ℓ_k(x_k) + log L_k − ℓ_{k+1}(x_{k+1}) − log M_k   (exact, smc.md §2);
//! - an MCMC proposal (K kernel steps targeting π_k from x_{k+1}), AIS form:
//!   log G = ℓ_k(x_{k+1}) − ℓ_{k+1}(x_{k+1}), exact for MALA/HMC, approximate for ULA/U-HMC;
//! - score-only leaves (Feynman–Kac correctors, smc.md §3) with the ancestral proposal:
//!   log G = (β_{k+1}/2)(‖Σ cᵢ sᵢ‖² − Σ cᵢ ‖sᵢ‖²), scores at the start of the move or averaged
//!   over both ends; classifier terms (λ, g) add (β/2)(‖Σ λ g‖² − Σ λ ‖g‖²).
//!
//! The path ends at level 0; when the target knows its data-level density (oracles), one more
//! weighted move (Tweedie mean, variance β_0) reaches the data law itself, otherwise the particles
//! are denoised by the Tweedie mean as ancestral sampling does. The returned samples are
//! resampled once more (unweighted); the final weights, log Ẑ and the ancestry are reported.
//!
//! Particle groups (`group_size = P`): each returned sample has a population of P particles of
//! its own, weighted, normalized and resampled only within the group, and is drawn from it by
//! the final weights; without groups, one population of `count` particles returns `count`
//! draws. Tempering multiplies every log-weight increment by λ ∈ (0, 1] (like the clamp, it
//! biases the result and is recorded).

use crate::ancestral::{Variance, reverse_mean, reverse_variance};
use crate::annealed::{AnnealedOptions, apply_kernel, tune_step};
use crate::config::SamplerKind;
use crate::mcmc::row_dot;
use crate::progress::Progress;
use crate::resample::GroupedBook;
use crate::sample::SampleError;
use crate::target::{Evaluation, ScoreTerm, Target};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ebdiff_core::NoiseSchedule;
use ebdiff_core::rng::{randn, stream};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Which incremental weights SMC uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SmcWeights {
    /// Exact weights when every leaf has an energy, FKC weights otherwise.
    #[default]
    Auto,
    /// Exact discrete-time weights (needs energies).
    Exact,
    /// Feynman–Kac corrector weights from the scores, evaluated where the move starts.
    FkcStart,
    /// FKC weights averaged over the two ends of the move (trapezoid).
    FkcAverage,
}

/// Options of [`sample_smc`].
#[derive(Debug, Clone, PartialEq)]
pub struct SmcOptions {
    /// How particles move from level k+1 to k: `Ancestral`, or an MCMC kernel (`Ula`, `Mala`,
    /// `Uhmc`, `Hmc`) run for `kernel.steps_per_level` steps targeting π_k.
    pub proposal: SamplerKind,
    /// Kernel settings (step size, mass, leapfrog, damping, tune, variance of the ancestral
    /// proposal, seed), as for annealed MCMC.
    pub kernel: AnnealedOptions,
    /// π_k-invariant rejuvenation after weighting and resampling.
    pub rejuvenate: Option<Rejuvenation>,
    /// Resample when ESS/N falls below this (1: every level, 0: never).
    pub ess_threshold: f64,
    /// Clamp each incremental log-weight to [−c, c] (biased; off unless asked for).
    pub clamp_log_weight_increment: Option<f64>,
    /// Multiply each incremental log-weight by λ ∈ (0, 1] before the clamp (biased; `None` = 1).
    pub temper: Option<f64>,
    /// P particles per returned sample, weighted and resampled within their group; `None`: one
    /// population of `count` particles returning `count` draws.
    pub group_size: Option<usize>,
    pub weights: SmcWeights,
    /// Clip x̂₀ to [−c, c] in the ancestral proposal (images).
    pub clip_x0: Option<f64>,
}

/// MALA or HMC steps after each level's weighting and resampling.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejuvenation {
    pub kind: SamplerKind,
    pub steps: usize,
    /// η (MALA) or ε (HMC) per level.
    pub step_size: crate::LevelSchedule,
}

/// One level of an SMC run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmcLevel {
    /// The level the particles moved to (−1: the data level of an oracle target).
    pub level: i64,
    /// ESS / N after this level's reweighting, before any resampling (with groups: the mean of
    /// the groups' ESS / P).
    pub ess: f64,
    /// Whether any group resampled.
    pub resampled: bool,
    /// Distinct initial particles whose descendants are still alive.
    pub distinct_ancestors: usize,
    /// Smallest and median ESS / P over the groups (one group: both are `ess`).
    pub group_ess_min: f64,
    pub group_ess_median: f64,
    /// Groups that resampled at this level.
    pub groups_resampled: usize,
    /// Smallest and median number of distinct initial particles alive within a group (a group
    /// down to 1 is a best-of-P search, not a sampler).
    pub group_ancestors_min: usize,
    pub group_ancestors_median: f64,
    /// Mean acceptance of the MCMC proposal or the rejuvenation kernel.
    pub acceptance: Option<f64>,
    /// Target evaluations per particle so far.
    pub nfe: usize,
    /// log Σᵢ Wᵢ Gᵢ: this level's factor of log Ẑ.
    pub log_z_increment: f64,
    /// log Ẑ of this level's target so far (the running sum of the increments).
    pub log_z: f64,
    /// Particles whose increment hit the clamp.
    pub clamped: usize,
}

/// Everything SMC reports besides the samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmcDiagnostics {
    pub levels: Vec<SmcLevel>,
    /// Estimate of log ∫ π̃_final (the final target's normalizer relative to p_init's).
    pub log_z: f64,
    /// Estimate of log ∫ π̃_top from the initial weights.
    pub log_z_start: f64,
    /// The level the particles start at ([`start_level`]).
    pub start_level: usize,
    /// c of the initial law N(0, I/c).
    pub init_precision: f64,
    /// Normalized final log-weights, before the final resampling.
    pub final_log_weights: Vec<f64>,
    /// ESS / N of the final weights.
    pub final_ess: f64,
    /// For each returned sample, the initial particle it descends from.
    pub ancestors: Vec<usize>,
    /// Particles per group (`None`: one population).
    pub group_size: Option<usize>,
    /// Total particles.
    pub particles: usize,
    /// λ of the tempered increments, when set.
    pub temper: Option<f64>,
    /// Whether the run ended with a weighted move to the exact data law (oracle targets).
    pub data_level: bool,
    /// "exact" or "fkc-start"/"fkc-average": the weights actually used.
    pub weights: String,
    /// Variance of the ancestral proposal (FKC always uses fixed-large, the reverse-SDE step).
    pub proposal_variance: Variance,
    /// Whether some increments were clamped (the estimate is then biased).
    pub clamped: bool,
}

/// What [`sample_smc`] returns.
pub struct SmcRun {
    /// `[n, D]`, resampled by the final weights (unweighted).
    pub samples: Tensor<2>,
    pub diagnostics: SmcDiagnostics,
    /// Per-level acceptance diagnostics in annealed-MCMC form (levels with a kernel).
    pub kernel_levels: Vec<crate::annealed::LevelDiagnostics>,
    pub nfe: usize,
}

fn to_f64(t: Tensor<1>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("f64 values")
}

/// Row-wise log N(a; b, v I).
fn log_normal(a: Tensor<2>, b: Tensor<2>, v: f64) -> Vec<f64> {
    let d = a.dims()[1] as f64;
    let diff = a - b;
    let sq = to_f64(row_dot(diff.clone(), diff));
    let c = -0.5 * d * (2.0 * PI * v).ln();
    sq.into_iter().map(|s| c - s / (2.0 * v)).collect()
}

fn select_rows(t: Tensor<2>, idx: &Tensor<1, Int>) -> Tensor<2> {
    t.select(0, idx.clone())
}

fn select_eval(e: Evaluation, idx: &Tensor<1, Int>) -> Evaluation {
    Evaluation {
        log_density: e.log_density.map(|f| f.select(0, idx.clone())),
        score: select_rows(e.score, idx),
    }
}

/// ‖Σ cᵢ sᵢ‖² − Σ cᵢ ‖sᵢ‖² over the model terms plus the same over the classifier terms, `[B]`.
fn fkc_rate(terms: &[ScoreTerm]) -> Vec<f64> {
    let mut out: Option<Tensor<1>> = None;
    for classifier in [false, true] {
        let group: Vec<&ScoreTerm> = terms
            .iter()
            .filter(|t| t.classifier == classifier)
            .collect();
        let Some(first) = group.first() else { continue };
        let mut sum = first.score.clone().mul_scalar(first.weight);
        let mut weighted_sq =
            row_dot(first.score.clone(), first.score.clone()).mul_scalar(first.weight);
        for t in &group[1..] {
            sum = sum + t.score.clone().mul_scalar(t.weight);
            weighted_sq =
                weighted_sq + row_dot(t.score.clone(), t.score.clone()).mul_scalar(t.weight);
        }
        let r = row_dot(sum.clone(), sum) - weighted_sq;
        out = Some(match out {
            Some(acc) => acc + r,
            None => r,
        });
    }
    to_f64(out.expect("at least one term"))
}

/// The state of the particle system.
struct Particles {
    x: Tensor<2>,
    eval: Evaluation,
    /// Score terms at (x, level) (FKC weights only).
    terms: Option<Vec<ScoreTerm>>,
    book: GroupedBook,
    /// Initial particle each particle descends from.
    lineage: Vec<usize>,
    /// Which groups resampled at the last reweighting.
    last_resampled: Vec<bool>,
}

impl Particles {
    /// Resamples the flagged groups (one uniform each, in group order); no copy when none is.
    fn resample(&mut self, which: &[bool], rng: &mut impl Rng, device: &Device) {
        if !which.iter().any(|&w| w) {
            return;
        }
        let idx = self.book.resample(which, || rng.random::<f64>());
        self.select(&idx, device);
    }

    /// Keeps rows `idx` (ancestor indices) of every per-particle quantity.
    fn select(&mut self, idx: &[usize], device: &Device) {
        let n = idx.len();
        let t = Tensor::<1, Int>::from_data(
            TensorData::new(idx.iter().map(|&i| i as i64).collect::<Vec<_>>(), [n]),
            device,
        );
        self.x = select_rows(self.x.clone(), &t);
        self.eval = select_eval(self.eval.clone(), &t);
        self.terms = self.terms.take().map(|terms| {
            terms
                .into_iter()
                .map(|mut term| {
                    term.score = select_rows(term.score, &t);
                    term
                })
                .collect()
        });
        self.lineage = idx.iter().map(|&i| self.lineage[i]).collect();
    }

    fn distinct_ancestors(&self) -> usize {
        distinct(&self.lineage)
    }

    /// Distinct initial particles alive in each group.
    fn group_ancestors(&self) -> Vec<usize> {
        self.lineage
            .chunks(self.book.group_size)
            .map(distinct)
            .collect()
    }

    /// One draw per group by the group's final weights (inverse CDF at one uniform each).
    fn draw_one_per_group(&mut self, rng: &mut impl Rng, device: &Device) {
        let p = self.book.group_size;
        let idx: Vec<usize> = self
            .book
            .groups
            .iter()
            .enumerate()
            .map(|(g, book)| g * p + crate::resample::inverse_cdf(&book.log_w, rng.random()))
            .collect();
        self.select(&idx, device);
    }
}

fn distinct(lineage: &[usize]) -> usize {
    let mut l = lineage.to_vec();
    l.sort_unstable();
    l.dedup();
    l.len()
}

/// Smallest and median of a non-empty list.
fn min_median(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    let median = if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    };
    (s[0], median)
}

/// Random-walk Metropolis steps at the data level per rejuvenation step (they cost one density
/// evaluation each, a tenth of an HMC step's gradient evaluations).
pub const DATA_RWM_STEPS_PER_STEP: usize = 10;

/// Largest β of the first move. Above it the forward kernel, which is the backward kernel of the
/// exact weights, maps a composition's ≈ N(0, I/c) marginal to a visibly different one (the
/// first move of a product of two models from β = 0.75 left 1.5 % ESS), and the weights turn
/// heavy-tailed; cosine schedules reach β = 0.999 at the top.
pub const MAX_START_BETA: f64 = 0.2;

/// The level SMC starts at: the highest one whose β (and every β below it) is at most
/// [`MAX_START_BETA`]. The levels above carry almost no signal (ᾱ < 0.02 for the cosine T = 100
/// schedule), so the target there is ≈ N(0, I/c), the initial law.
pub fn start_level(schedule: &NoiseSchedule) -> usize {
    let t = schedule.len();
    (0..t)
        .find(|&k| schedule.beta(k) > MAX_START_BETA)
        .map_or(t - 1, |k| k.saturating_sub(1))
}

/// Checks that `opts` can sample `target`; returns whether FKC weights are used.
fn check(target: &dyn Target, n: usize, opts: &SmcOptions) -> Result<Option<bool>, SampleError> {
    match opts.group_size {
        None if n < 2 => {
            return Err(SampleError::config(
                "count",
                format!(
                    "SMC needs at least 2 particles, got {n} (or set particles_per_sample for groups per sample)"
                ),
            ));
        }
        Some(0) => {
            return Err(SampleError::config(
                "sampler.particles_per_sample",
                "must be ≥ 1 (particles behind each returned sample)",
            ));
        }
        _ => {}
    }
    if let Some(l) = opts.temper
        && !(l > 0.0 && l <= 1.0)
    {
        return Err(SampleError::config(
            "sampler.temper",
            format!("must be in (0, 1] (the factor on each log-weight increment), got {l}"),
        ));
    }
    if !(0.0..=1.0).contains(&opts.ess_threshold) {
        return Err(SampleError::config(
            "sampler.ess_threshold",
            format!("must be in [0, 1], got {}", opts.ess_threshold),
        ));
    }
    if !(opts.proposal == SamplerKind::Ancestral || opts.proposal.is_mcmc()) {
        return Err(SampleError::config(
            "sampler.proposal",
            format!(
                "`{}` cannot move SMC particles; allowed: ancestral, ula, mala, uhmc, hmc (a deterministic DDIM step would only copy resampled particles)",
                opts.proposal.name()
            ),
        ));
    }
    if let Some(Rejuvenation { kind, steps, .. }) = opts.rejuvenate {
        if !kind.is_metropolis() {
            return Err(SampleError::config(
                "sampler.rejuvenate.kind",
                format!(
                    "`{}` is not π_k-invariant; rejuvenation needs mala or hmc",
                    kind.name()
                ),
            ));
        }
        if steps == 0 {
            return Err(SampleError::config(
                "sampler.rejuvenate.steps",
                "must be ≥ 1",
            ));
        }
        if !target.has_energy() {
            return Err(SampleError::Target(
                "rejuvenation needs an energy for its Metropolis correction, and the composition is score-only".into(),
            ));
        }
    }
    if let Some(c) = opts.clamp_log_weight_increment
        && !(c > 0.0 && c.is_finite())
    {
        return Err(SampleError::config(
            "sampler.clamp_log_weight_increment",
            format!("must be positive, got {c}"),
        ));
    }
    if target.fixed_batch().is_some() {
        return Err(SampleError::Target(
            "SMC resamples particles, so it cannot sample a target with per-example labels".into(),
        ));
    }
    let fkc = match opts.weights {
        SmcWeights::Auto => (!target.has_energy()).then_some(false),
        SmcWeights::Exact => None,
        SmcWeights::FkcStart => Some(false),
        SmcWeights::FkcAverage => Some(true),
    };
    match fkc {
        None if !target.has_energy() => Err(SampleError::Target(
            "exact SMC weights need an energy for every leaf; this composition is score-only (use weights = \"auto\" for FKC weights)".into(),
        )),
        Some(_) if opts.proposal != SamplerKind::Ancestral => Err(SampleError::config(
            "sampler.proposal",
            "FKC weights (score-only compositions) are derived for the reverse diffusion: use proposal = \"ancestral\"",
        )),
        None if opts.proposal.is_mcmc() && !opts.proposal.is_metropolis() => {
            // ULA/U-HMC in AIS form: allowed, the weights are then approximate (smc.md §2).
            Ok(None)
        }
        other => Ok(other),
    }
}

/// Runs SMC over every level of `schedule` and returns `count` samples: from one population of
/// `count` particles, or, with `opts.group_size = Some(P)`, from `count` groups of P particles
/// (one sample each). `callback` hears every level.
pub fn sample_smc(
    target: &dyn Target,
    schedule: &NoiseSchedule,
    count: usize,
    opts: &SmcOptions,
    device: &Device,
    mut callback: impl FnMut(&Progress),
) -> Result<SmcRun, SampleError> {
    let fkc = check(target, count, opts)?;
    let group_size = opts.group_size.unwrap_or(count);
    // Every per-particle tensor below has n rows, group after group.
    let n = opts.group_size.map_or(count, |p| p * count);
    // FKC weights are derived for the reverse SDE, whose Euler step has variance β_k (fixed
    // large); exact weights hold for any proposal variance.
    let proposal_variance = match fkc {
        Some(_) => Variance::FixedLarge,
        None => opts.kernel.variance,
    };
    let t_total = schedule.len();
    let dim = target.data_dim();
    let seed = opts.kernel.seed;
    let mut init_rng = stream(seed, "init");
    let mut move_rng = stream(seed, "smc-proposal");
    let mut mcmc_rng = stream(seed, "mcmc");
    let mut resample_rng = stream(seed, "smc-resample");
    let mut nfe = 0usize;
    let top = start_level(schedule);
    let precision = match target.noise_precision() {
        c if c > 0.0 && c.is_finite() => c,
        _ => 1.0,
    };
    let evaluate = |x: Tensor<2>, level: usize| -> (Evaluation, Option<Vec<ScoreTerm>>) {
        match fkc {
            Some(_) => {
                let (e, terms) = target
                    .evaluate_terms(x, level)
                    .expect("checked: FKC targets are products");
                (e, Some(terms))
            }
            None => (target.evaluate(x, level), None),
        }
    };
    let log_density = |e: &Evaluation| to_f64(e.log_density.clone().expect("energy target"));

    // Start: x ~ p_init = N(0, I/c), log w = ℓ_top(x) − log p_init(x) (FKC: p_init ≈ π_top,
    // w = 1).
    let x = randn(&mut init_rng, [n, dim], device).div_scalar(precision.sqrt());
    let (eval, terms) = evaluate(x.clone(), top);
    nfe += 1;
    let log_w = match fkc {
        Some(_) => vec![0.0; n],
        None => {
            let zero = Tensor::<2>::zeros([n, dim], device);
            let log_p0 = log_normal(x.clone(), zero, 1.0 / precision);
            log_density(&eval)
                .iter()
                .zip(log_p0)
                .map(|(l, p)| l - p)
                .collect()
        }
    };
    let mut p = Particles {
        x,
        eval,
        terms,
        book: GroupedBook::new(log_w, group_size),
        lineage: (0..n).collect(),
        last_resampled: vec![false; n / group_size],
    };
    let log_z_start = p.book.log_z();
    let mut levels = Vec::new();
    let mut kernel_levels = Vec::new();
    let mut clamped_any = false;
    let mut tuned: [Option<f64>; 2] = [None, None];

    // Reweights by `log_g`, updates log Ẑ, resamples the groups whose ESS is low; returns the
    // record.
    let mut reweight = |p: &mut Particles, mut log_g: Vec<f64>, level: i64| {
        let mut clamped = 0;
        if let Some(l) = opts.temper {
            log_g.iter_mut().for_each(|g| *g *= l);
        }
        if let Some(c) = opts.clamp_log_weight_increment {
            for g in &mut log_g {
                if g.abs() > c {
                    *g = g.clamp(-c, c);
                    clamped += 1;
                }
            }
        }
        let log_z_before = p.book.log_z();
        let inc = match p.book.reweight(&log_g)[..] {
            [one] => one,
            _ => p.book.log_z() - log_z_before,
        };
        let ess = p.book.ess_fractions();
        let which: Vec<bool> = ess.iter().map(|&e| e < opts.ess_threshold).collect();
        p.resample(&which, &mut resample_rng, device);
        p.last_resampled = which.clone();
        let (group_ess_min, group_ess_median) = min_median(&ess);
        let ancestors: Vec<f64> = p.group_ancestors().iter().map(|&a| a as f64).collect();
        let (group_ancestors_min, group_ancestors_median) = min_median(&ancestors);
        let groups_resampled = which.iter().filter(|&&w| w).count();
        SmcLevel {
            level,
            ess: ess.iter().sum::<f64>() / ess.len() as f64,
            resampled: groups_resampled > 0,
            distinct_ancestors: p.distinct_ancestors(),
            group_ess_min,
            group_ess_median,
            groups_resampled,
            group_ancestors_min: group_ancestors_min as usize,
            group_ancestors_median,
            acceptance: None,
            nfe: 0,
            log_z_increment: inc,
            log_z: p.book.log_z(),
            clamped,
        }
    };

    for k in (0..top).rev() {
        // Move k+1 → k.
        let from = k + 1;
        let mut acceptance = None;
        let mut step_used = None;
        let mut tune_nfe = 0;
        let log_g: Vec<f64> = if opts.proposal == SamplerKind::Ancestral {
            let eps = p.eval.score.clone().mul_scalar(-schedule.sigma(from));
            let mean = reverse_mean(p.x.clone(), eps, from, schedule, opts.clip_x0);
            let var = reverse_variance(from, schedule, proposal_variance);
            let noise = randn(&mut move_rng, [n, dim], device).mul_scalar(var.sqrt());
            let x_new = mean.clone() + noise;
            let (eval_new, terms_new) = evaluate(x_new.clone(), k);
            nfe += 1;
            let g = match fkc {
                Some(average) => {
                    let beta = schedule.beta(from);
                    let start = fkc_rate(p.terms.as_deref().expect("FKC terms"));
                    if average {
                        let end = fkc_rate(terms_new.as_deref().expect("FKC terms"));
                        start
                            .iter()
                            .zip(end)
                            .map(|(a, b)| 0.25 * beta * (a + b))
                            .collect()
                    } else {
                        start.iter().map(|a| 0.5 * beta * a).collect()
                    }
                }
                None => {
                    let l_new = log_density(&eval_new);
                    let l_old = log_density(&p.eval);
                    let back = log_normal(
                        p.x.clone(),
                        x_new.clone().mul_scalar(schedule.alpha(from).sqrt()),
                        schedule.beta(from),
                    );
                    let fwd = log_normal(x_new.clone(), mean, var);
                    (0..n)
                        .map(|i| l_new[i] + back[i] - l_old[i] - fwd[i])
                        .collect()
                }
            };
            p.x = x_new;
            p.eval = eval_new;
            p.terms = terms_new;
            g
        } else {
            // AIS form: weight at the point before the move, then K kernel steps targeting π_k.
            let (eval_k, _) = evaluate(p.x.clone(), k);
            nfe += 1;
            let g: Vec<f64> = log_density(&eval_k)
                .iter()
                .zip(log_density(&p.eval))
                .map(|(a, b)| a - b)
                .collect();
            let mut kernel = opts.kernel.clone();
            kernel.kernel = opts.proposal;
            let moved = run_kernel(
                target,
                schedule,
                &kernel,
                p.x.clone(),
                eval_k,
                k,
                &mut tuned[0],
                &mut mcmc_rng,
            );
            nfe += moved.nfe;
            tune_nfe += moved.tune_nfe;
            (p.x, p.eval, acceptance) = (moved.x, moved.eval, moved.acceptance);
            step_used = Some(moved.step);
            g
        };
        let mut record = reweight(&mut p, log_g, k as i64);
        clamped_any |= record.clamped > 0;
        // `window` bounds rejuvenation as it bounds annealed MCMC's moves.
        let in_window = (opts.kernel.window.0..=opts.kernel.window.1).contains(&k);
        if let Some(r) = opts.rejuvenate.as_ref().filter(|_| in_window) {
            let mut kernel = opts.kernel.clone();
            kernel.kernel = r.kind;
            kernel.steps_per_level = r.steps;
            kernel.step_size = r.step_size.clone();
            let moved = run_kernel(
                target,
                schedule,
                &kernel,
                p.x.clone(),
                p.eval.clone(),
                k,
                &mut tuned[1],
                &mut mcmc_rng,
            );
            nfe += moved.nfe;
            tune_nfe += moved.tune_nfe;
            (p.x, p.eval, acceptance) = (moved.x, moved.eval, moved.acceptance);
            step_used = Some(moved.step);
        }
        record.acceptance = acceptance;
        record.nfe = nfe;
        if let Some(step) = step_used {
            kernel_levels.push(crate::annealed::LevelDiagnostics {
                level: k,
                acceptance,
                step_size: step,
                mass: opts.kernel.mass.at(schedule, k),
                score_norm: crate::target::mean_row_norm(p.eval.score.clone()),
                term_score_norms: Vec::new(),
                nfe,
                tune_nfe,
            });
        }
        callback(&Progress {
            acceptance,
            ess: Some(record.ess),
            ..Progress::plain(k, t_total - 1 - k, t_total - 1, nfe)
        });
        levels.push(record);
    }

    // Level 0 → data: a weighted move where the data law is known, else the Tweedie mean.
    let eps = p.eval.score.clone().mul_scalar(-schedule.sigma(0));
    let mean = reverse_mean(p.x.clone(), eps, 0, schedule, opts.clip_x0);
    let data_level = fkc.is_none() && target.data_log_density(mean.clone()).is_some();
    if data_level {
        let var = schedule.beta(0);
        let x_new = mean.clone() + randn(&mut move_rng, [n, dim], device).mul_scalar(var.sqrt());
        let l_new = to_f64(target.data_log_density(x_new.clone()).expect("checked"));
        nfe += 1;
        let l_old = log_density(&p.eval);
        let back = log_normal(
            p.x.clone(),
            x_new.clone().mul_scalar(schedule.alpha(0).sqrt()),
            schedule.beta(0),
        );
        let fwd = log_normal(x_new.clone(), mean, var);
        let g = (0..n)
            .map(|i| l_new[i] + back[i] - l_old[i] - fwd[i])
            .collect();
        p.x = x_new;
        // The data level has no score; keep the level-0 evaluation for bookkeeping only.
        let mut record = reweight(&mut p, g, -1);
        clamped_any |= record.clamped > 0;
        if let Some(r) = &opts.rejuvenate {
            // Rejuvenation at the data law: resample, then random-walk Metropolis steps (the
            // data density may be discontinuous, so no gradients), which spread the copies the
            // resampling made. π_data-invariant, so the weights stay untouched. The walk starts
            // at σ₀, far below a toy's scale (acceptance ≈ 0.96 left resampled copies within
            // ~0.1 of each other), and widens while it accepts more than half of its moves
            // (narrows below a fifth): the step depends only on the population's past
            // acceptance, as SMC samplers' adaptive kernels do.
            let not_yet: Vec<bool> = p.last_resampled.iter().map(|&r| !r).collect();
            p.resample(&not_yet, &mut resample_rng, device);
            let density = |x: Tensor<2>| target.data_log_density(x).expect("checked");
            let mut lx = density(p.x.clone());
            let mut accepted = Vec::new();
            let mut step = schedule.sigma(0);
            for _ in 0..DATA_RWM_STEPS_PER_STEP * r.steps {
                let (x, l, acc) =
                    crate::mcmc::rwm_step(&density, p.x.clone(), lx, step, &mut mcmc_rng);
                p.x = x;
                lx = l;
                let rate = acc.mean().into_scalar::<f64>();
                accepted.push(rate);
                if rate > 0.5 {
                    step *= 1.5;
                } else if rate < 0.2 {
                    step /= 1.5;
                }
            }
            nfe += accepted.len() + 1;
            record.acceptance = Some(accepted.iter().sum::<f64>() / accepted.len() as f64);
        }
        record.nfe = nfe;
        levels.push(record);
    } else {
        p.x = mean;
    }
    let final_log_weights = p.book.normalized_log();
    let final_ess = {
        let e = p.book.ess_fractions();
        e.iter().sum::<f64>() / e.len() as f64
    };
    let log_z = p.book.log_z();
    match opts.group_size {
        None => p.resample(&[true], &mut resample_rng, device),
        Some(_) => p.draw_one_per_group(&mut resample_rng, device),
    }
    Ok(SmcRun {
        samples: p.x,
        diagnostics: SmcDiagnostics {
            levels,
            log_z,
            log_z_start,
            start_level: top,
            init_precision: precision,
            final_log_weights,
            final_ess,
            ancestors: p.lineage,
            group_size: opts.group_size,
            particles: n,
            temper: opts.temper,
            data_level,
            weights: match fkc {
                None => "exact".into(),
                Some(false) => "fkc-start".into(),
                Some(true) => "fkc-average".into(),
            },
            clamped: clamped_any,
            proposal_variance,
        },
        kernel_levels,
        nfe,
    })
}

/// What [`run_kernel`] did.
struct KernelRun {
    x: Tensor<2>,
    eval: Evaluation,
    /// Mean acceptance of the MH kernels.
    acceptance: Option<f64>,
    /// The step used (after the search, if any).
    step: f64,
    /// Evaluations of the kernel steps (what NFE counts, as in annealed MCMC).
    nfe: usize,
    /// Evaluations of the step-size search (reported apart, as in annealed MCMC).
    tune_nfe: usize,
}

/// `kernel.steps_per_level` steps of `kernel.kernel` at `level` from (x, eval), with the
/// per-level step search when asked for.
#[allow(clippy::too_many_arguments)]
fn run_kernel(
    target: &dyn Target,
    schedule: &NoiseSchedule,
    kernel: &AnnealedOptions,
    mut x: Tensor<2>,
    mut eval: Evaluation,
    level: usize,
    tuned: &mut Option<f64>,
    rng: &mut rand::rngs::StdRng,
) -> KernelRun {
    let [n, dim] = x.dims();
    // Exact π_k-invariance, which the weights rely on: with partial momentum refresh, HMC must
    // negate the momentum on rejection (Horowitz's generalized HMC); without, it is biased.
    let flipped;
    let kernel = if kernel.kernel == SamplerKind::Hmc && !kernel.flip_on_reject {
        flipped = AnnealedOptions {
            flip_on_reject: true,
            ..kernel.clone()
        };
        &flipped
    } else {
        kernel
    };
    let mass = kernel.mass.at(schedule, level);
    let mut v = randn(rng, [n, dim], &x.device()).mul_scalar(mass);
    let mut step = kernel.step_size.at(schedule, level);
    let (mut nfe, mut tune_nfe) = (0, 0);
    if let (Some(tune), true) = (&kernel.tune, kernel.kernel.is_metropolis()) {
        let start = tuned.unwrap_or(step);
        let (s, _, cost) = tune_step(target, kernel, tune, &x, &v, &eval, level, start, mass, rng);
        step = s;
        *tuned = Some(s);
        tune_nfe = cost;
    }
    let mut acc = Vec::new();
    for _ in 0..kernel.steps_per_level {
        let out = apply_kernel(target, kernel, x, v.clone(), eval, level, step, mass, rng);
        nfe += out.nfe;
        if let Some(a) = out.accepted {
            acc.push(a.mean().into_scalar::<f64>());
        }
        x = out.x;
        eval = out.eval;
        if let Some(m) = out.momentum {
            v = m;
        }
    }
    let acceptance = (!acc.is_empty()).then(|| acc.iter().sum::<f64>() / acc.len() as f64);
    KernelRun {
        x,
        eval,
        acceptance,
        step,
        nfe,
        tune_nfe,
    }
}
