//! Sampling configuration in TOML: which sampler, its hyper-parameters, and the composition to
//! sample, as an expression tree over named models.
//!
//! ```toml
//! count = 2000
//! seed = 0
//! [sampler]
//! kind = "hmc"                  # ancestral | ddim | ula | mala | uhmc | hmc
//! mode = "pure"                 # pure | reverse-then-next | reverse-then-same
//! steps_per_level = 10
//! step_size = { law = "constant", value = 0.03 }
//! [models]                      # name → run directory (config.toml + ema.safetensors)
//! ring = "runs/ring"
//! bar = "runs/bar"
//! [composition]
//! op = "product"
//! weights = [1.0, 1.0]
//! terms = [{ op = "model", model = "ring" }, { op = "model", model = "bar" }]
//! ```

use crate::ancestral::Variance;
use crate::annealed::{AnnealMode, AnnealedOptions, TuneOptions};
use crate::smc::{Rejuvenation, SmcOptions, SmcWeights};
use crate::step_size::LevelSchedule;
use ebdiff_core::NoiseSchedule;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    Ancestral,
    Ddim,
    Ula,
    Mala,
    Uhmc,
    Hmc,
    /// Sequential Monte Carlo over the level path (`proposal`, `rejuvenate`, `ess_threshold`).
    Smc,
}

impl SamplerKind {
    /// Every kind, in the order the CLI lists them.
    pub const ALL: [SamplerKind; 7] = [
        SamplerKind::Ancestral,
        SamplerKind::Ddim,
        SamplerKind::Ula,
        SamplerKind::Mala,
        SamplerKind::Uhmc,
        SamplerKind::Hmc,
        SamplerKind::Smc,
    ];

    /// A Markov kernel that can run at a fixed level (ULA, MALA, U-HMC, HMC).
    pub fn is_mcmc(self) -> bool {
        matches!(
            self,
            SamplerKind::Ula | SamplerKind::Mala | SamplerKind::Uhmc | SamplerKind::Hmc
        )
    }

    /// An MCMC kernel with a Metropolis–Hastings correction (MALA, HMC).
    pub fn is_metropolis(self) -> bool {
        matches!(self, SamplerKind::Mala | SamplerKind::Hmc)
    }

    /// A kernel with momentum (U-HMC, HMC): its step is a leapfrog ε, not a Langevin η.
    pub fn is_hmc(self) -> bool {
        matches!(self, SamplerKind::Uhmc | SamplerKind::Hmc)
    }

    /// Reverse diffusion without MCMC (ancestral, DDIM).
    pub fn is_reverse(self) -> bool {
        matches!(self, SamplerKind::Ancestral | SamplerKind::Ddim)
    }

    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Ancestral => "ancestral",
            SamplerKind::Ddim => "ddim",
            SamplerKind::Ula => "ula",
            SamplerKind::Mala => "mala",
            SamplerKind::Uhmc => "uhmc",
            SamplerKind::Hmc => "hmc",
            SamplerKind::Smc => "smc",
        }
    }
}

impl std::str::FromStr for SamplerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ebdiff_core::parse_toml::<Wrap>(&format!("k = \"{s}\""), "--sampler")
            .map(|w| w.k)
            .map_err(|_| {
                let names: Vec<&str> = SamplerKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown sampler `{s}`; allowed: {}", names.join(", "))
            })
    }
}

