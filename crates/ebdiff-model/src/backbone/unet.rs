//! DDPM-style UNet (Ho et al. 2020) with an explicit input VJP through every block.
//!
//! conv_in → [ResBlock (+Attention)]×n_res per level, Downsample between levels → middle
//! (Res, Attn, Res) → [concat skip, ResBlock (+Attention)]×(n_res+1) per level, Upsample between
//! levels → GroupNorm, SiLU, conv_out. Every activation pushed as a skip receives two cotangents
//! (from the next layer and from the concat in the up path); the VJP adds them.
//!
//! The blocks derive their VJPs from the combinators of [`crate::vjp`]; the skip bookkeeping is
//! the one hand-written piece, and its cache mirrors the module's nesting (levels, blocks), so
//! it holds no step kinds that could mismatch.

use crate::layers::{
    AttentionBlock, AttentionCache, ClassEmbedding, Conv2d, Downsample, DownsampleKind, Dropout,
    GroupNorm, Linear, Shift, Silu, TimeContext, TimeMlp, Upsample, concat_channels_vjp, silu,
};
use crate::traits::Conditioning;
use crate::vjp::{Layer, Named, Sum, Visitor, Vjp};
use crate::{Seq, seq};
use burn::module::Module;
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct ResBlock {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    pub temb: Linear,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    /// 1×1 projection when the channel count changes.
    pub skip: Option<Conv2d>,
    pub dropout: f64,
}

type ResGraph<'a> = Sum<
    Option<Named<&'a Conv2d>>,
    Seq![
        Named<&'a GroupNorm>,
        Named<Silu>,
        Named<&'a Conv2d>,
        Named<Shift<'a>>,
        Named<&'a GroupNorm>,
        Named<Silu>,
        Named<Dropout>,
        Named<&'a Conv2d>,
    ],
>;

/// What [`ResBlock`]'s VJP needs from its forward pass.
pub type ResBlockCache = <ResGraph<'static> as Vjp<Tensor<4>>>::Cache;

impl ResBlock {
    pub fn new(
        c_in: usize,
        c_out: usize,
        temb_dim: usize,
        groups: usize,
        dropout: f64,
        device: &Device,
    ) -> Self {
        ResBlock {
            norm1: GroupNorm::new(groups, c_in, device),
            conv1: Conv2d::new(c_in, c_out, 3, 1, 1, false, device),
            temb: Linear::new(temb_dim, c_out, true, false, device),
            norm2: GroupNorm::new(groups, c_out, device),
            conv2: Conv2d::new(c_out, c_out, 3, 1, 1, false, device),
            skip: (c_in != c_out).then(|| Conv2d::new(c_in, c_out, 1, 1, 0, false, device)),
            dropout,
        }
    }

    /// skip(x) + conv2(dropout(silu(GN₂(conv1(silu(GN₁(x))) + temb(t))))).
    fn graph(&self) -> ResGraph<'_> {
        Sum(
            self.skip.as_ref().map(|conv| Named("skip", conv)),
            seq![
                Named("norm1", &self.norm1),
                Named("act1", Silu),
                Named("conv1", &self.conv1),
                Named("temb", Shift(&self.temb)),
                Named("norm2", &self.norm2),
                Named("act2", Silu),
                Named("dropout", Dropout(self.dropout)),
                Named("conv2", &self.conv2),
            ],
        )
    }
}

/// The context carries silu(time embedding), shared by all blocks, and the training flag.
impl Layer<Tensor<4>, TimeContext> for ResBlock {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<4>,
        ctx: &TimeContext,
        v: &mut V,
    ) -> (Tensor<4>, ResBlockCache) {
        self.graph().forward_visit(x, ctx, v)
    }
}

impl Vjp<Tensor<4>> for ResBlock {
    type Output = Tensor<4>;
    type Cache = ResBlockCache;
    fn vjp(&self, cache: &ResBlockCache, g: Tensor<4>) -> Tensor<4> {
        self.graph().vjp(cache, g)
    }
}

/// One resolution level of the down path.
#[derive(Module, Debug)]
pub struct DownLevel {
    pub blocks: Vec<ResBlock>,
    pub attns: Vec<AttentionBlock>,
    pub downsample: Option<Downsample>,
}

