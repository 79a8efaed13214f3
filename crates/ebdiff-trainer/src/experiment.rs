//! One complete 2-D experiment: train on the toy, sample with the EMA weights, and score the
//! samples against the exact target. The acceptance test runs it in memory; `cargo xtask train`
//! runs the same loop through a run directory (`run.rs`) and then [`evaluate_toy2d`].

use crate::config::ExperimentConfig;
use crate::error::RunError;
use crate::state::TrainState;
use crate::train::{Control, StepReport, Toy2dSource, train_dsm};
use burn::tensor::Device;
use ebdiff_core::rng::stream;
use ebdiff_eval::{LogDensityReport, log_density_gap};
use ebdiff_model::DiffusionModel;
use ebdiff_sampler::{Labels, ModelTarget, SamplerConfig, SamplerKind, SamplingConfig, sample};

pub struct Toy2dResult {
    pub state: TrainState,
    pub losses: Vec<f64>,
    pub eval: Toy2dEval,
}

pub struct Toy2dEval {
    /// EMA-model samples, flat `[n, 2]`.
    pub samples: Vec<f32>,
    /// As many exact samples of the target, flat `[n, 2]`.
    pub exact: Vec<f32>,
    pub report: LogDensityReport,
}

fn toy(cfg: &ExperimentConfig) -> ebdiff_data::Toy2d {
    cfg.data
        .as_toy2d()
        .expect("a 2-D experiment needs a 2-D toy [data] kind")
        .build()
}

/// The training data of a 2-D config.
pub fn toy2d_source(cfg: &ExperimentConfig) -> Toy2dSource {
    Toy2dSource {
        toy: toy(cfg),
        seed: cfg.run.seed,
    }
}

/// The sampling config of the run's `[sample]` section: ancestral with its variance, respaced to
/// `sample.steps` levels when set, x̂₀ clipped to [−1, 1] for images.
pub fn sampling_config(cfg: &ExperimentConfig, count: usize, seed: u64) -> SamplingConfig {
    let levels = cfg.diffusion.timesteps();
    let mut sampler = SamplerConfig::new(SamplerKind::Ancestral);
    sampler.variance = cfg.sample.variance;
    sampler.respace = cfg.sample.steps.filter(|&s| s < levels);
    sampler.clip_x0 = (cfg.model.data_shape.len() == 3).then_some(1.0);
    SamplingConfig::new(sampler, count, seed)
}

/// `n` samples from `model` as `[sample]` configures it (see [`sampling_config`]), with one class
/// label per sample for conditional models when `labels` is given. Flat `[n, dim]`.
pub fn draw_samples(
    cfg: &ExperimentConfig,
    model: &DiffusionModel,
    n: usize,
    labels: Option<Vec<usize>>,
    seed: u64,
    device: &Device,
) -> Result<Vec<f32>, RunError> {
    let schedule = cfg.diffusion.build();
    let target = ModelTarget {
        model,
        schedule: &schedule,
        labels: labels.map_or(Labels::None, Labels::PerExample),
    };
    let run = sample(
        &sampling_config(cfg, n, seed),
        &target,
        &schedule,
        device,
        |_| {},
    )
    .map_err(|e| RunError::Sampling(e.to_string()))?;
    Ok(run.samples_vec())
}

/// Samples `sample.count` points from `ema` and scores them against the exact toy by the plain
/// (unfloored) mean log-density ([`log_density_gap`]; sweeps floor it, see
/// `ebdiff_eval::toy_metrics` for why each convention is used where).
pub fn evaluate_toy2d(
    cfg: &ExperimentConfig,
    ema: &DiffusionModel,
    device: &Device,
) -> Result<Toy2dEval, RunError> {
    let n = cfg.sample.count;
    let samples = draw_samples(cfg, ema, n, None, cfg.run.seed, device)?;
    let target = toy(cfg);
    let exact = target.sample(n, &mut stream(cfg.run.seed, "exact-reference"));
    let report = log_density_gap(&target, &samples, &exact);
    Ok(Toy2dEval {
        samples,
        exact,
        report,
    })
}

/// Trains in memory on `device` (its autodiff twin) and evaluates the EMA model.
pub fn run_toy2d(
    cfg: &ExperimentConfig,
    device: &Device,
    mut on_step: impl FnMut(&StepReport),
) -> Toy2dResult {
    let schedule = cfg.diffusion.build();
    let opts = cfg.train_options();
    let ad = device.clone().autodiff();
    let model =
        ebdiff_model::seeded_init(&ad, cfg.run.seed, || cfg.model.init(schedule.len(), &ad));
    let mut losses = Vec::with_capacity(cfg.train.steps);
    let (state, result) = train_dsm(
        TrainState::new(model, &opts.optimizer),
        &schedule,
        &toy2d_source(cfg),
        &opts,
        |r, _| {
            losses.push(r.loss);
            on_step(r);
            Control::Continue
        },
    );
    if let Err(e) = result {
        panic!("2-D training diverged: {e}");
    }
    let eval = evaluate_toy2d(cfg, &state.ema.model, device).expect("ancestral sampling");
    Toy2dResult {
        state,
        losses,
        eval,
    }
}