#[derive(Deserialize)]
struct Wrap {
    k: SamplerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneConfig {
    pub band: [f64; 2],
    #[serde(default = "default_probe_steps")]
    pub probe_steps: usize,
    #[serde(default = "default_max_probes")]
    pub max_probes: usize,
}

fn default_probe_steps() -> usize {
    2
}
fn default_max_probes() -> usize {
    12
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    pub kind: SamplerKind,
    /// Level traversal of the MCMC samplers.
    #[serde(default = "default_mode")]
    pub mode: AnnealMode,
    /// K: MCMC steps per level.
    #[serde(default = "default_k")]
    pub steps_per_level: usize,
    /// η (ULA/MALA) or ε (HMC) per level. Default: the paper's 2-D constants (0.001 / 0.03).
    #[serde(default)]
    pub step_size: Option<LevelSchedule>,
    /// Momentum scale m per level (HMC). Default 1.
    #[serde(default)]
    pub mass: Option<LevelSchedule>,
    #[serde(default = "default_leapfrog")]
    pub leapfrog: usize,
    #[serde(default = "default_damping")]
    pub damping: f64,
    #[serde(default)]
    pub flip_on_reject: bool,
    /// Trapezoid points of the score line integral for score-only MALA.
    #[serde(default = "default_line_points")]
    pub line_points: usize,
    /// Extra points per leapfrog segment for score-only HMC.
    #[serde(default)]
    pub extra_points: usize,
    /// Inclusive range of levels where MCMC runs: annealed MCMC's moves, SMC's rejuvenation
    /// (default: all).
    #[serde(default)]
    pub window: Option<[usize; 2]>,
    /// Reverse-step variance for ancestral and the reverse modes.
    #[serde(default)]
    pub variance: Variance,
    /// Clip x̂₀ to [−c, c] in reverse steps (images: 1.0).
    #[serde(default)]
    pub clip_x0: Option<f64>,
    /// DDIM stochasticity η.
    #[serde(default)]
    pub ddim_eta: f64,
    /// Step through this many evenly spaced levels of the models' schedule (default: all). Every
    /// sampler: reverse diffusion, MCMC and SMC then see the respaced schedule, and `window`,
    /// step-size tables and β-laws refer to its levels and β.
    #[serde(default)]
    pub respace: Option<usize>,
    /// Evaluate the target at most this many rows at a time (default: all at once). Same values;
    /// a CPU runs image networks faster per image on batches of ~100 than of ~1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch: Option<usize>,
    /// Per-level step-size search to an acceptance band (MALA/HMC).
    #[serde(default)]
    pub tune: Option<TuneConfig>,
    /// Fit the step law a·β_k^b before sampling, from a pilot run whose per-level search lands
    /// in `band`; the fitted law replaces `step_size` (MALA/HMC, or SMC's MALA/HMC kernel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit_step_law: Option<FitStepLaw>,
    /// SMC: how particles move from level k+1 to k (ancestral, ula, mala, uhmc, hmc; default
    /// ancestral).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<SamplerKind>,
    /// SMC: π_k-invariant MCMC after each level's weighting and resampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejuvenate: Option<RejuvenateConfig>,
    /// SMC: resample when ESS/N < this (default 0.5; 1 = every level, 0 = never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ess_threshold: Option<f64>,
    /// SMC: clamp each incremental log-weight to [−c, c] (biased; recorded in diagnostics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clamp_log_weight_increment: Option<f64>,
    /// SMC: `auto` (exact with energies, FKC without), `exact`, `fkc-start`, `fkc-average`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<SmcWeights>,
    /// SMC: P particles behind each of the `count` samples, weighted and resampled only within
    /// their group, the sample drawn by the group's final weights (default: one population of
    /// `count` particles returning `count` draws).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub particles_per_sample: Option<usize>,
    /// SMC: multiply each log-weight increment by λ ∈ (0, 1] (biased; recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temper: Option<f64>,
}

/// `fit_step_law = { band = [0.65, 0.75], pilot_chains = 16 }`: a pilot of the same kernel over
/// the same window, with the per-level search of `tune`, then a least-squares fit of log step
/// against log β over the pilot's levels (Sjöberg et al.'s a·β^b laws, tuned to our models).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitStepLaw {
    pub band: [f64; 2],
    #[serde(default = "default_pilot_chains")]
    pub pilot_chains: usize,
    #[serde(default = "default_probe_steps")]
    pub probe_steps: usize,
    #[serde(default = "default_max_probes")]
    pub max_probes: usize,
}

