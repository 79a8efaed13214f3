//! The experiment file read by `cargo xtask train --config FILE`: one TOML, strictly typed.

pub use crate::classifier::ClassifierSection;
pub use crate::data::DataConfig;
pub use crate::dsm::LossWeighting;
use crate::ema::EmaSchedule;
pub use crate::optim::OptimizerKind;
use crate::optim::OptimizerSettings;
pub use crate::train::LrSchedule;
use crate::train::TrainOptions;
use ebdiff_core::{ConfigError, ScheduleConfig, load_toml, parse_toml};
use ebdiff_model::ModelConfig;
use ebdiff_sampler::Variance;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Run name; the run directory is `runs/<name>` unless `--out` is given.
    pub name: String,
    #[serde(default)]
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    pub steps: usize,
    pub batch_size: usize,
    /// Peak learning rate (Adam).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Learning-rate shape after warm-up: `constant` or `cosine` (decays to 0 at the last step).
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Linear warm-up steps from 0 to `lr`.
    #[serde(default)]
    pub warmup_steps: usize,
    /// `adam` or `adamw` (decoupled weight decay).
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Adam (β₁, β₂).
    #[serde(default = "default_betas")]
    pub betas: [f32; 2],
    /// Decoupled weight decay (adamw only).
    #[serde(default)]
    pub weight_decay: f32,
    /// Clip the global gradient norm to this value (unset: no clipping).
    #[serde(default)]
    pub grad_clip: Option<f64>,
    /// Micro-batches per step; gradients are summed, so the update equals a full batch.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Fixed EMA decay per step. Ignored when `ema_halflife_examples` is set.
    #[serde(default = "default_ema_decay")]
    pub ema_decay: f64,
    /// EDM-style EMA: half-life in training examples (e.g. 500_000).
    #[serde(default)]
    pub ema_halflife_examples: Option<f64>,
    /// EDM ramp-up: cap the half-life at this fraction of the examples seen so far (e.g. 0.05).
    #[serde(default)]
    pub ema_rampup_ratio: Option<f64>,
    /// `{ kind = "uniform" }` (default) or `{ kind = "min-snr", gamma = 5.0 }`.
    #[serde(default)]
    pub loss_weighting: LossWeighting,
    /// Probability of training a class-conditional model with the null label (for CFG).
    /// Default 0.1 when `model.num_classes` is set.
    #[serde(default)]
    pub label_dropout: Option<f64>,
    /// Steps between progress/metrics lines.
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Steps between checkpoints (also written at the end and on Ctrl-C). 0: only then.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    /// Checkpoints kept (the newest).
    #[serde(default = "default_keep_checkpoints")]
    pub keep_checkpoints: usize,
    /// Steps between sample grids / scatter plots with fixed seeds (0: only at the end).
    #[serde(default)]
    pub sample_every: usize,
    /// Start from these weights instead of a random initialization: a safetensors file whose
    /// tensors are named by module path (an ebdiff `model.safetensors`, or one exported from the
    /// PyTorch twin in `scripts/torch/`). Every name and shape must match the model; the error
    /// lists those that do not. Relative paths are relative to the working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<std::path::PathBuf>,
}

fn one() -> usize {
    1
}
fn default_betas() -> [f32; 2] {
    [0.9, 0.999]
}
fn default_checkpoint_every() -> usize {
    1000
}
fn default_keep_checkpoints() -> usize {
    3
}