/// One resolution level of the up path.
#[derive(Module, Debug)]
pub struct UpLevel {
    pub blocks: Vec<ResBlock>,
    pub attns: Vec<AttentionBlock>,
    pub upsample: Option<Upsample>,
}

#[derive(Module, Debug)]
pub struct Unet {
    pub time_mlp: TimeMlp,
    pub class_emb: Option<ClassEmbedding>,
    pub conv_in: Conv2d,
    pub down: Vec<DownLevel>,
    pub mid1: ResBlock,
    pub mid_attn: AttentionBlock,
    pub mid2: ResBlock,
    pub up: Vec<UpLevel>,
    pub norm_out: GroupNorm,
    pub conv_out: Conv2d,
    pub image_shape: [usize; 3],
    pub attention_levels: Vec<usize>,
}

/// Shape of a [`Unet`].
#[derive(Debug, Clone)]
pub struct UnetShape {
    pub image_shape: [usize; 3],
    pub channels: usize,
    pub channel_mult: Vec<usize>,
    pub res_blocks: usize,
    /// Spatial resolutions (e.g. 16) at which attention follows each res block.
    pub attention_resolutions: Vec<usize>,
    pub dropout: f64,
    pub groups: usize,
    pub downsample: DownsampleKind,
    pub num_classes: Option<usize>,
    pub zero_init_output: bool,
}

type MidGraph<'a> = Seq![
    Named<&'a ResBlock>,
    Named<&'a AttentionBlock>,
    Named<&'a ResBlock>
];
type HeadGraph<'a> = Seq![Named<&'a GroupNorm>, Named<Silu>, Named<&'a Conv2d>];

/// A res block and the attention that follows it at some resolutions.
#[derive(Debug, Clone)]
pub struct BlockCache {
    res: ResBlockCache,
    attn: Option<AttentionCache>,
}

#[derive(Debug, Clone)]
pub struct DownLevelCache {
    blocks: Vec<BlockCache>,
    /// The downsample's input size.
    downsample: Option<[usize; 2]>,
}

#[derive(Debug, Clone)]
pub struct UpLevelCache {
    /// Per block: the channels of h in `cat([h, skip])`, and the block's cache.
    blocks: Vec<(usize, BlockCache)>,
    upsample: Option<<Upsample as Vjp<Tensor<4>>>::Cache>,
}

/// What [`Unet`]'s VJP needs; its nesting mirrors the module's.
#[derive(Debug, Clone)]
pub struct UnetCache {
    conv_in: [usize; 2],
    down: Vec<DownLevelCache>,
    mid: <MidGraph<'static> as Vjp<Tensor<4>>>::Cache,
    up: Vec<UpLevelCache>,
    head: <HeadGraph<'static> as Vjp<Tensor<4>>>::Cache,
}