fn default_pilot_chains() -> usize {
    16
}

/// `rejuvenate = { kind = "hmc", steps = 2 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejuvenateConfig {
    pub kind: SamplerKind,
    pub steps: usize,
}

fn default_mode() -> AnnealMode {
    AnnealMode::Pure
}
fn default_k() -> usize {
    10
}
fn default_leapfrog() -> usize {
    3
}
fn default_damping() -> f64 {
    0.5
}
fn default_line_points() -> usize {
    3
}

impl SamplerConfig {
    pub fn new(kind: SamplerKind) -> Self {
        ebdiff_core::parse_toml(&format!("kind = \"{}\"", kind.name()), "default sampler")
            .expect("defaults parse")
    }

    /// Checks ranges; errors are (key below [sampler], message).
    pub fn validate(&self, levels: usize) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
        if let Some(r) = self.respace
            && !(1..=levels).contains(&r)
        {
            return err(
                "respace",
                format!("must be between 1 and the schedule's {levels} levels, got {r}"),
            );
        }
        if self.max_batch == Some(0) {
            return err("max_batch", "must be ≥ 1 (rows per evaluation)".into());
        }
        // Level-indexed keys refer to the levels the sampler steps through.
        let levels = self.respace.unwrap_or(levels);
        if let Some(s) = &self.step_size {
            s.validate(levels)
                .map_err(|m| ("step_size".to_string(), m))?;
        }
        if let Some(s) = &self.mass {
            s.validate(levels).map_err(|m| ("mass".to_string(), m))?;
        }
        if !(0.0..=1.0).contains(&self.damping) {
            return err(
                "damping",
                format!("must be in [0, 1], got {}", self.damping),
            );
        }
        if self.leapfrog == 0 {
            return err("leapfrog", "must be ≥ 1".into());
        }
        if self.line_points < 2 {
            return err("line_points", "must be ≥ 2 (the two end points)".into());
        }
        if let Some([lo, hi]) = self.window
            && (lo > hi || hi >= levels)
        {
            return err(
                "window",
                format!("need lo ≤ hi < {levels}, got [{lo}, {hi}]"),
            );
        }
        if let Some(c) = self.clip_x0
            && !(c > 0.0 && c.is_finite())
        {
            return err("clip_x0", format!("must be positive, got {c}"));
        }
        if !(0.0..=1.0).contains(&self.ddim_eta) {
            return err(
                "ddim_eta",
                format!("must be in [0, 1], got {}", self.ddim_eta),
            );
        }
        let smc_key = [
            ("proposal", self.proposal.is_some()),
            ("rejuvenate", self.rejuvenate.is_some()),
            ("ess_threshold", self.ess_threshold.is_some()),
            (
                "clamp_log_weight_increment",
                self.clamp_log_weight_increment.is_some(),
            ),
            ("weights", self.weights.is_some()),
            ("particles_per_sample", self.particles_per_sample.is_some()),
            ("temper", self.temper.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set);
        if let (Some((key, _)), false) = (smc_key, self.kind == SamplerKind::Smc) {
            return err(
                key,
                format!(
                    "is an SMC setting, but kind = \"{}\" (set kind = \"smc\" or remove it)",
                    self.kind.name()
                ),
            );
        }
        if self.particles_per_sample == Some(0) {
            return err(
                "particles_per_sample",
                "must be ≥ 1 (particles behind each returned sample)".into(),
            );
        }
        if let Some(l) = self.temper
            && !(l > 0.0 && l <= 1.0)
        {
            return err(
                "temper",
                format!("must be in (0, 1] (the factor on each log-weight increment), got {l}"),
            );
        }
        if let Some(t) = self.ess_threshold
            && !(0.0..=1.0).contains(&t)
        {
            return err("ess_threshold", format!("must be in [0, 1], got {t}"));
        }
        if let Some(c) = self.clamp_log_weight_increment
            && !(c > 0.0 && c.is_finite())
        {
            return err(
                "clamp_log_weight_increment",
                format!("must be positive, got {c}"),
            );
        }
        if let Some(p) = self.proposal
            && !(p == SamplerKind::Ancestral || p.is_mcmc())
        {
            return err(
                "proposal",
                format!(
                    "`{}` cannot move SMC particles; allowed: ancestral, ula, mala, uhmc, hmc",
                    p.name()
                ),
            );
        }
        if let Some(r) = &self.rejuvenate {
            if !r.kind.is_metropolis() {
                return err(
                    "rejuvenate.kind",
                    format!(
                        "`{}` is not π_k-invariant; rejuvenation needs mala or hmc",
                        r.kind.name()
                    ),
                );
            }
            if r.steps == 0 {
                return err("rejuvenate.steps", "must be ≥ 1".to_string());
            }
        }
        if let Some(f) = &self.fit_step_law {
            if !(0.0 < f.band[0] && f.band[0] < f.band[1] && f.band[1] <= 1.0) {
                return err(
                    "fit_step_law.band",
                    format!("need 0 < lo < hi ≤ 1, got {:?}", f.band),
                );
            }
            if f.pilot_chains == 0 || f.probe_steps == 0 || f.max_probes == 0 {
                return err(
                    "fit_step_law",
                    "pilot_chains, probe_steps and max_probes must be ≥ 1".to_string(),
                );
            }
            if self.fit_kernel().is_none() {
                return err(
                    "fit_step_law",
                    format!(
                        "needs a Metropolis kernel whose acceptance it can tune: kind = \"mala\" or \"hmc\", or SMC with such a proposal or rejuvenation (kind = \"{}\")",
                        self.kind.name()
                    ),
                );
            }
        }
        if let Some(t) = &self.tune {
            if !(0.0 < t.band[0] && t.band[0] < t.band[1] && t.band[1] <= 1.0) {
                return err(
                    "tune.band",
                    format!("need 0 < lo < hi ≤ 1, got {:?}", t.band),
                );
            }
            if t.probe_steps == 0 || t.max_probes == 0 {
                return err("tune", "probe_steps and max_probes must be ≥ 1".to_string());
            }
        }
        Ok(())
    }