fn default_lr() -> f64 {
    1e-3
}
fn default_ema_decay() -> f64 {
    0.999
}
fn default_log_every() -> usize {
    100
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleSection {
    /// Number of samples drawn after training (with the EMA weights).
    #[serde(default = "default_sample_count")]
    pub count: usize,
    /// Reverse-step variance: `fixed-small` (β̃, default) or `fixed-large` (β).
    #[serde(default)]
    pub variance: Variance,
    /// Reverse steps for samples and grids: the schedule respaced to this many evenly spaced
    /// levels (unset: all levels). Images on a CPU: 50–100 keeps grids cheap.
    #[serde(default)]
    pub steps: Option<usize>,
    /// Images in a sample grid (a square number looks best).
    #[serde(default = "default_grid")]
    pub grid: usize,
}

fn default_grid() -> usize {
    64
}

fn default_sample_count() -> usize {
    2000
}

impl Default for SampleSection {
    fn default() -> Self {
        SampleSection {
            count: default_sample_count(),
            variance: Variance::default(),
            steps: None,
            grid: default_grid(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    pub run: RunSection,
    pub data: DataConfig,
    pub diffusion: ScheduleConfig,
    pub model: ModelConfig,
    pub train: TrainSection,
    #[serde(default)]
    pub sample: SampleSection,
    /// The noise-conditioned classifier for classifier guidance (`cargo xtask train-classifier`).
    #[serde(default)]
    pub classifier: Option<ClassifierSection>,
}

impl ExperimentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let cfg: Self = load_toml(path)?;
        cfg.validate(&path.display().to_string())?;
        Ok(cfg)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: Self = parse_toml(text, origin)?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Semantic checks that serde cannot express.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let at = |section: &str, (key, msg): (String, String)| {
            ConfigError::invalid(origin, format!("{section}.{key}"), msg)
        };
        self.diffusion.validate().map_err(|e| at("diffusion", e))?;
        self.model.validate().map_err(|e| at("model", e))?;
        match &self.data {
            DataConfig::Toy2d(toy) => {
                toy.validate().map_err(|e| at("data", e))?;
                if self.model.data_shape != [2] {
                    return Err(ConfigError::invalid(
                        origin,
                        "model.data_shape",
                        format!(
                            "the 2-D toy data needs data_shape = [2], got {:?}",
                            self.model.data_shape
                        ),
                    ));
                }
            }
            DataConfig::Image(_) => {
                if self.model.data_shape.len() != 3 {
                    return Err(ConfigError::invalid(
                        origin,
                        "model.data_shape",
                        format!(
                            "image data needs data_shape = [channels, height, width], got {:?}",
                            self.model.data_shape
                        ),
                    ));
                }
            }
        }
        let t = &self.train;
        if t.steps == 0 || t.batch_size == 0 {
            return Err(ConfigError::invalid(
                origin,
                "train.steps/batch_size",
                "must be ≥ 1",
            ));
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            return Err(ConfigError::invalid(
                origin,
                "train.lr",
                format!("must be > 0, got {}", t.lr),
            ));
        }
        if !(0.0..1.0).contains(&t.ema_decay) {
            return Err(ConfigError::invalid(
                origin,
                "train.ema_decay",
                format!("must be in [0, 1), got {}", t.ema_decay),
            ));
        }
        if t.grad_accum == 0 || t.grad_accum > t.batch_size {
            return Err(ConfigError::invalid(
                origin,
                "train.grad_accum",
                format!(
                    "must be in 1..=batch_size ({}), got {}",
                    t.batch_size, t.grad_accum
                ),
            ));
        }
        if let Some(c) = t.grad_clip
            && !(c > 0.0 && c.is_finite())
        {
            return Err(ConfigError::invalid(
                origin,
                "train.grad_clip",
                format!("must be > 0, got {c}"),
            ));
        }
        if let Some(h) = t.ema_halflife_examples
            && !(h > 0.0 && h.is_finite())
        {
            return Err(ConfigError::invalid(
                origin,
                "train.ema_halflife_examples",
                format!("must be > 0, got {h}"),
            ));
        }
        if let Some(p) = t.label_dropout {
            if !(0.0..1.0).contains(&p) {
                return Err(ConfigError::invalid(
                    origin,
                    "train.label_dropout",
                    format!("must be in [0, 1), got {p}"),
                ));
            }
            if self.model.num_classes.is_none() && p > 0.0 {
                return Err(ConfigError::invalid(
                    origin,
                    "train.label_dropout",
                    "needs a class-conditional model: set model.num_classes",
                ));
            }
        }
        if let Some(c) = &self.classifier {
            let Ok(shape) = <[usize; 3]>::try_from(self.model.data_shape.clone()) else {
                return Err(ConfigError::invalid(
                    origin,
                    "classifier",
                    "needs image data (model.data_shape = [C, H, W])",
                ));
            };
            if self.model.num_classes.is_none() {
                return Err(ConfigError::invalid(
                    origin,
                    "classifier",
                    "needs classes: set model.num_classes",
                ));
            }
            c.network
                .validate(shape)
                .map_err(|e| at("classifier.network", e))?;
            if c.steps == 0 || c.batch_size == 0 || !(c.lr > 0.0 && c.lr.is_finite()) {
                return Err(ConfigError::invalid(
                    origin,
                    "classifier",
                    "steps, batch_size and lr must be > 0",
                ));
            }
        }
        if t.keep_checkpoints == 0 {
            return Err(ConfigError::invalid(
                origin,
                "train.keep_checkpoints",
                "must be ≥ 1",
            ));
        }
        if self.sample.steps == Some(0)
            || self
                .sample
                .steps
                .is_some_and(|s| s > self.diffusion.timesteps())
        {
            return Err(ConfigError::invalid(
                origin,
                "sample.steps",
                format!("must be in 1..={}", self.diffusion.timesteps()),
            ));
        }
        if self.sample.count == 0 {
            return Err(ConfigError::invalid(origin, "sample.count", "must be ≥ 1"));
        }
        Ok(())
    }
}

impl ExperimentConfig {
    /// The training loop's options.
    pub fn train_options(&self) -> TrainOptions {
        let t = &self.train;
        TrainOptions {
            steps: t.steps,
            batch_size: t.batch_size,
            grad_accum: t.grad_accum,
            lr: t.lr,
            lr_schedule: t.lr_schedule,
            warmup_steps: t.warmup_steps,
            optimizer: OptimizerSettings {
                kind: t.optimizer,
                beta1: t.betas[0],
                beta2: t.betas[1],
                epsilon: 1e-8,
                weight_decay: t.weight_decay,
            },
            grad_clip: t.grad_clip,
            ema: match t.ema_halflife_examples {
                Some(examples) => EmaSchedule::HalfLife {
                    examples,
                    rampup_ratio: t.ema_rampup_ratio,
                },
                None => EmaSchedule::Decay(t.ema_decay),
            },
            loss_weighting: t.loss_weighting,
            label_dropout: t
                .label_dropout
                .unwrap_or(if self.model.num_classes.is_some() {
                    0.1
                } else {
                    0.0
                }),
            num_classes: self.model.num_classes,
            seed: self.run.seed,
        }
    }

    /// The config as TOML (written to run directories and checkpoints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[run]
name = "t"
[data]
kind = "ring"
[diffusion]
kind = "cosine"
timesteps = 100
[model]
parameterization = "energy"
data_shape = [2]
[model.backbone]
kind = "mlp2d"
[train]
steps = 10
batch_size = 8
"#;

    #[test]
    fn parses_with_defaults() {
        let cfg = ExperimentConfig::parse(GOOD, "good.toml").unwrap();
        assert_eq!(cfg.train.lr, 1e-3);
        assert_eq!(cfg.sample.count, 2000);
    }

    #[test]
    fn unknown_key_is_rejected_with_its_path() {
        let text = GOOD.replace("kind = \"mlp2d\"", "kind = \"mlp2d\"\nhiden = 3");
        let msg = ExperimentConfig::parse(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("model.backbone") && msg.contains("hiden"),
            "{msg}"
        );
    }

    #[test]
    fn bad_value_names_key_and_allowed_values() {
        let text = GOOD.replace(
            "parameterization = \"energy\"",
            "parameterization = \"energetic\"",
        );
        let msg = ExperimentConfig::parse(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("model.parameterization") && msg.contains("eps") && msg.contains("energy"),
            "{msg}"
        );
        let text = GOOD.replace("timesteps = 100", "timesteps = 1");
        let msg = ExperimentConfig::parse(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("diffusion.timesteps"), "{msg}");
    }
}

/// The `[model]` and `[diffusion]` tables of any config file, the other sections ignored, so that
/// `gradcheck` and the benchmarks take training configs as they are. Without `[diffusion]`:
/// linear, T = 1000.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelSection {
    pub model: ModelConfig,
    #[serde(default = "default_model_section_schedule")]
    pub diffusion: ScheduleConfig,
}

fn default_model_section_schedule() -> ScheduleConfig {
    ScheduleConfig::linear(1000)
}

/// The default network of `gradcheck` and `bench`: the small DDPM UNet (channels 32,
/// multipliers 1,2,2, one res block, attention at 16, 3×32×32).
pub const DEFAULT_UNET_CONFIG: &str = include_str!("../../../configs/unet-small.toml");

impl ModelSection {
    /// From a file, or the default small UNet when `path` is `None`; validated.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let section: ModelSection = match path {
            Some(p) => load_toml(p)?,
            None => parse_toml(DEFAULT_UNET_CONFIG, "configs/unet-small.toml")?,
        };
        let origin = path.map_or("configs/unet-small.toml".into(), |p| {
            p.display().to_string()
        });
        section
            .model
            .validate()
            .map_err(|(k, m)| ConfigError::invalid(&origin, format!("model.{k}"), m))?;
        section
            .diffusion
            .validate()
            .map_err(|(k, m)| ConfigError::invalid(&origin, format!("diffusion.{k}"), m))?;
        Ok(section)
    }
}
