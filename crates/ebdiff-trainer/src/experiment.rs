//! One complete 2-D experiment: train on the toy, sample with the EMA weights, and score the
//! samples against the exact target. `cargo xtask train` and the acceptance test share it.

use crate::config::ExperimentConfig;
use crate::train::{StepReport, TrainOptions, TrainOutcome, train_dsm};
use burn::tensor::Device;
use ebdiff_core::rng::stream;
use ebdiff_eval::{LogDensityReport, log_density_gap};
use ebdiff_sampler::{AncestralOptions, sample_ancestral};

pub struct Toy2dResult {
    pub outcome: TrainOutcome,
    /// EMA-model samples, flat `[n, 2]`.
    pub samples: Vec<f32>,
    /// As many exact samples of the target, flat `[n, 2]`.
    pub exact: Vec<f32>,
    pub report: LogDensityReport,
}

/// Runs the experiment on `device` (a plain device; training uses its autodiff twin).
pub fn run_toy2d(
    cfg: &ExperimentConfig,
    device: &Device,
    on_step: impl FnMut(StepReport),
) -> Toy2dResult {
    device.seed(cfg.run.seed);
    let schedule = cfg.diffusion.build();
    let model = cfg.model.init(schedule.len(), &device.clone().autodiff());
    let mut target = cfg.data.build();
    let opts = TrainOptions {
        steps: cfg.train.steps,
        batch_size: cfg.train.batch_size,
        lr: cfg.train.lr,
        lr_schedule: cfg.train.lr_schedule,
        warmup_steps: cfg.train.warmup_steps,
        ema_decay: cfg.train.ema_decay,
        seed: cfg.run.seed,
    };
    let outcome = train_dsm(model, &schedule, &mut target, &opts, on_step);
    let n = cfg.sample.count;
    let samples = sample_ancestral(
        &outcome.ema.model,
        &schedule,
        n,
        None,
        &AncestralOptions {
            variance: cfg.sample.variance,
            clip_x0: None,
            seed: cfg.run.seed,
        },
        device,
        |_| {},
    );
    let samples: Vec<f32> = samples
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 samples");
    let exact = target.sample(n, &mut stream(cfg.run.seed, "exact-reference"));
    let report = log_density_gap(&target, &samples, &exact);
    Toy2dResult {
        outcome,
        samples,
        exact,
        report,
    }
}