    /// The Metropolis kernel `fit_step_law` tunes, with its steps per level: the sampler's own
    /// (MALA, HMC), or SMC's rejuvenation, else its MCMC proposal.
    pub fn fit_kernel(&self) -> Option<(SamplerKind, usize)> {
        let k = match self.kind {
            SamplerKind::Smc => self
                .rejuvenate
                .map(|r| (r.kind, r.steps))
                .or(self.proposal.map(|p| (p, self.steps_per_level))),
            kind => Some((kind, self.steps_per_level)),
        };
        k.filter(|(kind, steps)| kind.is_metropolis() && *steps > 0)
    }

    /// Options of the SMC sampler.
    pub fn smc_options(&self, levels: usize, seed: u64) -> SmcOptions {
        let proposal = self.proposal.unwrap_or(SamplerKind::Ancestral);
        // Unless given, each kernel gets the paper's step for its kind (η 0.001, ε 0.03).
        let step_for = |kind| match &self.step_size {
            Some(s) => s.clone(),
            None => AnnealedOptions::paper_2d(kind, levels).step_size,
        };
        let mut kernel = self.annealed_options(levels, seed);
        kernel.kernel = proposal;
        kernel.step_size = step_for(proposal);
        SmcOptions {
            proposal,
            rejuvenate: self.rejuvenate.map(|r| Rejuvenation {
                kind: r.kind,
                steps: r.steps,
                step_size: step_for(r.kind),
            }),
            ess_threshold: self.ess_threshold.unwrap_or(0.5),
            clamp_log_weight_increment: self.clamp_log_weight_increment,
            temper: self.temper,
            group_size: self.particles_per_sample,
            weights: self.weights.unwrap_or_default(),
            clip_x0: self.clip_x0,
            kernel,
        }
    }

