//! A noise-conditioned classifier p(y | x_t, t) for classifier guidance (Dhariwal & Nichol):
//! the UNet's down path (time-conditioned res blocks) and a linear head on the flattened lowest
//! resolution, so that *where* an object is survives (global pooling would discard it, and the
//! shapes dataset's classes are positions).
//!
//! Guidance needs ∇ₓ log p(y | x_t, t) and MH needs log p itself; both come without autodiff:
//! ∂ log softmax_y / ∂ logits = onehot(y) − softmax, pulled back by the explicit VJPs.

use crate::backbone::unet::{ResBlock, ResBlockCache};
use crate::layers::{Conv2d, Downsample, DownsampleKind, GroupNorm, Linear, NormCache, TimeMlp};
use crate::layers::{silu, silu_vjp};
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

#[derive(Debug, Clone)]
enum Step {
    Block(ResBlockCache),
    Down([usize; 2]),
}

/// What [`NoisyClassifier::vjp`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct ClassifierCache {
    in_hw: [usize; 2],
    steps: Vec<Step>,
    out_norm: NormCache<3>,
    out_act: Tensor<4>,
    out_dims: [usize; 4],
}

impl NoisyClassifier {
    /// Logits `[B, K]` for flat inputs `[B, C·H·W]` at levels `t`.
    pub fn forward_cached(&self, x: Tensor<2>, t: Tensor<1, Int>) -> (Tensor<2>, ClassifierCache) {
        let [c, hh, ww] = self.image_shape;
        let b = x.dims()[0];
        let temb = silu(self.time_mlp.forward(t));
        let mut h = self.conv_in.forward(x.reshape([b, c, hh, ww]));
        let mut steps = Vec::new();
        for level in &self.levels {
            for block in &level.blocks {
                let (next, cache) = block.forward_cached(h, temb.clone(), false);
                h = next;
                steps.push(Step::Block(cache));
            }
            if let Some(ds) = &level.downsample {
                let [_, _, h_, w_] = h.dims();
                h = ds.forward(h);
                steps.push(Step::Down([h_, w_]));
            }
        }
        let out_dims = h.dims();
        let (out_act, out_norm) = self.norm_out.forward_cached(h);
        let flat = silu(out_act.clone()).reshape([b, out_dims[1] * out_dims[2] * out_dims[3]]);
        let logits = self.head.forward(flat);
        let cache = ClassifierCache {
            in_hw: [hh, ww],
            steps,
            out_norm,
            out_act,
            out_dims,
        };
        (logits, cache)
    }

    pub fn logits(&self, x: Tensor<2>, t: Tensor<1, Int>) -> Tensor<2> {
        self.forward_cached(x, t).0
    }

    /// gᵀ·∂logits/∂x for `g` of shape `[B, K]`; returns `[B, C·H·W]`.
    pub fn vjp(&self, cache: &ClassifierCache, g: Tensor<2>) -> Tensor<2> {
        let [c, hh, ww] = self.image_shape;
        let b = g.dims()[0];
        let g = self.head.vjp(g).reshape(cache.out_dims);
        let mut g = self
            .norm_out
            .vjp(&cache.out_norm, silu_vjp(cache.out_act.clone(), g));
        let mut steps = cache.steps.iter().rev();
        for level in self.levels.iter().rev() {
            if let Some(ds) = &level.downsample {
                let Some(Step::Down(hw)) = steps.next() else {
                    panic!("classifier cache does not match the network (downsample)");
                };
                g = ds.vjp(g, *hw);
            }
            for block in level.blocks.iter().rev() {
                let Some(Step::Block(cache)) = steps.next() else {
                    panic!("classifier cache does not match the network (block)");
                };
                g = block.vjp(cache, g);
            }
        }
        self.conv_in.vjp(g, cache.in_hw).reshape([b, c * hh * ww])
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
        let (logits, cache) = self.forward_cached(x, t);
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
