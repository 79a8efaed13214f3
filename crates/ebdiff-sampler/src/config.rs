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
use crate::target::{ClassifierTarget, ModelTarget};
use ebdiff_core::NoiseSchedule;
use ebdiff_model::{DiffusionModel, NoisyClassifier};
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

    /// Builds the composition over loaded models (all sharing `schedule`).
    pub fn build<'a>(
        &self,
        models: &'a BTreeMap<String, DiffusionModel>,
        classifiers: &'a BTreeMap<String, NoisyClassifier>,
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
                .map(|(w, c)| Ok((*w, c.build(models, classifiers, schedule)?)))
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
            CompositionSpec::Classifier { classifier, label } => {
                let name = classifier.clone().unwrap_or_else(|| DEFAULT_MODEL.into());
                let c = classifiers.get(&name).ok_or_else(|| {
                    format!(
                        "composition uses classifier `{name}`, which is not in [classifiers] (known: {:?})",
                        classifiers.keys().collect::<Vec<_>>()
                    )
                })?;
                if *label >= c.num_classes {
                    return Err(format!(
                        "classifier `{name}` has {} classes, label {label} is out of range",
                        c.num_classes
                    ));
                }
                Ok(Composition::leaf(ClassifierTarget {
                    classifier: c,
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
                keep.build(models, classifiers, schedule)?,
                remove.build(models, classifiers, schedule)?,
                *alpha,
            )
            .map_err(e),
            CompositionSpec::Guided {
                weight,
                uncond,
                conds,
            } => Composition::guided(
                uncond.build(models, classifiers, schedule)?,
                conds
                    .iter()
                    .map(|c| c.build(models, classifiers, schedule))
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

    #[test]
    fn classifier_guidance_from_toml_adds_the_scaled_classifier_term() {
        use crate::target::Target;
        use burn::tensor::{Device, Int, Tensor};
        let device = Device::flex();
        let model_cfg: ebdiff_model::ModelConfig = ebdiff_core::parse_toml(
            r#"
parameterization = "energy"
zero_init_output = false
data_shape = [3, 8, 8]
num_classes = 3
[backbone]
kind = "unet"
channels = 8
channel_mult = [1, 2]
res_blocks = 1
attention_resolutions = []
groups = 4
"#,
            "m",
        )
        .unwrap();
        let schedule = ebdiff_core::ScheduleConfig::linear(20).build();
        device.seed(3);
        let models = BTreeMap::from([("m".to_string(), model_cfg.init(20, &device))]);
        let clf_cfg = ebdiff_model::ClassifierConfig {
            channels: 8,
            channel_mult: vec![1, 2],
            groups: 4,
            ..Default::default()
        };
        let classifiers = BTreeMap::from([(
            DEFAULT_MODEL.to_string(),
            clf_cfg.init([3, 8, 8], 3, &device),
        )]);
        let text = r#"
[sampler]
kind = "hmc"
[composition]
op = "product"
weights = [1.0, 2.5]
terms = [{ op = "model", model = "m", label = 1 }, { op = "classifier", label = 2 }]
"#;
        let cfg: SamplingConfig = ebdiff_core::parse_toml(text, "s.toml").unwrap();
        let spec = cfg.composition.unwrap();
        assert_eq!(spec.classifier_names(), vec![DEFAULT_MODEL]);
        let target = spec.build(&models, &classifiers, &schedule).unwrap();
        let x = Tensor::<2>::random(
            [2, 192],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let level = 7;
        let got = target.evaluate(x.clone(), level);
        let model = ModelTarget {
            model: &models["m"],
            schedule: &schedule,
            label: Some(1),
        }
        .evaluate(x.clone(), level);
        let (logp, grad) = classifiers[DEFAULT_MODEL].log_prob_and_grad(
            x,
            Tensor::<1, Int>::full([2], level as i64, &device),
            Tensor::<1, Int>::full([2], 2, &device),
        );
        let want_score = model.score + grad.mul_scalar(2.5);
        let want_logp = model.log_density.unwrap() + logp.mul_scalar(2.5);
        let diff = (got.score - want_score).abs().max().into_scalar::<f64>();
        let diff_logp = (got.log_density.unwrap() - want_logp)
            .abs()
            .max()
            .into_scalar::<f64>();
        assert!(diff < 1e-4 && diff_logp < 1e-4, "{diff} {diff_logp}");
        // A label outside the classifier's classes is refused when the tree is built.
        let bad: SamplingConfig =
            ebdiff_core::parse_toml(&text.replace("label = 2 }", "label = 3 }"), "s.toml").unwrap();
        let msg = bad
            .composition
            .unwrap()
            .build(&models, &classifiers, &schedule)
            .err()
            .unwrap();
        assert!(
            msg.contains("3 classes") && msg.contains("label 3"),
            "{msg}"
        );
    }
}
