//! A compact DSM training loop: batch(step) → noise → ε-loss → gradients → finiteness check →
//! global-norm clip → Adam(W) step → EMA update. Everything random is a pure function of
//! (seed, step), so a run resumed from a checkpoint continues bit-for-bit. On several ranks
//! ([`train_dsm_on`]) each differentiates its share of the same batch and the gradients are
//! summed before the clip ([`crate::data_parallel`]).

use crate::data_parallel::{all_reduce_gradients, any_rank};
use crate::dsm::{LossWeighting, dsm_loss_weighted, noise_batch};
use crate::ema::EmaSchedule;
use crate::error::NonFinite;
use crate::optim::{GradNorms, OptimizerSettings, clip_global_norm};
use crate::state::TrainState;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Device;
use ebdiff_core::rng::stream_at;
use ebdiff_core::{Collective, NoiseSchedule, Solo};
use ebdiff_model::DiffusionModel;
use std::time::Instant;

/// One training batch: `x` is `[B, dim]` row-major, `labels` one class per example.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub x: Vec<f32>,
    pub labels: Option<Vec<u32>>,
}

/// Where training examples come from. `batch(step, size)` must be a pure function of its
/// arguments (and the source's own seed): that is what makes resumption exact.
pub trait BatchSource {
    fn dim(&self) -> usize;
    fn batch(&self, step: u64, size: usize) -> Batch;
}

/// The 2-D toys draw fresh exact samples at every step.
pub struct Toy2dSource {
    pub toy: ebdiff_data::Toy2d,
    pub seed: u64,
}

