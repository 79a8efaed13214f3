//! The model crate: energy-parameterized diffusion networks that train with first-order autodiff.
//!
//! Burn differentiates only once, yet an energy model is trained on its *input gradient*
//! ε̂ = ∇ₓE_θ. Every layer here therefore has an explicit vector-Jacobian product written in
//! ordinary, differentiable tensor ops (`layers`, under the traits and combinators of `vjp`),
//! each backbone chains them (`backbone`), and
//! the energy heads (`model`) turn a vector backbone g into a scalar energy whose input gradient
//! is an ordinary forward computation. `loss.backward()` then yields ∂loss/∂θ.
//!
//! Data is always passed flat as `[batch, dim]`; image backbones reshape internally. This keeps
//! samplers and compositions rank-agnostic.

pub mod backbone;
pub mod classifier;
pub mod config;
pub mod flops;
pub mod gradcheck;
pub mod layers;
mod materialize;
pub mod model;
pub mod traits;
pub mod vjp;

pub use classifier::{ClassifierConfig, NoisyClassifier};
pub use config::{BackboneConfig, EnergyFormKind, ModelConfig, ParameterizationKind};
pub use materialize::seeded_init;
pub use model::{DiffusionModel, EnergyForm, Parameterization};
pub use traits::{Conditioning, EnergyModel, EpsModel, log_density_from_energy, score_from_eps};
pub use vjp::{Layer, Visitor, Vjp};
