//! Layers with a forward pass and an explicit input vector-jacobian product (VJP).
//!
//! Contract for every layer: `vjp(cache, g)` returns gᵀ·∂y/∂x, written in ordinary Burn tensor
//! ops so that first-order autodiff can differentiate it with respect to the parameters. Nothing
//! in a cache may be detached. Each VJP is checked against Burn's own input gradient and against
//! finite differences in `tests/`.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod embedding;
pub mod linear;
pub mod norm;
pub mod resample;

pub use activation::{silu, silu_vjp};
pub use attention::{AttentionBlock, AttentionCache};
pub use conv::Conv2d;
pub use embedding::{ClassEmbedding, TimeMlp, sinusoidal_embedding};
pub use linear::Linear;
pub use norm::{GroupNorm, LayerNorm, NormCache};
pub use resample::{Downsample, DownsampleKind, Upsample, concat_channels_vjp};

/// PyTorch-default initialization U(±1/√fan_in), or zeros for output layers that should start
/// silent (so a fresh energy model has a known energy).
pub(crate) fn default_init(fan_in: usize, zero: bool) -> burn::nn::Initializer {
    if zero {
        burn::nn::Initializer::Zeros
    } else {
        let bound = 1.0 / (fan_in as f64).sqrt();
        burn::nn::Initializer::Uniform {
            min: -bound,
            max: bound,
        }
    }
}
