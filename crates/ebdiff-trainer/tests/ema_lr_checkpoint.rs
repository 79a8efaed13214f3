//! EMA arithmetic, the learning-rate schedule, and weight files round-tripping.

mod common;
use common::flat;

use burn::module::Module;
use burn::tensor::Device;
use ebdiff_core::module_weights::{load_module, save_module};
use ebdiff_core::rng::stream;
use ebdiff_model::ModelConfig;
use ebdiff_model::gradcheck::{perturb_parameters, randn, random_conditioning, to_vec};
use ebdiff_trainer::train::LrSchedule;
use ebdiff_trainer::{Ema, EmaSchedule, ExperimentConfig, TrainOptions};

fn tiny_mlp() -> ModelConfig {
    ebdiff_core::parse_toml(
        r#"
parameterization = "energy"
data_shape = [2]
[backbone]
kind = "mlp2d"
hidden = 8
blocks = 1
emb_dim = 4
"#,
        "tiny",
    )
    .unwrap()
}

fn tiny_experiment() -> ExperimentConfig {
    ExperimentConfig::parse(
        r#"
[run]
name = "t"
[data]
kind = "ring"
[diffusion]
kind = "cosine"
timesteps = 10
[model]
parameterization = "energy"
data_shape = [2]
[model.backbone]
kind = "mlp2d"
hidden = 8
blocks = 1
emb_dim = 4
[train]
steps = 10
batch_size = 4
"#,
        "tiny",
    )
    .unwrap()
}

#[test]
fn ema_half_life_halves_after_the_half_life_and_ramps_up() {
    let s = EmaSchedule::HalfLife {
        examples: 1000.0,
        rampup_ratio: None,
    };
    // Ten steps of 100 examples = one half-life: β¹⁰ = ½.
    assert!((s.beta(100, 10_000).powi(10) - 0.5).abs() < 1e-12);
    let ramped = EmaSchedule::HalfLife {
        examples: 1000.0,
        rampup_ratio: Some(0.1),
    };
    // After 2000 examples the ramp caps the half-life at 200 examples.
    assert!((ramped.beta(100, 2000) - 0.5f64.powf(0.5)).abs() < 1e-12);
    assert_eq!(ramped.beta(100, 1_000_000), s.beta(100, 1_000_000));
    assert_eq!(EmaSchedule::Decay(0.99).beta(7, 3), 0.99);
}

#[test]
fn ema_update_blends_every_parameter() {
    let device = Device::flex().autodiff();
    let mut rng = stream(1, "ema");
    let model = tiny_mlp().init(10, &device);
    let mut ema = Ema::new(&model);
    let moved = perturb_parameters(model, 0.3, &mut rng);
    let (before, live) = (flat(&ema.model), flat(&moved));
    assert!(
        before.iter().zip(&live).any(|(a, b)| (a - b).abs() > 1e-3),
        "perturbation did nothing"
    );
    ema.update(&moved, 0.9);
    let after = flat(&ema.model);
    assert_eq!(after.len(), live.len());
    for ((a, b), e) in before.iter().zip(&live).zip(&after) {
        assert!(
            (0.9 * a + 0.1 * b - e).abs() < 1e-6,
            "{e} ≠ 0.9·{a} + 0.1·{b}"
        );
    }
    assert_eq!(ema.updates, 1);
    assert!(
        !ema.model.devices()[0].is_autodiff(),
        "the EMA copy must live on the inference device"
    );
}

#[test]
fn learning_rate_warms_up_then_follows_a_half_cosine() {
    let opts = TrainOptions {
        steps: 110,
        lr: 1.0,
        lr_schedule: LrSchedule::Cosine,
        warmup_steps: 10,
        ..tiny_experiment().train_options()
    };
    assert!((opts.lr_at(0) - 0.1).abs() < 1e-12 && (opts.lr_at(9) - 1.0).abs() < 1e-12);
    assert!((opts.lr_at(10) - 1.0).abs() < 1e-12);
    assert!(
        (opts.lr_at(60) - 0.5).abs() < 1e-12,
        "half-way through the cosine: {}",
        opts.lr_at(60)
    );
    assert!(opts.lr_at(109) < 1e-3);
    let constant = TrainOptions {
        lr_schedule: LrSchedule::Constant,
        ..opts
    };
    assert_eq!(constant.lr_at(100), 1.0);
}

#[test]
fn weights_round_trip_through_a_safetensors_file() {
    let device = Device::flex();
    let mut rng = stream(2, "bpk");
    let cfg = tiny_mlp();
    let model = perturb_parameters(cfg.init(10, &device), 0.2, &mut rng);
    let dir = std::env::temp_dir().join(format!("ebdiff-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    save_module(&model, &path, Default::default()).unwrap();
    let loaded = load_module(cfg.init(10, &device), &path).unwrap();
    let x = randn(&mut rng, [5, 2], &device);
    let cond = random_conditioning(&mut rng, 5, 10, None, &device);
    assert_eq!(
        to_vec(model.eps(x.clone(), &cond)),
        to_vec(loaded.eps(x, &cond))
    );
    std::fs::remove_dir_all(&dir).ok();
}
