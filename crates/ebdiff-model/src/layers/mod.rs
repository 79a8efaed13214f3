//! Layers with a forward pass and an explicit input vector-jacobian product (VJP).
//!
//! Contract for every layer (the traits in [`crate::vjp`]): `forward_cached(x, ctx)` returns the
//! output and a typed cache, and `vjp(cache, g)` returns gᵀ·∂y/∂x, written in ordinary Burn tensor
//! ops so that first-order autodiff can differentiate it with respect to the parameters. Nothing
//! in a cache may be detached. Every layer a backbone reaches is checked against Burn's own input
//! gradient and against finite differences by the generic checks in `gradcheck`.

pub mod activation;
pub mod attention;
pub mod conditioning;
pub mod conv;
pub mod embedding;
pub mod linear;
pub mod norm;
pub mod resample;

pub use activation::{Silu, silu, silu_vjp};
pub use attention::{AttentionBlock, AttentionCache, SelfAttention, Tokens};
pub use conditioning::{Dropout, Shift, TimeContext};
pub use conv::Conv2d;
pub use embedding::{ClassEmbedding, TimeMlp, sinusoidal_embedding};
pub use linear::Linear;
pub use norm::{GroupNorm, LayerNorm, NormCache};
pub use resample::{
    AvgPool2, Downsample, DownsampleKind, NearestUpsample2, Upsample, concat_channels_vjp,
};

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