    /// The levels of `schedule` the samplers step through: all, or `respace` evenly spaced ones.
    pub fn sampled_levels(&self, schedule: &NoiseSchedule) -> Vec<usize> {
        match self.respace {
            Some(k) if k < schedule.len() => schedule.evenly_spaced_levels(k),
            _ => (0..schedule.len()).collect(),
        }
    }

    /// The schedule every sampler steps through: `schedule` restricted to
    /// [`Self::sampled_levels`] (models are still fed their original levels,
    /// `NoiseSchedule::source_level`). The one place respacing happens.
    pub fn sampling_schedule(&self, schedule: &NoiseSchedule) -> Result<NoiseSchedule, String> {
        match self.respace {
            Some(k) if k < schedule.len() => schedule.respaced(&self.sampled_levels(schedule)),
            _ => Ok(schedule.clone()),
        }
    }

    /// Options of the annealed driver (meaningful for the MCMC kinds).
    pub fn annealed_options(&self, levels: usize, seed: u64) -> AnnealedOptions {
        let mut o = AnnealedOptions::paper_2d(self.kind, levels);
        o.mode = self.mode;
        o.steps_per_level = self.steps_per_level;
        if let Some(s) = &self.step_size {
            o.step_size = s.clone();
        }
        if let Some(m) = &self.mass {
            o.mass = m.clone();
        }
        o.leapfrog = self.leapfrog;
        o.damping = self.damping;
        o.flip_on_reject = self.flip_on_reject;
        o.line_points = self.line_points;
        o.extra_points = self.extra_points;
        if let Some([lo, hi]) = self.window {
            o.window = (lo, hi);
        }
        o.variance = self.variance;
        o.clip_x0 = self.clip_x0;
        o.tune = self.tune.map(|t| TuneOptions {
            band: (t.band[0], t.band[1]),
            probe_steps: t.probe_steps,
            max_probes: t.max_probes,
        });
        o.seed = seed;
        o
    }
}

/// An expression tree over named models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CompositionSpec {
    /// A model; `model` names an entry of `[models]` (default: the `--checkpoint` model).
    Model {
        #[serde(default)]
        model: Option<String>,
        #[serde(default)]
        label: Option<usize>,
    },
    /// A noise-conditioned classifier's log p(`label` | x, t); `classifier` names an entry of
    /// `[classifiers]` (default: the `--classifier` run). Classifier guidance with scale λ is
    /// `{ op = "product", weights = [1, λ], terms = [model, classifier] }`.
    Classifier {
        #[serde(default)]
        classifier: Option<String>,
        label: usize,
    },
    /// Σ wᵢ fᵢ.
    Product {
        weights: Vec<f64>,
        terms: Vec<CompositionSpec>,
    },
    /// (1 + α) f_keep − α f_remove.
    Negation {
        alpha: f64,
        keep: Box<CompositionSpec>,
        remove: Box<CompositionSpec>,
    },
    /// f_∅ + w Σ (f_y − f_∅).
    Guided {
        weight: f64,
        uncond: Box<CompositionSpec>,
        conds: Vec<CompositionSpec>,
    },
    /// (1/β) LSE(log πᵢ + β (fᵢ − log Zᵢ(k))), Zᵢ(k) estimated per level unless
    /// `normalizers = "equal"`.
    Mixture {
        weights: Vec<f64>,
        #[serde(default = "default_sharpness")]
        sharpness: f64,
        components: Vec<CompositionSpec>,
        /// `estimate` (default) or `equal` (every component taken as normalized: the paper's
        /// mixture, right only when the components' normalizers agree).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        normalizers: Option<crate::normalizers::Normalizers>,
    },
}

fn default_sharpness() -> f64 {
    1.0
}

/// Name of the model given with `--checkpoint`.
pub const DEFAULT_MODEL: &str = "default";

