//! Nearest ×2 upsampling, ×2 downsampling (strided conv or 2×2 average pool) and the skip
//! concatenation of the UNet, with their VJPs. Pooling and upsampling are written as
//! reshape/expand/sum so that every op stays on the well-trodden differentiable path.

use super::conv::Conv2d;
use crate::vjp::{Layer, Named, Visitor, Vjp};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Nearest-neighbour ×2: each pixel becomes a 2×2 block.
pub fn upsample_nearest2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
}

/// VJP of nearest ×2: sum over each 2×2 block.
pub fn upsample_nearest2_vjp(g: Tensor<4>) -> Tensor<4> {
    let [b, c, h2, w2] = g.dims();
    let (h, w) = (h2 / 2, w2 / 2);
    g.reshape([b, c, h, 2, w, 2])
        .sum_dim(5)
        .sum_dim(3)
        .reshape([b, c, h, w])
}

/// 2×2 average pool, stride 2.
pub fn avg_pool2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h / 2, 2, w / 2, 2])
        .mean_dim(5)
        .mean_dim(3)
        .reshape([b, c, h / 2, w / 2])
}

/// VJP of the 2×2 average pool: spread each gradient over its block, divided by 4.
pub fn avg_pool2_vjp(g: Tensor<4>) -> Tensor<4> {
    upsample_nearest2(g).div_scalar(4.0)
}

/// Nearest-neighbour ×2 upsampling as a layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct NearestUpsample2;

impl Vjp<Tensor<4>> for NearestUpsample2 {
    type Output = Tensor<4>;
    type Cache = ();
    fn vjp(&self, _: &(), g: Tensor<4>) -> Tensor<4> {
        upsample_nearest2_vjp(g)
    }
}

impl<C> Layer<Tensor<4>, C> for NearestUpsample2 {
    fn forward_visit<V: Visitor>(&self, x: Tensor<4>, _: &C, _: &mut V) -> (Tensor<4>, ()) {
        (upsample_nearest2(x), ())
    }
}

/// 2×2 average pooling as a layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct AvgPool2;

impl Vjp<Tensor<4>> for AvgPool2 {
    type Output = Tensor<4>;
    type Cache = ();
    fn vjp(&self, _: &(), g: Tensor<4>) -> Tensor<4> {
        avg_pool2_vjp(g)
    }
}

impl<C> Layer<Tensor<4>, C> for AvgPool2 {
    fn forward_visit<V: Visitor>(&self, x: Tensor<4>, _: &C, _: &mut V) -> (Tensor<4>, ()) {
        (avg_pool2(x), ())
    }
}

/// Splits the cotangent of `cat([a, b], dim=1)` back into the parts for `a` (first `channels_a`
/// channels) and `b`.
pub fn concat_channels_vjp(g: Tensor<4>, channels_a: usize) -> (Tensor<4>, Tensor<4>) {
    let c = g.dims()[1];
    (
        g.clone().narrow(1, 0, channels_a),
        g.narrow(1, channels_a, c - channels_a),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DownsampleKind {
    /// 3×3 convolution with stride 2 (DDPM's `resamp_with_conv`).
    #[default]
    Conv,
    /// 2×2 average pooling.
    AvgPool,
}

/// Halves the spatial size.
#[derive(Module, Debug)]
pub struct Downsample {
    /// `Some` for strided-conv downsampling, `None` for average pooling.
    pub conv: Option<Conv2d>,
}

impl Downsample {
    pub fn new(kind: DownsampleKind, channels: usize, device: &Device) -> Self {
        Downsample {
            conv: match kind {
                DownsampleKind::Conv => {
                    Some(Conv2d::new(channels, channels, 3, 2, 1, false, device))
                }
                DownsampleKind::AvgPool => None,
            },
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_cached(x, &()).0
    }
}

/// The cache is the input's spatial size (the strided conv's VJP needs it).
impl<C> Layer<Tensor<4>, C> for Downsample {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<4>,
        ctx: &C,
        v: &mut V,
    ) -> (Tensor<4>, [usize; 2]) {
        match &self.conv {
            Some(conv) => v.child(&"conv", conv, x, ctx),
            None => {
                let [_, _, h, w] = x.dims();
                (avg_pool2(x), [h, w])
            }
        }
    }
}

impl Vjp<Tensor<4>> for Downsample {
    type Output = Tensor<4>;
    type Cache = [usize; 2];
    fn vjp(&self, input_hw: &[usize; 2], g: Tensor<4>) -> Tensor<4> {
        match &self.conv {
            Some(conv) => conv.vjp(input_hw, g),
            None => avg_pool2_vjp(g),
        }
    }
}

/// Doubles the spatial size: nearest ×2 followed by a 3×3 convolution.
#[derive(Module, Debug)]
pub struct Upsample {
    pub conv: Conv2d,
}

impl Upsample {
    pub fn new(channels: usize, device: &Device) -> Self {
        Upsample {
            conv: Conv2d::new(channels, channels, 3, 1, 1, false, device),
        }
    }

    fn graph(&self) -> crate::Seq![NearestUpsample2, Named<&Conv2d>] {
        crate::seq![NearestUpsample2, Named("conv", &self.conv)]
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_cached(x, &()).0
    }
}

impl<C> Layer<Tensor<4>, C> for Upsample {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<4>,
        ctx: &C,
        v: &mut V,
    ) -> (Tensor<4>, Self::Cache) {
        self.graph().forward_visit(x, ctx, v)
    }
}

impl Vjp<Tensor<4>> for Upsample {
    type Output = Tensor<4>;
    type Cache = ((), [usize; 2]);
    fn vjp(&self, cache: &Self::Cache, g: Tensor<4>) -> Tensor<4> {
        self.graph().vjp(cache, g)
    }
}
