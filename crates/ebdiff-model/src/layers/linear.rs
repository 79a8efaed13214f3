//! Affine map y = x W + b over the last dimension (W stored `[in, out]`, Burn's layout).

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, module::linear};

#[derive(Module, Debug)]
pub struct Linear {
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    /// PyTorch-default init U(±1/√fan_in) for weight and bias, or all-zero when `zero` is set
    /// (used for output layers so that a fresh network starts from a known energy).
    pub fn new(d_in: usize, d_out: usize, bias: bool, zero: bool, device: &Device) -> Self {
        let init = super::default_init(d_in, zero);
        Linear {
            weight: init.init([d_in, d_out], device),
            bias: bias.then(|| init.init([d_out], device)),
        }
    }

    pub fn d_in(&self) -> usize {
        self.weight.val().dims()[0]
    }

    pub fn d_out(&self) -> usize {
        self.weight.val().dims()[1]
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()))
    }

    /// gᵀ·∂y/∂x = g Wᵀ (the bias does not depend on x).
    pub fn vjp<const D: usize>(&self, grad_out: Tensor<D>) -> Tensor<D> {
        grad_out.matmul(self.weight.val().transpose().unsqueeze::<D>())
    }
}
