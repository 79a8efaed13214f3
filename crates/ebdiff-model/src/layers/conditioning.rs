//! How the conditioning (time and class embeddings, the training flag) enters a block. None of
//! it depends on x, so it travels as the layers' context and is never differentiated
//! (DEVELOPERS.md rule 2); its parameters still get gradients through the blocks it modulates.

use super::linear::Linear;
use crate::vjp::{Layer, Visitor, Vjp};
use burn::tensor::{Distribution, Tensor};

/// The context of the UNet's and the classifier's residual blocks.
#[derive(Debug, Clone)]
pub struct TimeContext {
    /// silu(time embedding [+ class embedding]), `[B, D]`, shared by all blocks.
    pub temb: Tensor<2>,
    /// Training mode (enables dropout).
    pub train: bool,
}

/// Adds a learned projection of the embedding: y = x + emb·W + b (broadcast over the spatial
/// positions of images). The VJP with respect to x is the identity.
#[derive(Debug, Clone, Copy)]
pub struct Shift<'a>(pub &'a Linear);

impl<const D: usize> Vjp<Tensor<D>> for Shift<'_> {
    type Output = Tensor<D>;
    type Cache = ();
    fn vjp(&self, _: &(), g: Tensor<D>) -> Tensor<D> {
        g
    }
}

/// In the 2-D MLP the context is the embedding itself, `[B, D]`.
impl Layer<Tensor<2>, Tensor<2>> for Shift<'_> {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<2>,
        emb: &Tensor<2>,
        _: &mut V,
    ) -> (Tensor<2>, ()) {
        (x + self.0.forward(emb.clone()), ())
    }
}

impl Layer<Tensor<4>, TimeContext> for Shift<'_> {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<4>,
        ctx: &TimeContext,
        _: &mut V,
    ) -> (Tensor<4>, ()) {
        let b = x.dims()[0];
        let t = self.0.forward(ctx.temb.clone());
        let c = t.dims()[1];
        (x + t.reshape([b, c, 1, 1]), ())
    }
}

/// Inverted dropout with drop probability `.0`, active only in training mode. The cache is the
/// scaled keep-mask (`None` when inactive).
#[derive(Debug, Clone, Copy)]
pub struct Dropout(pub f64);

impl<const D: usize> Vjp<Tensor<D>> for Dropout {
    type Output = Tensor<D>;
    type Cache = Option<Tensor<D>>;
    fn vjp(&self, mask: &Option<Tensor<D>>, g: Tensor<D>) -> Tensor<D> {
        match mask {
            Some(m) => g * m.clone(),
            None => g,
        }
    }
}

impl<const D: usize> Layer<Tensor<D>, TimeContext> for Dropout {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<D>,
        ctx: &TimeContext,
        _: &mut V,
    ) -> (Tensor<D>, Option<Tensor<D>>) {
        let mask = (ctx.train && self.0 > 0.0).then(|| {
            let keep = 1.0 - self.0;
            x.random_like(Distribution::Bernoulli(keep))
                .div_scalar(keep)
        });
        match mask {
            Some(m) => (x * m.clone(), Some(m)),
            None => (x, None),
        }
    }
}
