//! Training by denoising score matching (method.md §1.3): a compact custom loop rather than
//! burn-train's `Learner`, because the energy loss differentiates an explicit input-VJP, the EMA
//! must travel with the weights, and exact resumption needs every random draw keyed by step.

pub mod checkpoint;
pub mod classifier;
pub mod config;
pub mod dashboard;
pub mod data;
pub mod data_parallel;
pub mod dsm;
pub mod ema;
pub mod error;
pub mod experiment;
pub mod export;
pub mod fid_eval;
pub mod optim;
pub mod optim_weights;
pub mod report;
pub mod run;
pub mod run_dir;
pub mod state;
pub mod train;
pub mod train_dir;

pub use checkpoint::{CheckpointError, latest_checkpoint, load_checkpoint, read_state};
pub use classifier::{ClassifierSummary, train_classifier_to_dir};
pub use config::ExperimentConfig;
pub use dsm::{LossWeighting, NoisedBatch, dsm_loss, dsm_loss_weighted, noise_batch};
pub use ema::{Ema, EmaSchedule};
pub use error::{NonFinite, RunError};
pub use experiment::{
    Toy2dEval, Toy2dResult, draw_samples, evaluate_toy2d, run_toy2d, sampling_config, toy2d_source,
};
pub use optim::{GradNorms, OptimizerKind, OptimizerSettings};
pub use run::{RunOptions, RunOutcome, train_run};
pub use run_dir::{LoadedClassifier, LoadedRun, RunDir, load_components};
pub use state::TrainState;
pub use train::{
    Batch, BatchSource, Control, StepReport, Toy2dSource, TrainOptions, train_dsm, train_dsm_on,
};
pub use train_dir::{Trained, train_to_dir, write_grid};
