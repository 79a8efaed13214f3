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
//! [models]                      # name → run directory (config.toml + ema.bpk)
//! ring = "runs/ring"
//! bar = "runs/bar"
//! [composition]
//! op = "product"
//! weights = [1.0, 1.0]
//! terms = [{ op = "model", model = "ring" }, { op = "model", model = "bar" }]
//! ```

use crate::ancestral::Variance;
use crate::annealed::{AnnealMode, AnnealedOptions, KernelKind, TuneOptions};
use crate::composition::{Composition, CompositionError};
use crate::step_size::LevelSchedule;
use crate::target::ModelTarget;
use ebdiff_core::NoiseSchedule;
use ebdiff_model::DiffusionModel;
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
}

impl SamplerKind {
    pub fn kernel(self) -> Option<KernelKind> {
        match self {
            SamplerKind::Ancestral | SamplerKind::Ddim => None,
            SamplerKind::Ula => Some(KernelKind::Ula),
            SamplerKind::Mala => Some(KernelKind::Mala),
            SamplerKind::Uhmc => Some(KernelKind::UHmc),
            SamplerKind::Hmc => Some(KernelKind::Hmc),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Ancestral => "ancestral",
            SamplerKind::Ddim => "ddim",
            SamplerKind::Ula => "ula",
            SamplerKind::Mala => "mala",
            SamplerKind::Uhmc => "uhmc",
            SamplerKind::Hmc => "hmc",
        }
    }
}

impl std::str::FromStr for SamplerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ebdiff_core::parse_toml::<Wrap>(&format!("k = \"{s}\""), "--sampler")
            .map(|w| w.k)
            .map_err(|_| {
                format!("unknown sampler `{s}`; allowed: ancestral, ddim, ula, mala, uhmc, hmc")
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
    /// Inclusive range of levels where MCMC runs (default: all).
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
    /// Reverse/DDIM steps over a respaced schedule (default: all levels).
    #[serde(default)]
    pub respace: Option<usize>,
    /// Per-level step-size search to an acceptance band (MALA/HMC).
    #[serde(default)]
    pub tune: Option<TuneConfig>,
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
        if let Some([lo, hi]) = self.window {
            if lo > hi || hi >= levels {
                return err(
                    "window",
                    format!("need lo ≤ hi < {levels}, got [{lo}, {hi}]"),
                );
            }
        }
        if !(0.0..=1.0).contains(&self.ddim_eta) {
            return err(
                "ddim_eta",
                format!("must be in [0, 1], got {}", self.ddim_eta),
            );
        }
        if let Some(t) = &self.tune {
            if !(0.0 < t.band[0] && t.band[0] < t.band[1] && t.band[1] <= 1.0) {
                return err(
                    "tune.band",
                    format!("need 0 < lo < hi ≤ 1, got {:?}", t.band),
                );
            }
        }
        Ok(())
    }

    /// Options of the annealed driver (MCMC kinds).
    pub fn annealed_options(&self, levels: usize, seed: u64) -> Option<AnnealedOptions> {
        let kernel = self.kind.kernel()?;
        let mut o = AnnealedOptions::paper_2d(kernel, levels);
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
        o.tune = self.tune.map(|t| TuneOptions {
            band: (t.band[0], t.band[1]),
            probe_steps: t.probe_steps,
            max_probes: t.max_probes,
        });
        o.seed = seed;
        Some(o)
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
    /// (1/β) LSE(log πᵢ + β fᵢ).
    Mixture {
        weights: Vec<f64>,
        #[serde(default = "default_sharpness")]
        sharpness: f64,
        components: Vec<CompositionSpec>,
    },
}

fn default_sharpness() -> f64 {
    1.0
}

/// Name of the model given with `--checkpoint`.
pub const DEFAULT_MODEL: &str = "default";

impl CompositionSpec {
    /// Names of the models the tree uses.
    pub fn model_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out.sort();
        out.dedup();
        out
    }

    fn collect(&self, out: &mut Vec<String>) {
        match self {
            CompositionSpec::Model { model, .. } => {
                out.push(model.clone().unwrap_or_else(|| DEFAULT_MODEL.into()))
            }
            CompositionSpec::Product { terms, .. } => terms.iter().for_each(|t| t.collect(out)),
            CompositionSpec::Negation { keep, remove, .. } => {
                keep.collect(out);
                remove.collect(out);
            }
            CompositionSpec::Guided { uncond, conds, .. } => {
                uncond.collect(out);
                conds.iter().for_each(|t| t.collect(out));
            }
            CompositionSpec::Mixture { components, .. } => {
                components.iter().for_each(|t| t.collect(out))
            }
        }
    }

    /// Builds the composition over loaded models (all sharing `schedule`).
    pub fn build<'a>(
        &self,
        models: &'a BTreeMap<String, DiffusionModel>,
        schedule: &'a NoiseSchedule,
    ) -> Result<Composition<'a>, String> {
        let e = |err: CompositionError| err.to_string();
        let weighted = |weights: &[f64],
                        children: &[CompositionSpec],
                        what: &str|
         -> Result<Vec<(f64, Composition<'a>)>, String> {
            if weights.len() != children.len() {
                return Err(format!(
                    "{what}: {} weights for {} children",
                    weights.len(),
                    children.len()
                ));
            }
            weights
                .iter()
                .zip(children)
                .map(|(w, c)| Ok((*w, c.build(models, schedule)?)))
                .collect()
        };
        match self {
            CompositionSpec::Model { model, label } => {
                let name = model.clone().unwrap_or_else(|| DEFAULT_MODEL.into());
                let m = models.get(&name).ok_or_else(|| {
                    format!(
                        "composition uses model `{name}`, which is not in [models] (known: {:?})",
                        models.keys().collect::<Vec<_>>()
                    )
                })?;
                Ok(Composition::leaf(ModelTarget {
                    model: m,
                    schedule,
                    label: *label,
                }))
            }
            CompositionSpec::Product { weights, terms } => {
                Composition::product(weighted(weights, terms, "product")?).map_err(e)
            }
            CompositionSpec::Negation {
                alpha,
                keep,
                remove,
            } => Composition::negation(
                keep.build(models, schedule)?,
                remove.build(models, schedule)?,
                *alpha,
            )
            .map_err(e),
            CompositionSpec::Guided {
                weight,
                uncond,
                conds,
            } => Composition::guided(
                uncond.build(models, schedule)?,
                conds
                    .iter()
                    .map(|c| c.build(models, schedule))
                    .collect::<Result<_, _>>()?,
                *weight,
            )
            .map_err(e),
            CompositionSpec::Mixture {
                weights,
                sharpness,
                components,
            } => Composition::mixture(weighted(weights, components, "mixture")?, *sharpness)
                .map_err(e),
        }
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
    /// Model name → run directory.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    /// What to sample (default: the `--checkpoint` model alone).
    #[serde(default)]
    pub composition: Option<CompositionSpec>,
}

fn default_count() -> usize {
    2000
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
