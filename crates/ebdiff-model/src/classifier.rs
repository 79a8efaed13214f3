//! A noise-conditioned classifier p(y | x_t, t) for classifier guidance (Dhariwal & Nichol):
//! the UNet's down path (time-conditioned res blocks) and a linear head on the flattened lowest
//! resolution, so that *where* an object is survives (global pooling would discard it, and the
//! shapes dataset's classes are positions).
//!
//! Guidance needs ∇ₓ log p(y | x_t, t) and MH needs log p itself; both come without autodiff:
//! ∂ log softmax_y / ∂ logits = onehot(y) − softmax, pulled back by the explicit VJPs.

use crate::backbone::unet::ResBlock;
use crate::layers::{
    Conv2d, Downsample, DownsampleKind, GroupNorm, Linear, Silu, TimeContext, TimeMlp, silu,
};
use crate::vjp::{Flatten, Layer, Named, Stack, Unflatten, Visitor, Vjp};
use crate::{Seq, seq};
use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

/// `[classifier]` section: the classifier's shape (its data shape and classes come from the
/// model it guides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    #[serde(default = "default_channels")]
    pub channels: usize,
    #[serde(default = "default_channel_mult")]
    pub channel_mult: Vec<usize>,
    #[serde(default = "one")]
    pub res_blocks: usize,
    #[serde(default = "default_groups")]
    pub groups: usize,
    #[serde(default)]
    pub downsample: DownsampleKind,
}

fn default_channels() -> usize {
    32
}
fn default_channel_mult() -> Vec<usize> {
    vec![1, 2, 2]
}
fn one() -> usize {
    1
}
fn default_groups() -> usize {
    8
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            channels: default_channels(),
            channel_mult: default_channel_mult(),
            res_blocks: one(),
            groups: default_groups(),
            downsample: DownsampleKind::default(),
        }
    }
}

impl ClassifierConfig {
    /// Errors are `(key, message)`.
    pub fn validate(&self, image_shape: [usize; 3]) -> Result<(), (String, String)> {
        let [_, h, w] = image_shape;
        let levels = self.channel_mult.len();
        if levels == 0 || self.channels == 0 || self.res_blocks == 0 {
            return Err((
                "channels".into(),
                "channels, channel_mult and res_blocks must be non-empty / ≥ 1".into(),
            ));
        }
        let scale = 1 << (levels - 1);
        if h % scale != 0 || w % scale != 0 {
            return Err((
                "channel_mult".into(),
                format!(
                    "{levels} levels halve the size {} times, but {h}×{w} is not divisible by {scale}",
                    levels - 1
                ),
            ));
        }
        if let Some(m) = self
            .channel_mult
            .iter()
            .find(|&&m| !(self.channels * m).is_multiple_of(self.groups))
        {
            return Err((
                "groups".into(),
                format!(
                    "{} groups do not divide {} channels",
                    self.groups,
                    self.channels * m
                ),
            ));
        }
        Ok(())
    }

    pub fn init(
        &self,
        image_shape: [usize; 3],
        num_classes: usize,
        device: &Device,
    ) -> NoisyClassifier {
        let ch = self.channels;
        let temb_dim = 4 * ch;
        let [c_img, h, w] = image_shape;
        let mut levels = Vec::new();
        let mut c_cur = ch;
        for (i, &mult) in self.channel_mult.iter().enumerate() {
            let mut blocks = Vec::new();
            for _ in 0..self.res_blocks {
                blocks.push(ResBlock::new(
                    c_cur,
                    ch * mult,
                    temb_dim,
                    self.groups,
                    0.0,
                    device,
                ));
                c_cur = ch * mult;
            }
            let downsample = (i + 1 < self.channel_mult.len())
                .then(|| Downsample::new(self.downsample, c_cur, device));
            levels.push(ClassifierLevel { blocks, downsample });
        }
        let scale = 1 << (self.channel_mult.len() - 1);
        let flat = c_cur * (h / scale) * (w / scale);
        NoisyClassifier {
            time_mlp: TimeMlp::new(ch, temb_dim, device),
            conv_in: Conv2d::new(c_img, ch, 3, 1, 1, false, device),
            levels,
            norm_out: GroupNorm::new(self.groups, c_cur, device),
            head: Linear::new(flat, num_classes, true, false, device),
            image_shape,
            num_classes,
        }
    }
}

#[derive(Module, Debug)]
pub struct ClassifierLevel {
    pub blocks: Vec<ResBlock>,
    pub downsample: Option<Downsample>,
}

type LevelGraph<'a> = Seq![Stack<'a, ResBlock>, Option<Named<&'a Downsample>>];

