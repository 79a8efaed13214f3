//! Training the noise-conditioned classifier p(y | x_t, t) for classifier guidance, on the same
//! data and noise schedule as the diffusion model: cross-entropy at uniformly drawn levels.

use crate::dsm::noise_batch;
use crate::train::BatchSource;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ebdiff_core::NoiseSchedule;
use ebdiff_core::rng::stream_at;
use ebdiff_model::{ClassifierConfig, NoisyClassifier};
use serde::{Deserialize, Serialize};

/// `[classifier]` section of an experiment file (`cargo xtask train-classifier`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierSection {
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Network shape (`[classifier.network]`); data shape and classes come from `[model]`.
    #[serde(default)]
    pub network: ClassifierConfig,
}

fn default_steps() -> usize {
    2000
}
fn default_batch() -> usize {
    64
}
fn default_lr() -> f64 {
    1e-3
}

impl Default for ClassifierSection {
    fn default() -> Self {
        ClassifierSection {
            steps: default_steps(),
            batch_size: default_batch(),
            lr: default_lr(),
            network: ClassifierConfig::default(),
        }
    }
}

/// Reported after every step.
#[derive(Debug, Clone, Copy)]
pub struct ClassifierStep {
    pub step: usize,
    pub loss: f64,
    /// Fraction of the batch classified correctly (at its random noise levels).
    pub accuracy: f64,
}

fn levels_tensor(levels: &[usize], device: &Device) -> Tensor<1, Int> {
    let t: Vec<i64> = levels.iter().map(|&k| k as i64).collect();
    Tensor::from_data(TensorData::new(t, [levels.len()]), device)
}

fn labels_tensor(labels: &[u32], device: &Device) -> Tensor<1, Int> {
    let y: Vec<i64> = labels.iter().map(|&y| y as i64).collect();
    Tensor::from_data(TensorData::new(y, [labels.len()]), device)
}

fn correct(logits: Tensor<2>, labels: &[u32]) -> usize {
    let pred: Vec<i64> = logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec()
        .expect("i64 argmax");
    pred.iter()
        .zip(labels)
        .filter(|(p, y)| **p == **y as i64)
        .count()
}

/// Trains a fresh classifier (initialized from `seed`) with Adam; `source` must yield labels.
/// Returns it on the inference device.
#[allow(clippy::too_many_arguments)]
pub fn train_classifier(
    section: &ClassifierSection,
    image_shape: [usize; 3],
    num_classes: usize,
    schedule: &NoiseSchedule,
    source: &impl BatchSource,
    seed: u64,
    device: &Device,
    mut on_step: impl FnMut(ClassifierStep),
) -> NoisyClassifier {
    let ad = device.clone().autodiff();
    let mut clf = ebdiff_model::seeded_init(&ad, seed, || {
        section.network.init(image_shape, num_classes, &ad)
    });
    let mut optim = AdamConfig::new().init();
    let dim = source.dim();
    for step in 0..section.steps {
        let batch = source.batch(step as u64, section.batch_size);
        let labels = batch
            .labels
            .expect("classifier training needs a labelled data source");
        let mut rng = stream_at(seed, "classifier-noise", step as u64);
        // The graph and backward of this step, apart from other threads' (see `burn_globals`).
        let exclusive = ebdiff_core::burn_globals::exclusive();
        let noised = noise_batch(&batch.x, dim, None, schedule, &mut rng, &ad);
        let logits = clf.logits(noised.x_t.clone(), levels_tensor(&noised.levels, &ad));
        let accuracy = correct(logits.clone(), &labels) as f64 / labels.len() as f64;
        let b = labels.len();
        let loss = burn::tensor::activation::log_softmax(logits, 1)
            .gather(1, labels_tensor(&labels, &ad).reshape([b, 1]))
            .mean()
            .neg();
        let grads = loss.backward();
        let loss_value = loss.into_scalar::<f64>();
        let grads = GradientsParams::from_grads(grads, &clf);
        clf = optim.step(section.lr, clf, grads);
        drop(exclusive);
        on_step(ClassifierStep {
            step: step + 1,
            loss: loss_value,
            accuracy,
        });
    }
    clf.valid()
}

