//! A run directory as a library type: open one that `train` wrote and load its config, noise
//! schedule, EMA model or classifier in one call, or load every model a sampling config names.
//!
//! runs/NAME/ holds `config.toml` (the experiment as run), the newest `ema.safetensors`/
//! `model.safetensors` copied to the top level when training ends, `checkpoints/`,
//! `metrics.jsonl` and the rest (see `run.rs`); a classifier directory (`train-classifier`) holds
//! `config.toml` and `classifier.safetensors`. Runs written before safetensors hold `.bpk`
//! records instead, which still load.

use crate::config::ExperimentConfig;
use crate::error::RunError;
use burn::tensor::Device;
use ebdiff_core::NoiseSchedule;
use ebdiff_core::module_weights::{load_weights, weights_file};
use ebdiff_model::{DiffusionModel, NoisyClassifier};
use ebdiff_sampler::config::DEFAULT_MODEL;
use ebdiff_sampler::{Component, Components, ModelSource, SamplingConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A directory written by `cargo xtask train` (or `train-classifier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

/// What [`RunDir::load`] returns: the run's config, schedule and EMA weights.
pub struct LoadedRun {
    pub config: ExperimentConfig,
    pub schedule: NoiseSchedule,
    /// The EMA weights (what sampling and evaluation use).
    pub model: DiffusionModel,
}

/// What [`RunDir::load_classifier`] returns.
pub struct LoadedClassifier {
    pub config: ExperimentConfig,
    pub schedule: NoiseSchedule,
    pub classifier: NoisyClassifier,
}

impl RunDir {
    /// A run directory that exists and holds a `config.toml`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, RunError> {
        let path = path.into();
        if !path.join("config.toml").is_file() {
            return Err(RunError::NotARun {
                path,
                hint: "config.toml is missing (train one with `cargo xtask train`)",
            });
        }
        Ok(RunDir { path })
    }

    /// The directory itself (not checked: [`crate::train_run`] creates it).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        RunDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<run>/<name>`.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// The experiment as run (every default filled in).
    pub fn config(&self) -> Result<ExperimentConfig, RunError> {
        ExperimentConfig::load(&self.join("config.toml")).map_err(RunError::Config)
    }

    /// The newest checkpoint directory, if any.
    pub fn latest_checkpoint(&self) -> Option<PathBuf> {
        crate::checkpoint::latest_checkpoint(&self.path)
    }

    /// Config, schedule and EMA weights (`ema.safetensors`) on `device`.
    pub fn load(&self, device: &Device) -> Result<LoadedRun, RunError> {
        let config = self.config()?;
        let schedule = config.diffusion.build();
        let Some(weights) = weights_file(&self.path, "ema") else {
            return Err(RunError::NotARun {
                path: self.path.clone(),
                hint: "ema.safetensors is missing (training has not finished; `cargo xtask train --resume` completes it)",
            });
        };
        let model = load_weights(config.model.init(schedule.len(), device), &self.path, "ema")
            .map_err(|e| RunError::Weights {
                path: weights.clone(),
                message: format!(
                    "{e} (a corrupt file, or weights of another model config than config.toml)"
                ),
            })?;
        Ok(LoadedRun {
            config,
            schedule,
            model,
        })
    }

    /// Config, schedule and weights of a `cargo xtask train-classifier` directory.
    pub fn load_classifier(&self, device: &Device) -> Result<LoadedClassifier, RunError> {
        let config = self.config()?;
        let section = config.classifier.clone().ok_or_else(|| RunError::NotARun {
            path: self.path.clone(),
            hint: "its config.toml has no [classifier] section (train one with `cargo xtask train-classifier`)",
        })?;
        let (Ok(shape), Some(classes)) = (
            <[usize; 3]>::try_from(config.model.data_shape.clone()),
            config.model.num_classes,
        ) else {
            return Err(RunError::NotARun {
                path: self.path.clone(),
                hint: "a classifier needs an image model with num_classes",
            });
        };
        let classifier = load_weights(
            section.network.init(shape, classes, device),
            &self.path,
            "classifier",
        )
        .map_err(|e| RunError::Weights {
            path: self.join("classifier.safetensors"),
            message: format!("{e}"),
        })?;
        Ok(LoadedClassifier {
            schedule: config.diffusion.build(),
            config,
            classifier,
        })
    }
}

/// Loads every model and classifier `cfg`'s composition uses, on one device. `default_model` and
/// `default_classifier` are the run directories of the ones named "default" (the CLI's
/// `--checkpoint`/`--classifier`). Checks that all share one noise schedule and validates the
/// sampling config against it.
pub fn load_components(
    cfg: &SamplingConfig,
    default_model: Option<&Path>,
    default_classifier: Option<&Path>,
    device: &Device,
) -> Result<Components, RunError> {
    let spec = cfg.composition_spec();
    let mut sources: BTreeMap<String, ModelSource> = cfg.models.clone();
    if let Some(c) = default_model {
        sources.insert(
            DEFAULT_MODEL.into(),
            ModelSource::Run(c.display().to_string()),
        );
    }
    let mut models = BTreeMap::new();
    let mut first: Option<(NoiseSchedule, String)> = None;
    let mut data_shape = Vec::new();
    for name in spec.model_names() {
        let source = sources.get(&name).ok_or_else(|| {
            RunError::Sampling(format!(
                "the composition uses model `{name}` but no run directory is given for it (add it to [models] or pass --checkpoint)"
            ))
        })?;
        let (component, schedule, shape) = match source {
            ModelSource::Run(dir) => {
                let run = RunDir::open(dir)?.load(device)?;
                let component = Component::Trained {
                    model: run.model,
                    num_classes: run.config.model.num_classes,
                    run_dir: Some(PathBuf::from(dir)),
                };
                (component, run.schedule, run.config.model.data_shape.clone())
            }
            ModelSource::Exact(exact) => {
                let oracle = exact.build().map_err(|e| {
                    RunError::Sampling(format!("at `models.{name}.{}`: {}", e.key, e.message))
                })?;
                let schedule = oracle.schedule().clone();
                (Component::Exact(oracle), schedule, vec![2])
            }
        };
        match &first {
            Some((s0, other)) if s0 != &schedule => {
                return Err(RunError::Sampling(format!(
                    "models `{other}` and `{name}` use different noise schedules; compose models trained with the same [diffusion]"
                )));
            }
            Some(_) => {}
            None => first = Some((schedule, name.clone())),
        }
        data_shape = shape;
        models.insert(name, component);
    }
    let (schedule, _) = first.ok_or_else(|| {
        RunError::Sampling(
            "nothing to sample: no model given (use --checkpoint or [models])".into(),
        )
    })?;
    cfg.validate(schedule.len())
        .map_err(|e| RunError::Sampling(e.to_string()))?;
    let mut classifier_dirs: BTreeMap<String, PathBuf> = cfg
        .classifiers
        .iter()
        .map(|(k, v)| (k.clone(), PathBuf::from(v)))
        .collect();
    if let Some(c) = default_classifier {
        classifier_dirs.insert(DEFAULT_MODEL.into(), c.to_path_buf());
    }
    let mut classifiers = BTreeMap::new();
    for name in spec.classifier_names() {
        let dir = classifier_dirs.get(&name).ok_or_else(|| {
            RunError::Sampling(format!(
                "the composition uses classifier `{name}` but no directory is given for it (add it to [classifiers] or pass --classifier)"
            ))
        })?;
        let loaded = RunDir::open(dir)?.load_classifier(device)?;
        if loaded.schedule != schedule {
            return Err(RunError::Sampling(format!(
                "classifier `{name}` was trained with another noise schedule than the models; train it with the models' [diffusion]"
            )));
        }
        classifiers.insert(name, loaded.classifier);
    }
    Ok(Components {
        models,
        classifiers,
        schedule,
        data_shape,
        device: device.clone(),
    })
}