impl ClassifierLevel {
    fn graph(&self) -> LevelGraph<'_> {
        seq![
            Stack("blocks", &self.blocks),
            self.downsample.as_ref().map(|d| Named("downsample", d)),
        ]
    }
}

impl Layer<Tensor<4>, TimeContext> for ClassifierLevel {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<4>,
        ctx: &TimeContext,
        v: &mut V,
    ) -> (Tensor<4>, Self::Cache) {
        self.graph().forward_visit(x, ctx, v)
    }
}

impl Vjp<Tensor<4>> for ClassifierLevel {
    type Output = Tensor<4>;
    type Cache = <LevelGraph<'static> as Vjp<Tensor<4>>>::Cache;
    fn vjp(&self, cache: &Self::Cache, g: Tensor<4>) -> Tensor<4> {
        self.graph().vjp(cache, g)
    }
}

#[derive(Module, Debug)]
pub struct NoisyClassifier {
    pub time_mlp: TimeMlp,
    pub conv_in: Conv2d,
    pub levels: Vec<ClassifierLevel>,
    pub norm_out: GroupNorm,
    pub head: Linear,
    pub image_shape: [usize; 3],
    pub num_classes: usize,
}

type ClassifierGraph<'a> = Seq![
    Unflatten,
    Named<&'a Conv2d>,
    Stack<'a, ClassifierLevel>,
    Named<&'a GroupNorm>,
    Named<Silu>,
    Flatten,
    Named<&'a Linear>,
];

/// What the classifier's VJP needs from the forward pass.
pub type ClassifierCache = <ClassifierGraph<'static> as Vjp<Tensor<2>>>::Cache;

impl NoisyClassifier {
    /// conv_in → levels → GroupNorm → SiLU → flatten → head, on flat inputs `[B, C·H·W]`.
    fn graph(&self) -> ClassifierGraph<'_> {
        seq![
            Unflatten(self.image_shape),
            Named("conv_in", &self.conv_in),
            Stack("levels", &self.levels),
            Named("norm_out", &self.norm_out),
            Named("act_out", Silu),
            Flatten,
            Named("head", &self.head),
        ]
    }

    /// Logits `[B, K]` for flat inputs `[B, C·H·W]` at levels `t`.
    pub fn logits(&self, x: Tensor<2>, t: Tensor<1, Int>) -> Tensor<2> {
        self.forward_cached(x, &t).0
    }

    /// log p(y | x_t, t) per example, `[B]`. Differentiable in θ (for training).
    pub fn log_prob(&self, x: Tensor<2>, t: Tensor<1, Int>, y: Tensor<1, Int>) -> Tensor<1> {
        let b = x.dims()[0];
        log_softmax(self.logits(x, t), 1)
            .gather(1, y.reshape([b, 1]))
            .reshape([b])
    }

    /// log p(y | x_t, t) `[B]` and its input gradient `[B, C·H·W]`, without autodiff.
    pub fn log_prob_and_grad(
        &self,
        x: Tensor<2>,
        t: Tensor<1, Int>,
        y: Tensor<1, Int>,
    ) -> (Tensor<1>, Tensor<2>) {
        let b = x.dims()[0];
        let (logits, cache) = self.forward_cached(x, &t);
        let logp = log_softmax(logits, 1);
        let y = y.reshape([b, 1]);
        let value = logp.clone().gather(1, y.clone()).reshape([b]);
        let k = self.num_classes;
        let classes = Tensor::<1, Int>::arange(0..k as i64, &y.device())
            .reshape([1, k])
            .repeat_dim(0, b);
        let onehot = y.repeat_dim(1, k).equal(classes).float();
        let g = onehot - logp.exp();
        (value, self.vjp(&cache, g))
    }
}

/// Logits `[B, K]` of flat inputs `[B, C·H·W]`; the context is the levels t.
impl Layer<Tensor<2>, Tensor<1, Int>> for NoisyClassifier {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<2>,
        t: &Tensor<1, Int>,
        v: &mut V,
    ) -> (Tensor<2>, ClassifierCache) {
        let ctx = TimeContext {
            temb: silu(self.time_mlp.forward(t.clone())),
            train: false,
        };
        self.graph().forward_visit(x, &ctx, v)
    }
}

impl Vjp<Tensor<2>> for NoisyClassifier {
    type Output = Tensor<2>;
    type Cache = ClassifierCache;
    /// gᵀ·∂logits/∂x for `g` of shape `[B, K]`; returns `[B, C·H·W]`.
    fn vjp(&self, cache: &ClassifierCache, g: Tensor<2>) -> Tensor<2> {
        self.graph().vjp(cache, g)
    }
}
