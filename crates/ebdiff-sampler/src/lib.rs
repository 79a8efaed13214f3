//! Samplers. One entry point, [`sample`], runs any sampler a [`SamplingConfig`] names on any
//! [`Target`] (a model, an oracle, or a composition tree built by [`Components::build`]) and
//! returns one [`SampleResult`]. Every sampler takes an options struct, a
//! [`ebdiff_core::NoiseSchedule`] kept apart from the solver, and reports each level through one
//! callback type, [`Progress`].

pub mod analytic;
pub mod ancestral;
pub mod annealed;
pub mod components;
pub mod composition;
pub mod config;
pub mod mcmc;
pub mod normalizers;
pub mod oracle;
pub mod progress;
pub mod resample;
pub mod sample;
pub mod smc;
pub mod step_law;
pub mod step_size;
pub mod target;

pub use ancestral::{
    AncestralOptions, DdimOptions, Variance, ddim_step, reverse_step, sample_ancestral, sample_ddim,
};
pub use annealed::{
    AnnealMode, AnnealedOptions, AnnealedRun, LevelDiagnostics, TuneOptions, sample_annealed,
};
pub use components::{Component, Components};
pub use composition::{Composition, CompositionError};
pub use config::{CompositionSpec, ModelSource, SamplerConfig, SamplerKind, SamplingConfig};
pub use oracle::{ExactModel, OracleError, OracleTarget};
pub use progress::Progress;
pub use sample::{SampleError, SampleResult, sample};
pub use smc::{SmcDiagnostics, SmcOptions, SmcRun, SmcWeights, sample_smc};
pub use step_size::LevelSchedule;
pub use target::{
    Chunked, ClassifierTarget, Evaluation, Labels, ModelTarget, Respaced, ScoreTerm, Target,
    TargetAsEps,
};
