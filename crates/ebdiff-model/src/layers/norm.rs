//! GroupNorm (images) and LayerNorm (2-D MLP) with their input VJPs.
//!
//! For a normalized group x̂ = (x − μ)/s with s = √(var + ε) and y = γ x̂ + β, the VJP is
//! ∂x = (∂x̂ − mean(∂x̂) − x̂ ⊙ mean(∂x̂ ⊙ x̂)) / s with ∂x̂ = γ ⊙ ∂y.

use crate::vjp::{Layer, Visitor, Vjp};
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

/// What a norm layer keeps for its VJP.
#[derive(Debug, Clone)]
pub struct NormCache<const D: usize> {
    /// Normalized values x̂, grouped so that the statistics run over the last dim.
    pub xhat: Tensor<D>,
    /// 1/s per group, broadcastable over the last dim.
    pub rstd: Tensor<D>,
}

fn normalize_last<const D: usize>(x: Tensor<D>, eps: f64) -> (Tensor<D>, Tensor<D>) {
    let mean = x.clone().mean_dim(D - 1);
    let centered = x - mean;
    let var = centered.clone().square().mean_dim(D - 1);
    let rstd = var.add_scalar(eps).sqrt().recip();
    (centered * rstd.clone(), rstd)
}

fn normalize_last_vjp<const D: usize>(cache: &NormCache<D>, dxhat: Tensor<D>) -> Tensor<D> {
    let xhat = cache.xhat.clone();
    let m1 = dxhat.clone().mean_dim(D - 1);
    let m2 = (dxhat.clone() * xhat.clone()).mean_dim(D - 1);
    (dxhat - m1 - xhat * m2) * cache.rstd.clone()
}

/// GroupNorm over `[B, C, H, W]` with per-channel affine parameters.
#[derive(Module, Debug)]
pub struct GroupNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub groups: usize,
    pub epsilon: f64,
}

impl GroupNorm {
    pub fn new(groups: usize, channels: usize, device: &Device) -> Self {
        assert!(
            channels.is_multiple_of(groups),
            "GroupNorm: {channels} channels are not divisible into {groups} groups"
        );
        GroupNorm {
            gamma: Initializer::Ones.init([channels], device),
            beta: Initializer::Zeros.init([channels], device),
            groups,
            epsilon: 1e-5,
        }
    }

    fn affine(&self, xhat: Tensor<4>) -> Tensor<4> {
        let c = xhat.dims()[1];
        xhat * self.gamma.val().reshape([1, c, 1, 1]) + self.beta.val().reshape([1, c, 1, 1])
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_cached(x, &()).0
    }
}

impl<C> Layer<Tensor<4>, C> for GroupNorm {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<4>,
        _: &C,
        _: &mut V,
    ) -> (Tensor<4>, NormCache<3>) {
        let [b, c, h, w] = x.dims();
        let (xhat, rstd) = normalize_last(
            x.reshape([b, self.groups, (c / self.groups) * h * w]),
            self.epsilon,
        );
        let y = self.affine(xhat.clone().reshape([b, c, h, w]));
        (y, NormCache { xhat, rstd })
    }
}

impl Vjp<Tensor<4>> for GroupNorm {
    type Output = Tensor<4>;
    type Cache = NormCache<3>;
    fn vjp(&self, cache: &NormCache<3>, grad_out: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = grad_out.dims();
        let dxhat = (grad_out * self.gamma.val().reshape([1, c, 1, 1])).reshape([
            b,
            self.groups,
            (c / self.groups) * h * w,
        ]);
        normalize_last_vjp(cache, dxhat).reshape([b, c, h, w])
    }
}

/// LayerNorm over the last dim of `[B, F]`.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub epsilon: f64,
}

impl LayerNorm {
    pub fn new(features: usize, device: &Device) -> Self {
        LayerNorm {
            gamma: Initializer::Ones.init([features], device),
            beta: Initializer::Zeros.init([features], device),
            epsilon: 1e-5,
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_cached(x, &()).0
    }
}

impl<C> Layer<Tensor<2>, C> for LayerNorm {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<2>,
        _: &C,
        _: &mut V,
    ) -> (Tensor<2>, NormCache<2>) {
        let (xhat, rstd) = normalize_last(x, self.epsilon);
        let y = xhat.clone() * self.gamma.val().unsqueeze::<2>() + self.beta.val().unsqueeze::<2>();
        (y, NormCache { xhat, rstd })
    }
}

impl Vjp<Tensor<2>> for LayerNorm {
    type Output = Tensor<2>;
    type Cache = NormCache<2>;
    fn vjp(&self, cache: &NormCache<2>, grad_out: Tensor<2>) -> Tensor<2> {
        normalize_last_vjp(cache, grad_out * self.gamma.val().unsqueeze::<2>())
    }
}
