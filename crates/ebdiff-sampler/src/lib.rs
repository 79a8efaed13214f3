//! Samplers. Every sampler takes any [`ebdiff_model::EpsModel`], a [`ebdiff_core::NoiseSchedule`]
//! (kept separate from the solver), a seed, and a per-level callback for progress/diagnostics.

pub mod ancestral;

pub use ancestral::{AncestralOptions, LevelInfo, Variance, sample_ancestral};
