//! Benchmarks of ebdiff, the library behind `cargo xtask bench`: each takes its options, a
//! [`ebdiff_core::NamedDevice`] and a writer for the table it prints, and returns its numbers
//! (what `--json` writes).
//!
//! - [`train_step`]: one DSM optimizer step, score vs energy parameterization of the same
//!   network, with FLOPs counted from the architecture, optionally beside PyTorch's step and a
//!   `perf` profile by op kind, phase, layer and kernel ([`profile`]);
//! - [`eval`]: one sampling-time evaluation (energy and ∇ₓE, no autodiff) per batch size;
//! - [`data_parallel`]: a data-parallel step and its gradient all-reduce over a
//!   [`ebdiff_core::Collective`] group, and the bare all-reduce by size;
//! - [`fid_features`]: images/s of the FID network, and its features beside PyTorch's.
//!
//! The PyTorch comparisons run `scripts/bench/torch_bench.py` from the working directory (the
//! repository root) with the Python given.

pub mod data_parallel;
pub mod eval;
pub mod fid_features;
mod json_file;
pub mod profile;
mod timing;
mod torch;
pub mod train_step;

pub use data_parallel::{DataParallelOptions, DataParallelReport, data_parallel};
pub use eval::{EvalOptions, EvalReport, eval};
pub use fid_features::{FidFeaturesOptions, FidFeaturesReport, fid_features};
pub use train_step::{TrainStepOptions, TrainStepReport, train_step};
