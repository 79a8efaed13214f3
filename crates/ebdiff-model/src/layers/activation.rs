//! SiLU (swish), the only activation used: smooth, and its derivative is cheap and exact on every
//! backend (GELU's default backward is the tanh approximation on some backends; burn-notes.md).

use crate::vjp::{Layer, Visitor, Vjp};
use burn::tensor::{Tensor, activation};

pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    activation::silu(x)
}

/// gᵀ·∂silu(x)/∂x = g ⊙ σ(x)(1 + x(1 − σ(x))), from the SiLU's input `x` and `s` = σ(x).
pub fn silu_vjp<const D: usize>(x: Tensor<D>, s: Tensor<D>, grad_out: Tensor<D>) -> Tensor<D> {
    let one_minus_s = s.clone().neg().add_scalar(1.0);
    grad_out * s * (x * one_minus_s).add_scalar(1.0)
}

/// SiLU as a layer. Its cache is the input and σ(input): the forward computes σ anyway, and
/// reusing it spares the VJP the exponentials, the costliest elementwise op on the CPU (Burn
/// flex's `exp` is scalar libm: half the time of a 2-D MLP's E + ∇ₓE went to it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silu;

impl<const D: usize> Vjp<Tensor<D>> for Silu {
    type Output = Tensor<D>;
    type Cache = (Tensor<D>, Tensor<D>);
    fn vjp(&self, (x, s): &(Tensor<D>, Tensor<D>), g: Tensor<D>) -> Tensor<D> {
        silu_vjp(x.clone(), s.clone(), g)
    }
}

impl<const D: usize, C> Layer<Tensor<D>, C> for Silu {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<D>,
        _: &C,
        _: &mut V,
    ) -> (Tensor<D>, (Tensor<D>, Tensor<D>)) {
        let s = activation::sigmoid(x.clone());
        (x.clone() * s.clone(), (x, s))
    }
}