impl Unet {
    pub fn new(s: &UnetShape, device: &Device) -> Self {
        let ch = s.channels;
        let temb_dim = 4 * ch;
        let levels = s.channel_mult.len();
        let [c_img, h_img, _] = s.image_shape;
        let mut attention_levels = Vec::new();
        let mut down = Vec::new();
        let mut skip_channels = vec![ch];
        let mut c_cur = ch;
        for (i, &mult) in s.channel_mult.iter().enumerate() {
            let res = h_img >> i;
            let use_attn = s.attention_resolutions.contains(&res);
            if use_attn {
                attention_levels.push(i);
            }
            let mut blocks = Vec::new();
            let mut attns = Vec::new();
            for _ in 0..s.res_blocks {
                blocks.push(ResBlock::new(
                    c_cur,
                    ch * mult,
                    temb_dim,
                    s.groups,
                    s.dropout,
                    device,
                ));
                c_cur = ch * mult;
                if use_attn {
                    attns.push(AttentionBlock::new(c_cur, s.groups, false, device));
                }
                skip_channels.push(c_cur);
            }
            let downsample = (i + 1 < levels).then(|| {
                skip_channels.push(c_cur);
                Downsample::new(s.downsample, c_cur, device)
            });
            down.push(DownLevel {
                blocks,
                attns,
                downsample,
            });
        }
        let mid1 = ResBlock::new(c_cur, c_cur, temb_dim, s.groups, s.dropout, device);
        let mid_attn = AttentionBlock::new(c_cur, s.groups, false, device);
        let mid2 = ResBlock::new(c_cur, c_cur, temb_dim, s.groups, s.dropout, device);
        let mut up_rev = Vec::new();
        for (i, &mult) in s.channel_mult.iter().enumerate().rev() {
            let use_attn = attention_levels.contains(&i);
            let mut blocks = Vec::new();
            let mut attns = Vec::new();
            for _ in 0..=s.res_blocks {
                let skip = skip_channels.pop().expect("skip bookkeeping");
                blocks.push(ResBlock::new(
                    c_cur + skip,
                    ch * mult,
                    temb_dim,
                    s.groups,
                    s.dropout,
                    device,
                ));
                c_cur = ch * mult;
                if use_attn {
                    attns.push(AttentionBlock::new(c_cur, s.groups, false, device));
                }
            }
            let upsample = (i > 0).then(|| Upsample::new(c_cur, device));
            up_rev.push(UpLevel {
                blocks,
                attns,
                upsample,
            });
        }
        Unet {
            time_mlp: TimeMlp::new(ch, temb_dim, device),
            class_emb: s
                .num_classes
                .map(|n| ClassEmbedding::new(n, temb_dim, device)),
            conv_in: Conv2d::new(c_img, ch, 3, 1, 1, false, device),
            down,
            mid1,
            mid_attn,
            mid2,
            up: up_rev,
            norm_out: GroupNorm::new(s.groups, c_cur, device),
            conv_out: Conv2d::new(c_cur, c_img, 3, 1, 1, s.zero_init_output, device),
            image_shape: s.image_shape,
            attention_levels,
        }
    }

    fn temb_act(&self, batch: usize, cond: &Conditioning) -> Tensor<2> {
        let t = self.time_mlp.forward(cond.t.clone());
        let t = match &self.class_emb {
            Some(ce) => t.clone() + ce.forward(cond.labels.clone(), batch, &t.device()),
            None => {
                assert!(
                    cond.labels.is_none(),
                    "labels were given to an unconditional model (set model.num_classes to train a conditional one)"
                );
                t
            }
        };
        silu(t)
    }

    fn mid(&self) -> MidGraph<'_> {
        seq![
            Named("mid1", &self.mid1),
            Named("mid_attn", &self.mid_attn),
            Named("mid2", &self.mid2),
        ]
    }

    fn head(&self) -> HeadGraph<'_> {
        seq![
            Named("norm_out", &self.norm_out),
            Named("act_out", Silu),
            Named("conv_out", &self.conv_out),
        ]
    }

    /// Res block `j` of a level and its attention (if the level has attention).
    #[allow(clippy::too_many_arguments)]
    fn block_forward<V: Visitor>(
        v: &mut V,
        path: &str,
        level: usize,
        j: usize,
        res: &ResBlock,
        attn: Option<&AttentionBlock>,
        h: Tensor<4>,
        ctx: &TimeContext,
    ) -> (Tensor<4>, BlockCache) {
        let (h, res_cache) = v.child(&format_args!("{path}.{level}.blocks.{j}"), res, h, ctx);
        match attn {
            Some(a) => {
                let (h, c) = v.child(&format_args!("{path}.{level}.attns.{j}"), a, h, ctx);
                (
                    h,
                    BlockCache {
                        res: res_cache,
                        attn: Some(c),
                    },
                )
            }
            None => (
                h,
                BlockCache {
                    res: res_cache,
                    attn: None,
                },
            ),
        }
    }

    fn block_vjp(
        res: &ResBlock,
        attn: Option<&AttentionBlock>,
        cache: &BlockCache,
        g: Tensor<4>,
    ) -> Tensor<4> {
        let g = match attn.zip(cache.attn.as_ref()) {
            Some((a, c)) => a.vjp(c, g),
            None => g,
        };
        res.vjp(&cache.res, g)
    }
}

