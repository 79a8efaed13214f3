//! A compact DSM training loop: sample a batch, noise it, ε-loss, Adam step, EMA update.

use crate::dsm::{dsm_loss, noise_batch};
use crate::ema::Ema;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use ebdiff_core::NoiseSchedule;
use ebdiff_core::rng::stream;
use ebdiff_model::DiffusionModel;
use rand::rngs::StdRng;
use std::time::Instant;

/// Where training examples come from. Returns `batch` examples, flat `[batch, dim]`.
pub trait BatchSource {
    fn dim(&self) -> usize;
    fn next_batch(&mut self, batch: usize, rng: &mut StdRng) -> Vec<f32>;
}

impl BatchSource for ebdiff_data::Toy2d {
    fn dim(&self) -> usize {
        2
    }
    fn next_batch(&mut self, batch: usize, rng: &mut StdRng) -> Vec<f32> {
        self.sample(batch, rng)
    }
}

/// Learning-rate shape after the linear warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    #[default]
    Constant,
    /// Half-cosine from the peak to 0 at the last step.
    Cosine,
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub lr_schedule: LrSchedule,
    pub warmup_steps: usize,
    pub ema_decay: f64,
    pub seed: u64,
}

/// Reported after every step.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub seconds: f64,
}

pub struct TrainOutcome {
    pub model: DiffusionModel,
    pub ema: Ema,
    pub losses: Vec<f64>,
}

impl TrainOptions {
    /// Learning rate at 0-based `step`: linear warm-up, then constant or half-cosine to 0.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.lr_schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine => {
                let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let u = (step - self.warmup_steps) as f64 / span;
                0.5 * self.lr * (1.0 + (std::f64::consts::PI * u).cos())
            }
        }
    }
}

/// Trains `model` (which must live on an autodiff device) and returns it with its EMA.
pub fn train_dsm(
    mut model: DiffusionModel,
    schedule: &NoiseSchedule,
    source: &mut impl BatchSource,
    opts: &TrainOptions,
    mut on_step: impl FnMut(StepReport),
) -> TrainOutcome {
    let device = model.devices()[0].clone();
    assert!(
        device.is_autodiff(),
        "train_dsm needs the model on an autodiff device"
    );
    let mut optim = AdamConfig::new().init();
    let mut ema = Ema::new(&model, opts.ema_decay);
    let mut data_rng = stream(opts.seed, "train-data");
    let mut noise_rng = stream(opts.seed, "train-noise");
    let mut losses = Vec::with_capacity(opts.steps);
    let start = Instant::now();
    for step in 0..opts.steps {
        let x0 = source.next_batch(opts.batch_size, &mut data_rng);
        let batch = noise_batch(&x0, source.dim(), schedule, &mut noise_rng, &device);
        let loss = dsm_loss(&model, &batch);
        let grads = loss.backward();
        let loss_value = loss.into_scalar::<f64>();
        let grads = GradientsParams::from_grads(grads, &model);
        let lr = opts.lr_at(step);
        model = optim.step(lr, model, grads);
        ema.update(&model);
        losses.push(loss_value);
        on_step(StepReport {
            step,
            loss: loss_value,
            lr,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    TrainOutcome { model, ema, losses }
}
