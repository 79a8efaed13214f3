//! Affine map y = x W + b over the last dimension (W stored `[in, out]`, Burn's layout).

use crate::vjp::{Layer, Visitor, Vjp};
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

    /// One `[rows, in] × [in, out]` product, rows being every leading dimension.
    fn count_flops(&self, dims: &[usize]) {
        if !crate::flops::counting() {
            return;
        }
        let rows = dims[..dims.len() - 1].iter().product();
        crate::flops::matmul(rows, self.d_out(), self.d_in());
    }

    pub fn d_in(&self) -> usize {
        self.weight.val().dims()[0]
    }

    pub fn d_out(&self) -> usize {
        self.weight.val().dims()[1]
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.count_flops(&x.dims());
        linear(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()))
    }
}

/// Any rank; the map acts on the last dimension.
impl<const D: usize> Vjp<Tensor<D>> for Linear {
    type Output = Tensor<D>;
    type Cache = ();
    /// gᵀ·∂y/∂x = g Wᵀ (the bias does not depend on x).
    fn vjp(&self, _: &(), grad_out: Tensor<D>) -> Tensor<D> {
        self.count_flops(&grad_out.dims());
        grad_out.matmul(self.weight.val().transpose().unsqueeze::<D>())
    }
}

impl<const D: usize, C> Layer<Tensor<D>, C> for Linear {
    fn forward_visit<V: Visitor>(&self, x: Tensor<D>, _: &C, _: &mut V) -> (Tensor<D>, ()) {
        (self.forward(x), ())
    }
}