/// x is flat `[B, C·H·W]`, and so is g(x).
impl Layer<Tensor<2>, Conditioning> for Unet {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<2>,
        cond: &Conditioning,
        v: &mut V,
    ) -> (Tensor<2>, UnetCache) {
        let [c, hh, ww] = self.image_shape;
        let b = x.dims()[0];
        let ctx = TimeContext {
            temb: self.temb_act(b, cond),
            train: cond.train,
        };
        let (mut h, conv_in) = v.child(&"conv_in", &self.conv_in, x.reshape([b, c, hh, ww]), &ctx);
        let mut hs = vec![h.clone()];
        let mut down = Vec::with_capacity(self.down.len());
        for (i, level) in self.down.iter().enumerate() {
            let mut blocks = Vec::with_capacity(level.blocks.len());
            for (j, res) in level.blocks.iter().enumerate() {
                let (next, cache) =
                    Self::block_forward(v, "down", i, j, res, level.attns.get(j), h, &ctx);
                h = next;
                hs.push(h.clone());
                blocks.push(cache);
            }
            let mut downsample = None;
            if let Some(ds) = &level.downsample {
                let (next, hw) = v.child(&format_args!("down.{i}.downsample"), ds, h, &ctx);
                h = next;
                hs.push(h.clone());
                downsample = Some(hw);
            }
            down.push(DownLevelCache { blocks, downsample });
        }
        let (mut h, mid) = self.mid().forward_visit(h, &ctx, v);
        let mut up = Vec::with_capacity(self.up.len());
        for (k, level) in self.up.iter().enumerate() {
            let mut blocks = Vec::with_capacity(level.blocks.len());
            for (j, res) in level.blocks.iter().enumerate() {
                let skip = hs.pop().expect("skip bookkeeping");
                let h_channels = h.dims()[1];
                let (next, cache) = Self::block_forward(
                    v,
                    "up",
                    k,
                    j,
                    res,
                    level.attns.get(j),
                    Tensor::cat(vec![h, skip], 1),
                    &ctx,
                );
                h = next;
                blocks.push((h_channels, cache));
            }
            let mut upsample = None;
            if let Some(us) = &level.upsample {
                let (next, cache) = v.child(&format_args!("up.{k}.upsample"), us, h, &ctx);
                h = next;
                upsample = Some(cache);
            }
            up.push(UpLevelCache { blocks, upsample });
        }
        let (out, head) = self.head().forward_visit(h, &ctx, v);
        let cache = UnetCache {
            conv_in,
            down,
            mid,
            up,
            head,
        };
        (out.reshape([b, c * hh * ww]), cache)
    }
}

impl Vjp<Tensor<2>> for Unet {
    type Output = Tensor<2>;
    type Cache = UnetCache;

    /// gᵀ·∂g(x)/∂x, flat `[B, C·H·W]`.
    fn vjp(&self, cache: &UnetCache, g: Tensor<2>) -> Tensor<2> {
        let [c, hh, ww] = self.image_shape;
        let b = g.dims()[0];
        let mut g = self.head().vjp(&cache.head, g.reshape([b, c, hh, ww]));
        // Up path in reverse; collect the skip cotangents in the order the skips were popped, reversed.
        let mut g_skips: Vec<Tensor<4>> = Vec::new();
        for (level, lc) in self.up.iter().zip(&cache.up).rev() {
            g = level.upsample.vjp(&lc.upsample, g);
            for (j, (res, (h_channels, bc))) in
                level.blocks.iter().zip(&lc.blocks).enumerate().rev()
            {
                let g_cat = Self::block_vjp(res, level.attns.get(j), bc, g);
                let (g_h, g_skip) = concat_channels_vjp(g_cat, *h_channels);
                g = g_h;
                g_skips.push(g_skip);
            }
        }
        g = self.mid().vjp(&cache.mid, g);
        // Down path in reverse: each step's output was a skip, so its cotangent is the sum.
        for (level, lc) in self.down.iter().zip(&cache.down).rev() {
            if let Some((ds, hw)) = level.downsample.as_ref().zip(lc.downsample.as_ref()) {
                g = g + g_skips.pop().expect("skip cotangent");
                g = ds.vjp(hw, g);
            }
            for (j, (res, bc)) in level.blocks.iter().zip(&lc.blocks).enumerate().rev() {
                g = g + g_skips.pop().expect("skip cotangent");
                g = Self::block_vjp(res, level.attns.get(j), bc, g);
            }
        }
        g = g + g_skips.pop().expect("skip cotangent of conv_in");
        debug_assert!(g_skips.is_empty());
        self.conv_in
            .vjp(&cache.conv_in, g)
            .reshape([b, c * hh * ww])
    }
}
