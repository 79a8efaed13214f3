//! Samplers. Every sampler takes any [`ebdiff_model::EpsModel`], a [`ebdiff_core::NoiseSchedule`]
//! (kept separate from the solver), a seed, and a per-level callback for progress/diagnostics.

pub mod analytic;
pub mod ancestral;
pub mod annealed;
pub mod composition;
pub mod config;
pub mod mcmc;
pub mod oracle;
pub mod step_size;
pub mod target;

pub use ancestral::{
    AncestralOptions, LevelInfo, Variance, ddim_step, reverse_step, sample_ancestral, sample_ddim,
};
pub use annealed::{
    AnnealMode, AnnealedOptions, AnnealedRun, KernelKind, LevelDiagnostics, TuneOptions,
    sample_annealed,
};
pub use composition::{Composition, CompositionError};
pub use config::{CompositionSpec, SamplerConfig, SamplerKind, SamplingConfig};
pub use oracle::{ExactModel, OracleError, OracleTarget};
pub use step_size::LevelSchedule;
pub use target::{ClassifierTarget, Evaluation, ModelTarget, Target, TargetAsEps};
