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
