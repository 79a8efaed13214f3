//! 2-D convolution, square kernel, symmetric padding. Its input VJP is the transposed
//! convolution with the same weight, which Burn differentiates with respect to that weight, or
//! for stride 1 the same sums as a plain convolution with the flipped weight ([`ConvVjpKernel`]).

use crate::vjp::{Layer, Visitor, Vjp};
use burn::module::{Module, Param};
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Tensor};
use std::sync::atomic::{AtomicU8, Ordering};

/// Which kernel computes a stride-1 [`Conv2d`]'s input VJP. Both give the same values (exactly
/// the same sums); they differ in which of the backend's kernels run, in the VJP and in its
/// backward. Strided convolutions always use the transposed convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvVjpKernel {
    /// `conv_transpose2d` with the layer's weight. The default: on the CPU (flex) the two cost
    /// the same within 0.85–1.15× (burn-notes.md).
    #[default]
    Transposed,
    /// `conv2d` with the weight's channel axes swapped and its kernel flipped, padding
    /// k − 1 − p: the VJP and its backward then run on the forward-convolution kernels, which on
    /// GPUs have the implicit-GEMM (tensor-core) paths that Burn's `conv_transpose2d` lacks.
    FlippedConv,
}

static VJP_KERNEL: AtomicU8 = AtomicU8::new(0);

/// Sets the kernel of every stride-1 convolution's VJP in this process (see [`ConvVjpKernel`]).
pub fn set_vjp_kernel(kernel: ConvVjpKernel) {
    VJP_KERNEL.store(kernel as u8, Ordering::Relaxed);
}

/// The kernel set by [`set_vjp_kernel`].
pub fn vjp_kernel() -> ConvVjpKernel {
    match VJP_KERNEL.load(Ordering::Relaxed) {
        0 => ConvVjpKernel::Transposed,
        _ => ConvVjpKernel::FlippedConv,
    }
}

#[derive(Module, Debug)]
pub struct Conv2d {
    /// `[out, in, k, k]`.
    pub weight: Param<Tensor<4>>,
    pub bias: Option<Param<Tensor<1>>>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        zero: bool,
        device: &Device,
    ) -> Self {
        let fan_in = c_in * kernel * kernel;
        let init = super::default_init(fan_in, zero);
        Conv2d {
            weight: init.init([c_out, c_in, kernel, kernel], device),
            bias: Some(init.init([c_out], device)),
            stride,
            padding,
        }
    }

    pub fn kernel(&self) -> usize {
        self.weight.val().dims()[2]
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = self.stride;
        let p = self.padding;
        if crate::flops::counting() {
            let [b, _, h, w] = x.dims();
            self.count_flops(b, [self.output_size(h), self.output_size(w)]);
        }
        conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            ConvOptions::new([s, s], [p, p], [1, 1], 1),
        )
    }

    /// Each output value is a dot product over `c_in·k²` weights; the transposed convolution of
    /// the VJP does the same products in the other direction.
    fn count_flops(&self, batch: usize, out_hw: [usize; 2]) {
        let [c_out, c_in, k, _] = self.weight.val().dims();
        crate::flops::matmul(batch * out_hw[0] * out_hw[1], c_out, c_in * k * k);
    }

    /// Output spatial size for an input of size `n`.
    pub fn output_size(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.kernel()) / self.stride + 1
    }
}

/// The cache is the input's spatial size.
impl<C> Layer<Tensor<4>, C> for Conv2d {
    fn forward_visit<V: Visitor>(&self, x: Tensor<4>, _: &C, _: &mut V) -> (Tensor<4>, [usize; 2]) {
        let [_, _, h, w] = x.dims();
        (self.forward(x), [h, w])
    }
}

impl Vjp<Tensor<4>> for Conv2d {
    type Output = Tensor<4>;
    type Cache = [usize; 2];

    /// gᵀ·∂y/∂x: transposed convolution with the same weight. With stride > 1 several input sizes
    /// map to one output size, and `padding_out` restores the cached one (the formula Burn's own
    /// conv2d backward uses).
    fn vjp(&self, input_hw: &[usize; 2], grad_out: Tensor<4>) -> Tensor<4> {
        let [b, _, ho, wo] = grad_out.dims();
        if crate::flops::counting() {
            self.count_flops(b, [ho, wo]);
        }
        let (s, p, k) = (self.stride, self.padding, self.kernel());
        if s == 1 && p < k && vjp_kernel() == ConvVjpKernel::FlippedConv {
            // x̄[c] = Σ_o g[o] ⋆ W[o, c] correlated with the flipped kernel: a plain convolution
            // of g with W swapped to [in, out] and flipped, padded so the input size returns.
            let w = self.weight.val().swap_dims(0, 1).flip([2, 3]);
            let q = k - 1 - p;
            return conv2d(
                grad_out,
                w,
                None,
                ConvOptions::new([1, 1], [q, q], [1, 1], 1),
            );
        }
        let pad_out = |n_in: usize, n_out: usize| n_in + 2 * p - ((n_out - 1) * s + k);
        conv_transpose2d(
            grad_out,
            self.weight.val(),
            None,
            ConvTransposeOptions::new(
                [s, s],
                [p, p],
                [pad_out(input_hw[0], ho), pad_out(input_hw[1], wo)],
                [1, 1],
                1,
            ),
        )
    }
}
