//! The experiment file read by `cargo xtask train --config FILE`: one TOML, strictly typed.

pub use crate::train::LrSchedule;
use ebdiff_core::{ConfigError, ScheduleConfig, load_toml, parse_toml};
use ebdiff_data::Toy2dConfig;
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
    #[serde(default = "default_ema_decay")]
    pub ema_decay: f64,
    #[serde(default = "default_log_every")]
    pub log_every: usize,
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
}

fn default_sample_count() -> usize {
    2000
}

impl Default for SampleSection {
    fn default() -> Self {
        SampleSection {
            count: default_sample_count(),
            variance: Variance::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    pub run: RunSection,
    pub data: Toy2dConfig,
    pub diffusion: ScheduleConfig,
    pub model: ModelConfig,
    pub train: TrainSection,
    #[serde(default)]
    pub sample: SampleSection,
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
        self.data.validate().map_err(|e| at("data", e))?;
        if self.model.data_dim() != 2 {
            return Err(ConfigError::invalid(
                origin,
                "model.data_shape",
                format!(
                    "the 2-D toy data needs data_shape = [2], got {:?}",
                    self.model.data_shape
                ),
            ));
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
        if self.sample.count == 0 {
            return Err(ConfigError::invalid(origin, "sample.count", "must be ≥ 1"));
        }
        Ok(())
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