impl BatchSource for Toy2dSource {
    fn dim(&self) -> usize {
        2
    }
    fn batch(&self, step: u64, size: usize) -> Batch {
        let mut rng = stream_at(self.seed, "train-data", step);
        Batch {
            x: self.toy.sample(size, &mut rng),
            labels: None,
        }
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
    /// Split each batch into this many micro-batches and sum their gradients (same update,
    /// less memory).
    pub grad_accum: usize,
    pub lr: f64,
    pub lr_schedule: LrSchedule,
    pub warmup_steps: usize,
    pub optimizer: OptimizerSettings,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    pub ema: EmaSchedule,
    pub loss_weighting: LossWeighting,
    /// Probability of replacing a label by the null label (classifier-free guidance).
    pub label_dropout: f64,
    /// Classes of a class-conditional model (the null label is `num_classes`).
    pub num_classes: Option<usize>,
    pub seed: u64,
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

/// Reported after every step.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// 1-based: steps completed.
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub ema_beta: f64,
    /// Seconds since this call of `train_dsm` started.
    pub seconds: f64,
}

/// What the per-step callback tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// Trains until `opts.steps` steps are done, the callback returns [`Control::Stop`] or a step
/// goes non-finite. The state is returned in every case (on error: as of the last good step).
pub fn train_dsm(
    state: TrainState,
    schedule: &NoiseSchedule,
    source: &impl BatchSource,
    opts: &TrainOptions,
    on_step: impl FnMut(&StepReport, &TrainState) -> Control,
) -> (TrainState, Result<(), NonFinite>) {
    train_dsm_on(&Solo, state, schedule, source, opts, on_step)
}

/// [`train_dsm`] on every rank of `group` at once (each rank calls it with the same arguments
/// and an identical state): rank r differentiates its share of each batch
/// ([`Collective::share`]), the gradients and losses are summed across ranks, and every rank
/// applies the same update. The callback runs on every rank; the loop stops on all ranks when
/// any callback returns [`Control::Stop`].
pub fn train_dsm_on(
    group: &dyn Collective,
    mut state: TrainState,
    schedule: &NoiseSchedule,
    source: &impl BatchSource,
    opts: &TrainOptions,
    mut on_step: impl FnMut(&StepReport, &TrainState) -> Control,
) -> (TrainState, Result<(), NonFinite>) {
    let device = state.model.devices()[0].clone();
    let start = Instant::now();
    let accum = opts.grad_accum.max(1);
    while (state.step as usize) < opts.steps {
        let step = state.step;
        // Reseeding, the graph, backward and the updates of this step, uninterrupted by other
        // threads' Burn work (see `ebdiff_core::burn_globals`); released before the callback.
        let exclusive = ebdiff_core::burn_globals::exclusive();
        let (grads, loss) = train_step(group, &state, step, schedule, source, opts, accum, &device);
        // Every rank takes part in the sum even when its loss is not finite, so that all ranks
        // see the same (non-finite) result and stop together.
        let (mut grads, loss) = if group.size() > 1 {
            all_reduce_gradients(group, &state.model, grads, loss)
        } else {
            (grads, loss)
        };
        if !loss.is_finite() {
            let err = NonFinite {
                step: step + 1,
                loss,
                tensor: "loss".into(),
            };
            return (state, Err(err));
        }
        let norms = GradNorms::compute(&state.model, &grads);
        if let Some(bad) = norms.first_non_finite() {
            let err = NonFinite {
                step: step + 1,
                loss,
                tensor: format!("gradient of {bad}"),
            };
            return (state, Err(err));
        }
        if let Some(max) = opts.grad_clip {
            clip_global_norm(&state.model, &mut grads, norms.global, max);
        }
        let lr = opts.lr_at(step as usize);
        state.model = state.optim.step(lr, state.model, grads);
        state.step += 1;
        state.examples_seen += opts.batch_size as u64;
        let beta = opts.ema.beta(opts.batch_size, state.examples_seen);
        state.ema.update(&state.model, beta);
        drop(exclusive);
        let report = StepReport {
            step: state.step,
            loss,
            lr,
            grad_norm: norms.global,
            ema_beta: beta,
            seconds: start.elapsed().as_secs_f64(),
        };
        let stop = on_step(&report, &state) == Control::Stop;
        if any_rank(group, stop) {
            break;
        }
    }
    (state, Ok(()))
}

/// Loss and summed gradients of this rank's share of one step (over its micro-batches), each
/// micro-batch weighted by its share of the global batch so that the sum over ranks is the
/// full-batch mean. A non-finite loss ends the step early with that loss.
#[allow(clippy::too_many_arguments)]
fn train_step(
    group: &dyn Collective,
    state: &TrainState,
    step: u64,
    schedule: &NoiseSchedule,
    source: &impl BatchSource,
    opts: &TrainOptions,
    accum: usize,
    device: &Device,
) -> (GradientsParams, f64) {
    // Dropout masks come from the backend RNG: reseed it per step for exact resumption.
    device.seed(stream_seed(opts.seed, step, group.rank()));
    // Every rank builds the whole batch (cheap next to the network) and keeps its share: the
    // union of the shares is exactly the single-process batch.
    let batch = source.batch(step, opts.batch_size);
    let dim = source.dim();
    let mut rng = stream_at(opts.seed, "train-noise", step);
    let labels = batch.labels.as_ref().map(|l| {
        l.iter()
            .map(|&y| {
                let null = opts.num_classes.unwrap_or(0) as u32;
                if opts.label_dropout > 0.0
                    && rand::Rng::random::<f64>(&mut rng) < opts.label_dropout
                {
                    null
                } else {
                    y
                }
            })
            .collect::<Vec<u32>>()
    });
    let noised = noise_batch(&batch.x, dim, labels.as_deref(), schedule, &mut rng, device);
    let b = opts.batch_size;
    let mine = group.share(b);
    let micro = mine.len().div_ceil(accum).max(1);
    let mut acc = GradientsAccumulator::<DiffusionModel>::new();
    let mut loss_sum = 0.0;
    let mut start = mine.start;
    while start < mine.end {
        let end = (start + micro).min(mine.end);
        let part = noised.slice(start, end);
        // Each micro-batch's mean loss, weighted by its share: the sum is the full-batch mean.
        let loss = dsm_loss_weighted(&state.model, &part, schedule, opts.loss_weighting)
            .mul_scalar((end - start) as f64 / b as f64);
        let grads = loss.backward();
        let value = loss.into_scalar::<f64>();
        loss_sum += value;
        if !value.is_finite() {
            break;
        }
        acc.accumulate(
            &state.model,
            GradientsParams::from_grads(grads, &state.model),
        );
        start = end;
    }
    (acc.grads(), loss_sum)
}

/// Seed of the backend RNG (dropout) at `step`; ranks draw different masks for their shares.
fn stream_seed(seed: u64, step: u64, rank: usize) -> u64 {
    let purpose = match rank {
        0 => "train-dropout".to_string(),
        r => format!("train-dropout-rank{r}"),
    };
    rand::Rng::random(&mut stream_at(seed, &purpose, step))
}
