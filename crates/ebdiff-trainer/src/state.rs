//! What a training run carries from one step to the next (weights, EMA, optimizer, counters):
//! what a checkpoint saves, and what every rank of a data-parallel run holds identically.

use crate::ema::Ema;
use crate::optim::OptimizerSettings;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use ebdiff_model::DiffusionModel;

/// The whole mutable state of a run.
pub struct TrainState {
    /// Live weights, on an autodiff device.
    pub model: DiffusionModel,
    pub ema: Ema,
    pub optim: ModuleOptimizer,
    /// Optimizer steps completed.
    pub step: u64,
    pub examples_seen: u64,
}

impl TrainState {
    pub fn new(model: DiffusionModel, optimizer: &OptimizerSettings) -> Self {
        assert!(
            model.devices()[0].is_autodiff(),
            "training needs the model on an autodiff device"
        );
        TrainState {
            ema: Ema::new(&model),
            model,
            optim: optimizer.init(),
            step: 0,
            examples_seen: 0,
        }
    }
}
