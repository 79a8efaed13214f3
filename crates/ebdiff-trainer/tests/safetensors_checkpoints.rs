//! Checkpoints as safetensors: identical states give identical bytes, a committed format-1
//! (`.bpk`) checkpoint still loads and continues exactly after conversion, and weights that do
//! not fit are refused naming the file and every tensor that differs.

mod common;
use common::flat;

use burn::tensor::Device;
use ebdiff_core::module_weights::{WeightsError, load_module, named_tensors, save_module};
use ebdiff_core::safetensors::SafeTensors;
use ebdiff_trainer::checkpoint::{CheckpointMeta, load_checkpoint, write_checkpoint};
use ebdiff_trainer::{
    Control, Ema, ExperimentConfig, RunOptions, TrainState, toy2d_source, train_dsm, train_run,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebdiff-st-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

#[test]
fn identical_training_states_give_byte_identical_checkpoints() {
    let cfg = ExperimentConfig::load(&repo("configs/tiny/toy2d.toml")).unwrap();
    let dirs = [scratch("bytes-a"), scratch("bytes-b")];
    for dir in &dirs {
        let opts = RunOptions {
            out: dir.clone(),
            resume: false,
            stop: Arc::new(AtomicBool::new(false)),
            group: ebdiff_core::collective::solo(),
        };
        train_run(
            &cfg,
            &toy2d_source(&cfg),
            &Device::flex(),
            &opts,
            |_| {},
            |_| {},
        )
        .unwrap();
    }
    let ckpt = |d: &Path| d.join("checkpoints/step-00000012");
    for name in ["model.safetensors", "ema.safetensors", "optim.safetensors"] {
        let (a, b) = (
            std::fs::read(ckpt(&dirs[0]).join(name)).unwrap(),
            std::fs::read(ckpt(&dirs[1]).join(name)).unwrap(),
        );
        assert_eq!(a, b, "{name} differs between two identical runs");
        // A file is readable as safetensors and holds what the state says.
        let file = SafeTensors::parse(&a, Path::new(name)).unwrap();
        assert!(!file.tensors.is_empty(), "{name} is empty");
    }
    let state = |d: &Path| std::fs::read_to_string(ckpt(d).join("state.json")).unwrap();
    let digests =
        |s: String| serde_json::from_str::<serde_json::Value>(&s).unwrap()["files"].clone();
    assert_eq!(digests(state(&dirs[0])), digests(state(&dirs[1])));
    // The optimizer file names each moment by its parameter's path.
    let optim = SafeTensors::read(&ckpt(&dirs[0]).join("optim.safetensors")).unwrap();
    assert!(
        optim
            .tensors
            .keys()
            .any(|k| k.starts_with("backbone.input.weight/")),
        "{:?}",
        optim.tensors.keys().collect::<Vec<_>>()
    );
    for d in dirs {
        std::fs::remove_dir_all(d).ok();
    }
}

/// The committed 2-D run `rect-1.4x1.4-bg` was written before safetensors (format 1, `.bpk`);
/// its step-2000 checkpoint is committed as `tests/fixtures/format1-checkpoint`. It loads;
/// written again as format 2 and loaded back, model, EMA and optimizer moments are the same:
/// three more training steps from either give identical weights (with lost moments Adam's next
/// update would differ).
#[test]
fn committed_bpk_checkpoint_loads_and_continues_identically_after_conversion() {
    let run = repo("experiments/sweeps/smc2d/models/rect-1.4x1.4-bg");
    let old = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1-checkpoint");
    let mut cfg = ExperimentConfig::load(&run.join("config.toml")).unwrap();
    let schedule = cfg.diffusion.build();
    let device = Device::flex();
    let load = |dir: &Path, cfg: &ExperimentConfig| {
        let opts = cfg.train_options();
        load_checkpoint(
            dir,
            &cfg.model,
            schedule.len(),
            &device,
            opts.optimizer.init(),
        )
        .unwrap()
    };
    let v1 = load(&old, &cfg);
    assert_eq!((v1.state.format, v1.state.step), (1, 2000));
    let out = scratch("convert");
    let written = write_checkpoint(
        &out,
        CheckpointMeta {
            step: v1.state.step,
            examples_seen: v1.state.examples_seen,
            ema_updates: v1.state.ema_updates,
            seed: v1.state.seed,
            config: &v1.state.config,
            git_revision: None,
        },
        &v1.model,
        &v1.ema,
        &v1.optim,
        2,
    )
    .unwrap();
    let v2 = load(&written, &cfg);
    assert_eq!(v2.state.format, 2);
    assert_eq!(flat(&v1.model), flat(&v2.model), "live weights changed");
    assert_eq!(flat(&v1.ema), flat(&v2.ema), "EMA changed");

    cfg.train.steps = 2003;
    let opts = cfg.train_options();
    let source = toy2d_source(&cfg);
    let continue_from = |r: ebdiff_trainer::checkpoint::Restored| {
        let state = TrainState {
            model: r.model,
            ema: Ema {
                model: r.ema,
                updates: r.state.ema_updates,
            },
            optim: r.optim,
            step: r.state.step,
            examples_seen: r.state.examples_seen,
        };
        let (state, result) = train_dsm(state, &schedule, &source, &opts, |_, _| Control::Continue);
        result.unwrap();
        assert_eq!(state.step, 2003);
        (flat(&state.model), flat(&state.ema.model))
    };
    let (a, b) = (continue_from(v1), continue_from(v2));
    assert_eq!(
        a, b,
        "training continues differently from the converted checkpoint"
    );
    // A fresh optimizer (moments lost) does not: the comparison above can fail.
    let mut fresh = load(&written, &cfg);
    fresh.optim = opts.optimizer.init();
    assert_ne!(
        continue_from(fresh).0,
        a.0,
        "the moments made no difference"
    );
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn weights_that_do_not_fit_are_refused_naming_file_and_tensors() {
    let cfg = ExperimentConfig::load(&repo("configs/tiny/toy2d.toml")).unwrap();
    let device = Device::flex();
    let model = ebdiff_model::seeded_init(&device, 3, || cfg.model.init(20, &device));
    let dir = scratch("mismatch");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ema.safetensors");
    save_module(&model, &path, Default::default()).unwrap();
    // Round trip first: the same values come back.
    let back = load_module(cfg.model.init(20, &device), &path).unwrap();
    assert_eq!(flat(&back), flat(&model));

    // A wider model: every shape that differs is listed with both shapes.
    let mut wide = cfg.model.clone();
    if let ebdiff_model::BackboneConfig::Mlp2d { hidden, .. } = &mut wide.backbone {
        *hidden = 24;
    }
    let err = load_module(wide.init(20, &device), &path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("`backbone.input.weight`: module [2, 24], file [2, 16]"),
        "{msg}"
    );
    let WeightsError::Mismatch { found, .. } = err else {
        panic!("{msg}")
    };
    assert_eq!(found.shapes.len(), named_tensors(&model).len() - 2, "{msg}");

    // A renamed tensor: missing under the old name, unexpected under the new one.
    let mut file = SafeTensors::read(&path).unwrap();
    let t = file.tensors.remove("backbone.output.bias").unwrap();
    file.tensors.insert("backbone.out.bias".into(), t);
    file.write(&path).unwrap();
    let msg = load_module(cfg.model.init(20, &device), &path)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("missing from the file: `backbone.output.bias`")
            && msg.contains("not in the module: `backbone.out.bias`"),
        "{msg}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// `train.init_from` (`--init-from`): a run started from a file equals the run whose random
/// initialization wrote that file, and a file that does not fit stops the run naming it.
#[test]
fn init_from_starts_from_the_file_and_refuses_one_that_does_not_fit() {
    let cfg = ExperimentConfig::load(&repo("configs/tiny/toy2d.toml")).unwrap();
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let dir = scratch("init-from");
    std::fs::create_dir_all(&dir).unwrap();
    let init_file = |seed: u64| {
        let model = ebdiff_model::seeded_init(&ad, seed, || cfg.model.init(20, &ad));
        let path = dir.join(format!("init-{seed}.safetensors"));
        save_module(&model, &path, Default::default()).unwrap();
        path
    };
    let train = |cfg: &ExperimentConfig, name: &str| {
        let opts = RunOptions {
            out: dir.join(name),
            resume: false,
            stop: Arc::new(AtomicBool::new(false)),
            group: ebdiff_core::collective::solo(),
        };
        train_run(cfg, &toy2d_source(cfg), &device, &opts, |_| {}, |_| {})
    };
    let random = train(&cfg, "random").unwrap();
    let mut from_file = cfg.clone();
    from_file.train.init_from = Some(init_file(cfg.run.seed));
    let same = train(&from_file, "same").unwrap();
    assert_eq!(same.losses, random.losses);
    assert_eq!(flat(&same.state.model), flat(&random.state.model));
    from_file.train.init_from = Some(init_file(cfg.run.seed + 1));
    let other = train(&from_file, "other").unwrap();
    // (Not the first loss: the zero-initialized output layer hides the other weights there.)
    assert_ne!(
        other.losses, random.losses,
        "the file's weights were not used"
    );

    let mut wide = cfg.clone();
    if let ebdiff_model::BackboneConfig::Mlp2d { hidden, .. } = &mut wide.model.backbone {
        *hidden = 24;
    }
    wide.train.init_from = Some(init_file(1));
    let msg = train(&wide, "wide").err().expect("refused").to_string();
    assert!(
        msg.contains("init-1.safetensors") && msg.contains("`backbone.input.weight`"),
        "{msg}"
    );
    std::fs::remove_dir_all(dir).ok();
}