impl CompositionSpec {
    /// Names of the classifiers the tree uses.
    pub fn classifier_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit(&mut |node| {
            if let CompositionSpec::Classifier { classifier, .. } = node {
                out.push(classifier.clone().unwrap_or_else(|| DEFAULT_MODEL.into()));
            }
        });
        out.sort();
        out.dedup();
        out
    }

    /// Calls `f` on every node, parents before children.
    pub fn visit(&self, f: &mut impl FnMut(&CompositionSpec)) {
        f(self);
        match self {
            CompositionSpec::Model { .. } | CompositionSpec::Classifier { .. } => {}
            CompositionSpec::Product { terms, .. } => terms.iter().for_each(|t| t.visit(f)),
            CompositionSpec::Negation { keep, remove, .. } => {
                keep.visit(f);
                remove.visit(f);
            }
            CompositionSpec::Guided { uncond, conds, .. } => {
                uncond.visit(f);
                conds.iter().for_each(|t| t.visit(f));
            }
            CompositionSpec::Mixture { components, .. } => {
                components.iter().for_each(|t| t.visit(f))
            }
        }
    }

    /// Names of the models the tree uses.
    pub fn model_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit(&mut |node| {
            if let CompositionSpec::Model { model, .. } = node {
                out.push(model.clone().unwrap_or_else(|| DEFAULT_MODEL.into()));
            }
        });
        out.sort();
        out.dedup();
        out
    }
}

/// Where a named model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelSource {
    /// A run directory written by `cargo xtask train` (config.toml + ema.safetensors).
    Run(String),
    /// The exact diffused law of a 2-D toy under a noise schedule.
    Exact(crate::oracle::ExactModel),
}

impl From<&str> for ModelSource {
    fn from(dir: &str) -> Self {
        ModelSource::Run(dir.to_string())
    }
}

/// A whole sampling file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    #[serde(default = "default_count")]
    pub count: usize,
    #[serde(default)]
    pub seed: u64,
    pub sampler: SamplerConfig,
    /// Model name → run directory, or `{ exact = { kind = "ring", … }, diffusion = … }` for the
    /// exact diffused law of a 2-D toy (an oracle component).
    #[serde(default)]
    pub models: BTreeMap<String, ModelSource>,
    /// Classifier name → `cargo xtask train-classifier` output directory.
    #[serde(default)]
    pub classifiers: BTreeMap<String, String>,
    /// What to sample (default: the `--checkpoint` model alone).
    #[serde(default)]
    pub composition: Option<CompositionSpec>,
}

fn default_count() -> usize {
    2000
}

impl SamplingConfig {
    /// A config sampling the model named "default" alone with `sampler`.
    pub fn new(sampler: SamplerConfig, count: usize, seed: u64) -> Self {
        SamplingConfig {
            count,
            seed,
            sampler,
            models: BTreeMap::new(),
            classifiers: BTreeMap::new(),
            composition: None,
        }
    }

    /// The composition to sample (default: the model named "default" alone).
    pub fn composition_spec(&self) -> CompositionSpec {
        self.composition.clone().unwrap_or(CompositionSpec::Model {
            model: None,
            label: None,
        })
    }

