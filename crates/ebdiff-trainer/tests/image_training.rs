//! Image training: the shipped configs parse, data errors say what to do, and a class-conditional
//! UNet with dropout and null-label dropout resumes exactly (every random draw keyed by step).

mod common;
use common::flat;

use burn::tensor::Device;
use ebdiff_trainer::config::DataConfig;
use ebdiff_trainer::data::ImageSource;
use ebdiff_trainer::{ExperimentConfig, RunOptions, train_run};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn shipped_configs_parse_and_validate() {
    for name in [
        "toy2d",
        "toy2d-bar",
        "mnist",
        "cifar",
        "shapes",
        "tiny/toy2d",
        "tiny/shapes",
    ] {
        let cfg = ExperimentConfig::load(&repo(&format!("configs/{name}.toml")))
            .unwrap_or_else(|e| panic!("configs/{name}.toml: {e}"));
        let is_image = matches!(cfg.data, DataConfig::Image(_));
        assert_eq!(is_image, cfg.model.data_shape.len() == 3, "{name}");
    }
}

fn tiny_shapes() -> String {
    std::fs::read_to_string(repo("configs/tiny/shapes.toml")).unwrap()
}

#[test]
fn data_kind_errors_name_the_key_and_the_choices() {
    let bad_kind = tiny_shapes().replace("kind = \"shapes\"", "kind = \"svhn\"");
    let msg = ExperimentConfig::parse(&bad_kind, "x.toml")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("svhn") && msg.contains("cifar10") && msg.contains("ring"),
        "{msg}"
    );
    let bad_key = tiny_shapes().replace("max_objects = 2", "max_object = 2");
    let msg = ExperimentConfig::parse(&bad_key, "x.toml")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`max_object`") && msg.contains("`max_objects`") && msg.contains("data"),
        "{msg}"
    );
    let toy_shape = tiny_shapes().replace("data_shape = [3, 16, 16]", "data_shape = [2]");
    let msg = ExperimentConfig::parse(&toy_shape, "x.toml")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("model.data_shape"), "{msg}");
}

#[test]
fn cifar_config_without_the_data_says_what_to_do() {
    let mut cfg = ExperimentConfig::load(&repo("configs/cifar.toml")).unwrap();
    let empty = std::env::temp_dir().join(format!("ebdiff-no-cifar-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let DataConfig::Image(ebdiff_data::image::ImageDataConfig::Cifar10 { root, download, .. }) =
        &mut cfg.data
    else {
        panic!("cifar.toml is not CIFAR-10")
    };
    *root = empty.clone();
    *download = false;
    let DataConfig::Image(data) = &cfg.data else {
        unreachable!()
    };
    let msg = data.build([3, 32, 32], false).unwrap_err().to_string();
    assert!(msg.contains("cargo xtask fetch cifar10"), "{msg}");
    assert!(msg.contains(&empty.display().to_string()), "{msg}");
    std::fs::remove_dir_all(&empty).ok();
}

#[test]
fn conditional_unet_with_dropout_resumes_exactly() {
    let cfg = ExperimentConfig::parse(&tiny_shapes(), "tiny-shapes.toml").unwrap();
    let DataConfig::Image(data) = &cfg.data else {
        unreachable!()
    };
    let dataset = Arc::new(data.build([3, 16, 16], false).unwrap());
    assert_eq!(dataset.num_classes, 4);
    let source = ImageSource::new(dataset, data, cfg.train.batch_size, cfg.run.seed, true).unwrap();
    let run = |out: &Path, resume: bool, stop_at: Option<u64>| {
        let stop = Arc::new(AtomicBool::new(false));
        let opts = RunOptions {
            out: out.to_path_buf(),
            resume,
            stop: stop.clone(),
            group: ebdiff_core::collective::solo(),
        };
        let mut snapshots = 0;
        let r = train_run(
            &cfg,
            &source,
            &Device::flex(),
            &opts,
            |r| {
                if Some(r.step) == stop_at {
                    stop.store(true, Ordering::SeqCst);
                }
            },
            |_| snapshots += 1,
        )
        .unwrap();
        (r, snapshots)
    };
    let tmp = |n: &str| {
        let d = std::env::temp_dir().join(format!("ebdiff-img-{n}-{}", std::process::id()));
        std::fs::remove_dir_all(&d).ok();
        d
    };
    let (whole_dir, split_dir) = (tmp("whole"), tmp("split"));
    let (whole, snaps) = run(&whole_dir, false, None);
    assert_eq!(snaps, 1, "one snapshot at the end");
    let (first, snaps) = run(&split_dir, false, Some(2));
    assert!(first.interrupted && first.state.step == 2);
    assert_eq!(snaps, 0, "no snapshot when interrupted");
    let (second, _) = run(&split_dir, true, None);
    let mut losses = first.losses.clone();
    losses.extend(&second.losses);
    assert_eq!(losses, whole.losses);
    assert_eq!(flat(&second.state.model), flat(&whole.state.model));
    assert_eq!(flat(&second.state.ema.model), flat(&whole.state.ema.model));
    assert!(whole.losses.iter().all(|l| l.is_finite()));
    std::fs::remove_dir_all(&whole_dir).ok();
    std::fs::remove_dir_all(&split_dir).ok();
}
