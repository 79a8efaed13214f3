//! SiLU (swish), the only activation used: smooth, and its derivative is cheap and exact on every
//! backend (GELU's default backward is the tanh approximation on some backends; burn-notes.md).

use crate::vjp::{Layer, Visitor, Vjp};
use burn::tensor::{Tensor, activation};

pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    activation::silu(x)
}

/// gᵀ·∂silu(x)/∂x = g ⊙ σ(x)(1 + x(1 − σ(x))). `x` is the *input* of the SiLU.
pub fn silu_vjp<const D: usize>(x: Tensor<D>, grad_out: Tensor<D>) -> Tensor<D> {
    let s = activation::sigmoid(x.clone());
    let one_minus_s = s.clone().neg().add_scalar(1.0);
    grad_out * s * (x * one_minus_s).add_scalar(1.0)
}

/// SiLU as a layer; its cache is its input.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silu;

impl<const D: usize> Vjp<Tensor<D>> for Silu {
    type Output = Tensor<D>;
    type Cache = Tensor<D>;
    fn vjp(&self, x: &Tensor<D>, g: Tensor<D>) -> Tensor<D> {
        silu_vjp(x.clone(), g)
    }
}

impl<const D: usize, C> Layer<Tensor<D>, C> for Silu {
    fn forward_visit<V: Visitor>(&self, x: Tensor<D>, _: &C, _: &mut V) -> (Tensor<D>, Tensor<D>) {
        (silu(x.clone()), x)
    }
}