/// Accuracy on `n` examples noised to exactly level `level` (fresh batches: steps ≥ 10⁹ of
/// `source`, which training never reaches).
pub fn classifier_accuracy(
    clf: &NoisyClassifier,
    schedule: &NoiseSchedule,
    source: &impl BatchSource,
    level: usize,
    batch_size: usize,
    batches: usize,
    device: &Device,
) -> f64 {
    let dim = source.dim();
    let (mut right, mut total) = (0, 0);
    for i in 0..batches {
        let step = 1_000_000_000 + i as u64;
        let batch = source.batch(step, batch_size);
        let labels = batch.labels.expect("labelled data");
        let a = schedule.alpha_bar(level).sqrt() as f32;
        let s = schedule.sigma(level) as f32;
        let noise =
            ebdiff_core::rng::normal_vec(&mut stream_at(0, "classifier-eval", step), batch.x.len());
        let x: Vec<f32> = batch
            .x
            .iter()
            .zip(&noise)
            .map(|(x, e)| a * x + s * e)
            .collect();
        let b = labels.len();
        let x = Tensor::<2>::from_data(TensorData::new(x, [b, dim]), device);
        let logits = clf.logits(x, levels_tensor(&vec![level; b], device));
        right += correct(logits, &labels);
        total += b;
    }
    right as f64 / total as f64
}

/// What [`train_classifier_to_dir`] measured: held-out accuracy at a few noise levels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifierSummary {
    pub classes: usize,
    pub steps: usize,
    /// (level, accuracy) at levels 0, T/10, T/2 and 9T/10.
    pub held_out_accuracy: Vec<(usize, f64)>,
}

/// `cargo xtask train-classifier` as a library call: trains the `[classifier]` of `cfg` on its
/// image data and noise schedule into `out` (config.toml, metrics.jsonl every 25 steps,
/// classifier.safetensors, summary.json), loadable with [`crate::RunDir::load_classifier`].
pub fn train_classifier_to_dir(
    cfg: &crate::ExperimentConfig,
    out: &std::path::Path,
    device: &Device,
    mut on_step: impl FnMut(ClassifierStep),
) -> Result<ClassifierSummary, crate::RunError> {
    use crate::RunError;
    use std::io::Write;
    let io = |p: std::path::PathBuf| move |e| RunError::Io(p, e);
    let section = cfg.classifier.clone().ok_or_else(|| {
        RunError::Data("the config has no [classifier] section (see configs/shapes.toml)".into())
    })?;
    let crate::data::DataConfig::Image(data) = &cfg.data else {
        return Err(RunError::Data("the classifier needs image data".into()));
    };
    std::fs::create_dir_all(out).map_err(io(out.to_path_buf()))?;
    let cfg_path = out.join("config.toml");
    std::fs::write(&cfg_path, cfg.to_toml()).map_err(io(cfg_path))?;
    let shape: [usize; 3] = cfg.model.data_shape.clone().try_into().expect("validated");
    let dataset = data
        .build(shape, true)
        .map_err(|e| RunError::Data(e.to_string()))?;
    let classes = dataset.num_classes;
    let source = crate::data::ImageSource::new(
        std::sync::Arc::new(dataset),
        data,
        section.batch_size,
        cfg.run.seed,
        true,
    )
    .map_err(|e| RunError::Data(e.to_string()))?;
    let schedule = cfg.diffusion.build();
    let metrics_path = out.join("metrics.jsonl");
    let file = std::fs::File::create(&metrics_path).map_err(io(metrics_path.clone()))?;
    let mut metrics = std::io::BufWriter::new(file);
    let mut window = (0.0, 0.0, 0usize);
    let mut write_error = None;
    let clf = train_classifier(
        &section,
        shape,
        classes,
        &schedule,
        &source,
        cfg.run.seed,
        device,
        |s| {
            window = (window.0 + s.loss, window.1 + s.accuracy, window.2 + 1);
            if s.step % 25 == 0 || s.step == section.steps {
                let n = window.2 as f64;
                let line = serde_json::json!({"step": s.step, "loss": window.0 / n, "accuracy": window.1 / n});
                if let Err(e) = writeln!(metrics, "{line}") {
                    write_error.get_or_insert(e);
                }
                window = (0.0, 0.0, 0);
            }
            on_step(s);
        },
    );
    if let Some(e) = write_error {
        return Err(RunError::Io(metrics_path, e));
    }
    metrics.flush().map_err(io(metrics_path))?;
    let weights = out.join("classifier.safetensors");
    ebdiff_core::module_weights::save_module(&clf, &weights, Default::default()).map_err(|e| {
        RunError::Weights {
            path: weights.clone(),
            message: format!("saving: {e}"),
        }
    })?;
    let t = schedule.len();
    let held_out_accuracy = [0, t / 10, t / 2, 9 * t / 10]
        .into_iter()
        .map(|level| {
            let a = classifier_accuracy(
                &clf,
                &schedule,
                &source,
                level,
                section.batch_size,
                8,
                device,
            );
            (level, a)
        })
        .collect();
    let summary = ClassifierSummary {
        classes,
        steps: section.steps,
        held_out_accuracy,
    };
    let path = out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary).expect("json"))
        .map_err(io(path))?;
    Ok(summary)
}
