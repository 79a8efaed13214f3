//! Vector-valued backbones g(x, t, y) with explicit input VJPs.

pub mod mlp2d;
pub mod unet;

pub use mlp2d::{MlpBlock, ResidualMlp, ResidualMlpCache, ResidualMlpShape};
pub use unet::{ResBlock, ResBlockCache, Unet, UnetCache, UnetShape};

use crate::traits::Conditioning;
use crate::vjp::{Plain, Visitor, Vjp};
use burn::module::Module;
use burn::tensor::Tensor;

// Boxing the UNet would change the module type that `.bpk` records are keyed by.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Backbone {
    Mlp2d(ResidualMlp),
    Unet(Unet),
}

/// The forward pass of a [`Backbone`], bound to the variant that produced it: each variant holds
/// the network with its own cache type, so a cache can only be pulled back through a network of
/// its kind. Pairing a UNet with an MLP cache does not compile:
///
/// ```compile_fail
/// use ebdiff_model::backbone::{BackboneCache, ResidualMlpCache, Unet};
/// fn pair<'a>(unet: &'a Unet, cache: ResidualMlpCache) -> BackboneCache<'a> {
///     BackboneCache::Unet(unet, Box::new(cache))
/// }
/// ```
///
/// and neither does the trait's VJP with the wrong cache:
///
/// ```compile_fail
/// use burn::tensor::Tensor;
/// use ebdiff_model::Vjp;
/// use ebdiff_model::backbone::{ResidualMlpCache, Unet};
/// fn pull(unet: &Unet, cache: &ResidualMlpCache, g: Tensor<2>) -> Tensor<2> {
///     unet.vjp(cache, g)
/// }
/// ```
#[derive(Debug, Clone)]
pub enum BackboneCache<'a> {
    Mlp2d(&'a ResidualMlp, ResidualMlpCache),
    Unet(&'a Unet, Box<UnetCache>),
}

impl BackboneCache<'_> {
    /// gᵀ·∂g(x)/∂x.
    pub fn vjp(&self, g: Tensor<2>) -> Tensor<2> {
        match self {
            BackboneCache::Mlp2d(m, c) => m.vjp(c, g),
            BackboneCache::Unet(u, c) => u.vjp(c, g),
        }
    }
}

impl Backbone {
    /// The forward pass with the visitor: the variant is its child, named by its parameter path
    /// (`backbone.Unet`).
    pub fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<2>,
        cond: &Conditioning,
        v: &mut V,
    ) -> (Tensor<2>, BackboneCache<'_>) {
        match self {
            Backbone::Mlp2d(m) => {
                let (y, c) = v.child(&"backbone.Mlp2d", m, x, cond);
                (y, BackboneCache::Mlp2d(m, c))
            }
            Backbone::Unet(u) => {
                let (y, c) = v.child(&"backbone.Unet", u, x, cond);
                (y, BackboneCache::Unet(u, Box::new(c)))
            }
        }
    }

    pub fn forward_cached(
        &self,
        x: Tensor<2>,
        cond: &Conditioning,
    ) -> (Tensor<2>, BackboneCache<'_>) {
        self.forward_visit(x, cond, &mut Plain)
    }

    /// Forward pass only. The caches hold nothing the forward would not compute anyway, so this
    /// is the cached forward with the cache dropped.
    pub fn forward(&self, x: Tensor<2>, cond: &Conditioning) -> Tensor<2> {
        self.forward_cached(x, cond).0
    }
}
