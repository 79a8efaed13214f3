//! The named ingredients of a composition, loaded and sharing one noise schedule, and the
//! composition tree of a [`CompositionSpec`] built over them. Loading them from run directories
//! is the trainer crate's job (`ebdiff_trainer::load_components`); anything that has the models
//! in memory can fill a [`Components`] directly.

use crate::composition::Composition;
use crate::config::{CompositionSpec, DEFAULT_MODEL};
use crate::normalizers::{DEFAULT_PARTICLES, Normalizers, estimate_log_normalizers};
use crate::oracle::OracleTarget;
use crate::target::{ClassifierTarget, Labels, ModelTarget, Target};
use burn::tensor::Device;
use ebdiff_core::NoiseSchedule;
use ebdiff_model::{DiffusionModel, NoisyClassifier};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A model a composition can use. (A handful live per sampling run: their size does not matter.)
#[allow(clippy::large_enum_variant)]
pub enum Component {
    /// A trained network (`num_classes` from its config: labels are checked against it;
    /// `run_dir`, when known, caches its mixture normalizers in `<run_dir>/normalizers/`).
    Trained {
        model: DiffusionModel,
        num_classes: Option<usize>,
        run_dir: Option<PathBuf>,
    },
    /// The exact diffused law of a 2-D toy (an oracle: normalized, with its data law).
    Exact(OracleTarget),
}

impl Component {
    /// Whether the component gives log-densities (energy models, oracles).
    pub fn has_energy(&self) -> bool {
        match self {
            Component::Trained { model, .. } => model.is_energy(),
            Component::Exact(_) => true,
        }
    }
}

/// Models and classifiers by the names a sampling config gives them.
pub struct Components {
    pub models: BTreeMap<String, Component>,
    pub classifiers: BTreeMap<String, NoisyClassifier>,
    /// The schedule every model and classifier was trained with.
    pub schedule: NoiseSchedule,
    /// The models' data shape (`[2]` for 2-D toys, `[C, H, W]` for images).
    pub data_shape: Vec<usize>,
    /// Where the models live (mixture normalizers are estimated there).
    pub device: Device,
}

