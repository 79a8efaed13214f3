//! Vector-valued backbones g(x, t, y) with explicit input VJPs.

pub mod mlp2d;
pub mod unet;

pub use mlp2d::{ResidualMlp, ResidualMlpCache, ResidualMlpShape};
pub use unet::{ResBlock, Unet, UnetCache, UnetShape};

use crate::traits::Conditioning;
use burn::module::Module;
use burn::tensor::Tensor;

#[derive(Module, Debug)]
pub enum Backbone {
    Mlp2d(ResidualMlp),
    Unet(Unet),
}

#[derive(Debug, Clone)]
pub enum BackboneCache {
    Mlp2d(ResidualMlpCache),
    Unet(Box<UnetCache>),
}

impl Backbone {
    pub fn forward_cached(&self, x: Tensor<2>, cond: &Conditioning) -> (Tensor<2>, BackboneCache) {
        match self {
            Backbone::Mlp2d(m) => {
                let (y, c) = m.forward_cached(x, cond);
                (y, BackboneCache::Mlp2d(c))
            }
            Backbone::Unet(u) => {
                let (y, c) = u.forward_cached(x, cond);
                (y, BackboneCache::Unet(Box::new(c)))
            }
        }
    }

    /// Forward pass only. The caches hold nothing the forward would not compute anyway, so this
    /// is the cached forward with the cache dropped.
    pub fn forward(&self, x: Tensor<2>, cond: &Conditioning) -> Tensor<2> {
        self.forward_cached(x, cond).0
    }

    pub fn vjp(&self, cache: &BackboneCache, g: Tensor<2>) -> Tensor<2> {
        match (self, cache) {
            (Backbone::Mlp2d(m), BackboneCache::Mlp2d(c)) => m.vjp(c, g),
            (Backbone::Unet(u), BackboneCache::Unet(c)) => u.vjp(c, g),
            _ => panic!("backbone cache of the wrong kind"),
        }
    }
}
