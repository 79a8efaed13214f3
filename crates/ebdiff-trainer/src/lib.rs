//! Training by denoising score matching (method.md §1.3): a compact custom loop, because the
//! energy loss differentiates an explicit input-VJP and the EMA must travel with the weights.

pub mod config;
pub mod dsm;
pub mod ema;
pub mod experiment;
pub mod train;

pub use config::ExperimentConfig;
pub use dsm::{NoisedBatch, dsm_loss, noise_batch};
pub use ema::Ema;
pub use experiment::{Toy2dResult, run_toy2d};
pub use train::{BatchSource, StepReport, TrainOptions, TrainOutcome, train_dsm};