impl Components {
    /// The composition tree of `spec` over these components.
    pub fn build<'a>(&'a self, spec: &CompositionSpec) -> Result<Composition<'a>, String> {
        let e = |err: crate::CompositionError| err.to_string();
        let weighted = |weights: &[f64], children: &[CompositionSpec], what: &str| {
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
                .map(|(w, c)| Ok((*w, self.build(c)?)))
                .collect::<Result<Vec<_>, String>>()
        };
        match spec {
            CompositionSpec::Model { model, label } => {
                let name = model.as_deref().unwrap_or(DEFAULT_MODEL);
                let m = self.models.get(name).ok_or_else(|| {
                    format!(
                        "composition uses model `{name}`, which is not in [models] (known: {:?})",
                        self.models.keys().collect::<Vec<_>>()
                    )
                })?;
                let (m, num_classes) = match m {
                    Component::Trained {
                        model, num_classes, ..
                    } => (model, num_classes),
                    Component::Exact(oracle) => {
                        if let Some(y) = label {
                            return Err(format!(
                                "model `{name}` is an exact 2-D toy without classes: remove `label = {y}`"
                            ));
                        }
                        return Ok(Composition::leaf(oracle));
                    }
                };
                if let Some(y) = label {
                    match num_classes {
                        None => {
                            return Err(format!(
                                "model `{name}` is unconditional: remove `label = {y}`"
                            ));
                        }
                        Some(k) if y >= k => {
                            return Err(format!(
                                "model `{name}` has {k} classes, label {y} is out of range"
                            ));
                        }
                        _ => {}
                    }
                }
                Ok(Composition::leaf(ModelTarget {
                    model: m,
                    schedule: &self.schedule,
                    labels: label.map_or(Labels::None, Labels::Class),
                }))
            }
            CompositionSpec::Classifier { classifier, label } => {
                let name = classifier.as_deref().unwrap_or(DEFAULT_MODEL);
                let c = self.classifiers.get(name).ok_or_else(|| {
                    format!(
                        "composition uses classifier `{name}`, which is not in [classifiers] (known: {:?})",
                        self.classifiers.keys().collect::<Vec<_>>()
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
            } => Composition::negation(self.build(keep)?, self.build(remove)?, *alpha).map_err(e),
            CompositionSpec::Guided {
                weight,
                uncond,
                conds,
            } => Composition::guided(
                self.build(uncond)?,
                conds
                    .iter()
                    .map(|c| self.build(c))
                    .collect::<Result<_, _>>()?,
                *weight,
            )
            .map_err(e),
            CompositionSpec::Mixture {
                weights,
                sharpness,
                components,
                normalizers,
            } => {
                let children = weighted(weights, components, "mixture")?;
                if let Some(index) = children.iter().position(|(_, c)| !c.has_energy()) {
                    return Err(e(crate::CompositionError::ScoreOnlyMixtureChild { index }));
                }
                match normalizers.unwrap_or(Normalizers::Estimate) {
                    Normalizers::Equal => Composition::mixture(children, *sharpness).map_err(e),
                    Normalizers::Estimate => {
                        let log_z = children
                            .iter()
                            .zip(components)
                            .map(|((_, child), spec)| self.log_normalizers(spec, child))
                            .collect::<Result<Vec<_>, String>>()?;
                        Composition::calibrated_mixture(children, *sharpness, log_z).map_err(e)
                    }
                }
            }
        }
    }

    /// log Z(k) of a mixture component per level: 0 for normalized oracles, read from or written
    /// to `<run>/normalizers/` for a trained model leaf, estimated otherwise.
    fn log_normalizers(
        &self,
        spec: &CompositionSpec,
        child: &Composition,
    ) -> Result<Vec<f64>, String> {
        if child.is_normalized() {
            return Ok(vec![0.0; self.schedule.len()]);
        }
        let (particles, seed) = (DEFAULT_PARTICLES, 0);
        let cache = match spec {
            CompositionSpec::Model { model, label } => {
                let name = model.as_deref().unwrap_or(DEFAULT_MODEL);
                match self.models.get(name) {
                    Some(Component::Trained {
                        run_dir: Some(dir), ..
                    }) => Some(dir.join("normalizers").join(format!(
                        "{}-n{particles}-seed{seed}.json",
                        label.map_or("unconditional".to_string(), |y| format!("label{y}"))
                    ))),
                    _ => None,
                }
            }
            _ => None,
        };
        let betas = self.schedule.betas().to_vec();
        if let Some(path) = &cache
            && let Ok(text) = std::fs::read_to_string(path)
            && let Ok(c) = serde_json::from_str::<CachedNormalizers>(&text)
            && c.betas == betas
            && c.log_z.len() == betas.len()
        {
            return Ok(c.log_z);
        }
        let log_z = estimate_log_normalizers(child, &self.schedule, particles, seed, &self.device)
            .map_err(|e| format!("estimating a mixture component's normalizers: {e}"))?;
        if let Some(path) = &cache {
            let record = CachedNormalizers {
                particles,
                seed,
                betas,
                log_z: log_z.clone(),
            };
            // A cache that cannot be written only costs a re-estimate next time.
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| {
                    std::fs::write(path, serde_json::to_string_pretty(&record).expect("json"))
                });
            if let Err(err) = written {
                eprintln!(
                    "warning: cannot cache normalizers in {}: {err}",
                    path.display()
                );
            }
        }
        Ok(log_z)
    }
}

/// `<run>/normalizers/*.json`: a cached estimate and what it was computed with.
#[derive(Serialize, Deserialize)]
struct CachedNormalizers {
    particles: usize,
    seed: u64,
    /// The schedule's β (a different schedule invalidates the cache).
    betas: Vec<f64>,
    log_z: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SamplingConfig;

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
        let model = model_cfg.init(20, &device);
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
        let components = Components {
            models: BTreeMap::from([(
                "m".to_string(),
                Component::Trained {
                    model,
                    num_classes: Some(3),
                    run_dir: None,
                },
            )]),
            classifiers,
            schedule: schedule.clone(),
            data_shape: vec![3, 8, 8],
            device: device.clone(),
        };
        let target = components.build(&spec).unwrap();
        let x = Tensor::<2>::random(
            [2, 192],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let level = 7;
        let got = target.evaluate(x.clone(), level);
        let Component::Trained { model, .. } = &components.models["m"] else {
            unreachable!("built above")
        };
        let model = ModelTarget {
            model,
            schedule: &schedule,
            labels: Labels::Class(1),
        }
        .evaluate(x.clone(), level);
        let (logp, grad) = components.classifiers[DEFAULT_MODEL].log_prob_and_grad(
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
        let msg = components.build(&bad.composition.unwrap()).err().unwrap();
        assert!(
            msg.contains("3 classes") && msg.contains("label 3"),
            "{msg}"
        );
        // So is a model label beyond the model's classes, and a label on an unconditional one.
        let bad: SamplingConfig =
            ebdiff_core::parse_toml(&text.replace("label = 1 }", "label = 5 }"), "s.toml").unwrap();
        let msg = components.build(&bad.composition.unwrap()).err().unwrap();
        assert!(msg.contains("model `m` has 3 classes"), "{msg}");
    }
}
