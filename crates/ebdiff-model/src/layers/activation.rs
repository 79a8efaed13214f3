//! SiLU (swish), the only activation used: smooth, and its derivative is cheap and exact on every
//! backend (GELU's default backward is the tanh approximation on some backends; burn-notes.md).

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