    /// Checks every numeric key against a schedule of `levels` levels; the error names the key.
    pub fn validate(&self, levels: usize) -> Result<(), crate::SampleError> {
        if self.count == 0 {
            return Err(crate::SampleError::config(
                "count",
                "must be ≥ 1 (the number of samples to draw)",
            ));
        }
        self.sampler
            .validate(levels)
            .map_err(|(k, m)| crate::SampleError::config(format!("sampler.{k}"), m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_nested_composition_and_rejects_bad_keys() {
        let text = r#"
count = 100
[sampler]
kind = "hmc"
step_size = { law = "beta-scaled", c = 0.1 }
tune = { band = [0.6, 0.8] }
[models]
ring = "runs/ring"
bar = "runs/bar"
[composition]
op = "product"
weights = [1.0, 1.0]
terms = [
  { op = "model", model = "ring" },
  { op = "mixture", weights = [0.5, 0.5], components = [{ op = "model", model = "bar" }, { op = "model" }] },
]
"#;
        let cfg: SamplingConfig = ebdiff_core::parse_toml(text, "s.toml").unwrap();
        assert_eq!(
            cfg.composition.unwrap().model_names(),
            vec!["bar", "default", "ring"]
        );
        assert!(cfg.sampler.validate(100).is_ok());
        let bad = text.replace("op = \"mixture\"", "op = \"mixtur\"");
        let msg = ebdiff_core::parse_toml::<SamplingConfig>(&bad, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("mixtur") && msg.contains("product"), "{msg}");
        let bad = text.replace("kind = \"hmc\"", "kind = \"hmc\"\nleap_frog = 3");
        let msg = ebdiff_core::parse_toml::<SamplingConfig>(&bad, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("sampler") && msg.contains("leap_frog"),
            "{msg}"
        );
        let mut s = SamplerConfig::new(SamplerKind::Mala);
        s.window = Some([10, 200]);
        assert_eq!(s.validate(100).unwrap_err().0, "window");
        assert_eq!("uhmc".parse::<SamplerKind>().unwrap(), SamplerKind::Uhmc);
        assert!(
            "nuts"
                .parse::<SamplerKind>()
                .unwrap_err()
                .contains("allowed")
        );
    }
}

#[cfg(test)]
mod numeric_keys {
    use super::*;
    use crate::analytic::{DiffusedTarget, IsotropicGmm};

    /// Every numeric key with a bad value is refused by `sample()` with an error naming the key,
    /// never a panic inside Burn (e.g. `count = 0` used to fail on "Broadcast arguments must be
    /// positive").
    #[test]
    fn bad_numeric_values_are_named_errors_not_panics() {
        let schedule = ebdiff_core::ScheduleConfig::cosine(20).build();
        let target = DiffusedTarget {
            data: IsotropicGmm::gaussian(vec![0.0, 0.0], 0.1),
            schedule: &schedule,
        };
        let cases: [(&str, &str); 11] = [
            ("count = 0\n[sampler]\nkind = \"ancestral\"", "count"),
            ("count = 0\n[sampler]\nkind = \"hmc\"", "count"),
            (
                "[sampler]\nkind = \"ancestral\"\nrespace = 0",
                "sampler.respace",
            ),
            (
                "[sampler]\nkind = \"ddim\"\nrespace = 50",
                "sampler.respace",
            ),
            (
                "[sampler]\nkind = \"ancestral\"\nclip_x0 = -1.0",
                "sampler.clip_x0",
            ),
            (
                "[sampler]\nkind = \"ddim\"\nddim_eta = 1.5",
                "sampler.ddim_eta",
            ),
            (
                "[sampler]\nkind = \"hmc\"\nleapfrog = 0",
                "sampler.leapfrog",
            ),
            (
                "[sampler]\nkind = \"hmc\"\ndamping = 2.0",
                "sampler.damping",
            ),
            (
                "[sampler]\nkind = \"mala\"\nstep_size = { law = \"constant\", value = 0.0 }",
                "sampler.step_size",
            ),
            (
                "[sampler]\nkind = \"mala\"\ntune = { band = [0.6, 0.8], probe_steps = 0 }",
                "sampler.tune",
            ),
            (
                "[sampler]\nkind = \"hmc\"\nwindow = [5, 20]",
                "sampler.window",
            ),
        ];
        for (text, key) in cases {
            let cfg: SamplingConfig = ebdiff_core::parse_toml(text, "s.toml").unwrap();
            let err = crate::sample(
                &cfg,
                &target,
                &schedule,
                &burn::tensor::Device::flex(),
                |_| {},
            )
            .err()
            .unwrap_or_else(|| panic!("`{text}` was accepted"));
            let msg = err.to_string();
            assert!(msg.contains(&format!("`{key}`")), "`{text}`: {msg}");
        }
    }
}
