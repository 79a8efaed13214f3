//! The noise-conditioned classifier learns where the object is on the shapes data: far above
//! chance at low noise on examples it never saw, and it degrades towards chance as noise grows.

use burn::tensor::Device;
use ebdiff_trainer::ExperimentConfig;
use ebdiff_trainer::classifier::{classifier_accuracy, train_classifier};
use ebdiff_trainer::config::DataConfig;
use ebdiff_trainer::data::ImageSource;
use std::sync::Arc;

const CFG: &str = r#"
[run]
name = "clf"
seed = 5
[data]
kind = "shapes"
count = 400
seed = 2
[data.shapes]
size = 16
grid = 2
min_objects = 1
max_objects = 1
[diffusion]
kind = "linear"
timesteps = 100
[model]
parameterization = "energy"
data_shape = [3, 16, 16]
num_classes = 4
[model.backbone]
kind = "unet"
channels = 8
channel_mult = [1, 2]
groups = 4
attention_resolutions = []
[train]
steps = 1
batch_size = 16
[classifier]
steps = 150
batch_size = 16
lr = 3e-3
[classifier.network]
channels = 8
channel_mult = [1, 2]
groups = 4
"#;

#[test]
fn classifier_finds_the_object_cell_and_loses_it_in_noise() {
    let cfg = ExperimentConfig::parse(CFG, "clf.toml").unwrap();
    let DataConfig::Image(data) = &cfg.data else {
        unreachable!()
    };
    let dataset = Arc::new(data.build([3, 16, 16], false).unwrap());
    let section = cfg.classifier.clone().unwrap();
    let source = ImageSource::new(dataset, data, section.batch_size, cfg.run.seed, true).unwrap();
    let schedule = cfg.diffusion.build();
    let device = Device::flex();
    let mut losses = Vec::new();
    let clf = train_classifier(
        &section,
        [3, 16, 16],
        4,
        &schedule,
        &source,
        5,
        &device,
        |s| losses.push(s.loss),
    );
    let early = losses[..20].iter().sum::<f64>() / 20.0;
    let late = losses[losses.len() - 20..].iter().sum::<f64>() / 20.0;
    let clean = classifier_accuracy(&clf, &schedule, &source, 5, 16, 4, &device);
    let noisy = classifier_accuracy(&clf, &schedule, &source, 99, 16, 4, &device);
    eprintln!("loss {early:.3} → {late:.3}; accuracy level 5: {clean:.3}, level 99: {noisy:.3}");
    assert!(late < early, "cross-entropy did not decrease");
    assert!(clean >= 0.8, "accuracy {clean} at low noise (chance 0.25)");
    assert!(noisy < clean, "pure-noise inputs should be harder");
}
