//! EMA arithmetic, the learning-rate schedule, and weight files round-tripping.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use ebdiff_core::rng::stream;
use ebdiff_model::ModelConfig;
use ebdiff_model::gradcheck::{perturb_parameters, randn, random_conditioning, to_vec};
use ebdiff_trainer::train::LrSchedule;
use ebdiff_trainer::{Ema, TrainOptions};

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

struct Flatten(Vec<f64>);
impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.extend(to_vec(param.val()));
    }
}

fn flat(m: &impl Module) -> Vec<f64> {
    let mut f = Flatten(Vec::new());
    m.visit(&mut f);
    f.0
}

#[test]
fn ema_update_blends_every_parameter() {
    let device = Device::flex().autodiff();
    let mut rng = stream(1, "ema");
    let model = tiny_mlp().init(10, &device);
    let mut ema = Ema::new(&model, 0.9);
    let moved = perturb_parameters(model, 0.3, &mut rng);
    let (before, live) = (flat(&ema.model), flat(&moved));
    assert!(
        before.iter().zip(&live).any(|(a, b)| (a - b).abs() > 1e-3),
        "perturbation did nothing"
    );
    ema.update(&moved);
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
        batch_size: 1,
        lr: 1.0,
        lr_schedule: LrSchedule::Cosine,
        warmup_steps: 10,
        ema_decay: 0.0,
        seed: 0,
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
fn weights_round_trip_through_a_burnpack_file() {
    let device = Device::flex();
    let mut rng = stream(2, "bpk");
    let cfg = tiny_mlp();
    let model = perturb_parameters(cfg.init(10, &device), 0.2, &mut rng);
    let dir = std::env::temp_dir().join(format!("ebdiff-bpk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.bpk");
    model.clone().save_file(&path).unwrap();
    let loaded = cfg.init(10, &device).try_load_file(&path).unwrap();
    let x = randn(&mut rng, [5, 2], &device);
    let cond = random_conditioning(&mut rng, 5, 10, None, &device);
    assert_eq!(
        to_vec(model.eps(x.clone(), &cond)),
        to_vec(loaded.eps(x, &cond))
    );
    std::fs::remove_dir_all(&dir).ok();
}
