//! DDPM-style UNet (Ho et al. 2020) with an explicit input VJP through every block.
//!
//! conv_in → [ResBlock (+Attention)]×n_res per level, Downsample between levels → middle
//! (Res, Attn, Res) → [concat skip, ResBlock (+Attention)]×(n_res+1) per level, Upsample between
//! levels → GroupNorm, SiLU, conv_out. Every activation pushed as a skip receives two cotangents
//! (from the next layer and from the concat in the up path); the VJP adds them.

use crate::layers::{
    AttentionBlock, AttentionCache, ClassEmbedding, Conv2d, Downsample, DownsampleKind, GroupNorm,
    Linear, NormCache, TimeMlp, Upsample, concat_channels_vjp, silu, silu_vjp,
};
use crate::traits::Conditioning;
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};

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

#[derive(Debug, Clone)]
pub struct ResBlockCache {
    hw: [usize; 2],
    n1: NormCache<3>,
    a1: Tensor<4>,
    n2: NormCache<3>,
    a2: Tensor<4>,
    mask: Option<Tensor<4>>,
}

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

    /// `temb_act` is silu(time embedding), shared by all blocks.
    pub fn forward_cached(
        &self,
        x: Tensor<4>,
        temb_act: Tensor<2>,
        train: bool,
    ) -> (Tensor<4>, ResBlockCache) {
        let [b, _, h, w] = x.dims();
        let (a1, n1) = self.norm1.forward_cached(x.clone());
        let t = self.temb.forward(temb_act);
        let c = t.dims()[1];
        let h1 = self.conv1.forward(silu(a1.clone())) + t.reshape([b, c, 1, 1]);
        let (a2, n2) = self.norm2.forward_cached(h1);
        let mut s2 = silu(a2.clone());
        let mask = (train && self.dropout > 0.0).then(|| {
            let keep = 1.0 - self.dropout;
            s2.random_like(Distribution::Bernoulli(keep))
                .div_scalar(keep)
        });
        if let Some(m) = &mask {
            s2 = s2 * m.clone();
        }
        let out = self.conv2.forward(s2);
        let skip = match &self.skip {
            Some(conv) => conv.forward(x),
            None => x,
        };
        (
            skip + out,
            ResBlockCache {
                hw: [h, w],
                n1,
                a1,
                n2,
                a2,
                mask,
            },
        )
    }

    pub fn vjp(&self, cache: &ResBlockCache, g: Tensor<4>) -> Tensor<4> {
        let mut g_s2 = self.conv2.vjp(g.clone(), cache.hw);
        if let Some(m) = &cache.mask {
            g_s2 = g_s2 * m.clone();
        }
        let g_h1 = self.norm2.vjp(&cache.n2, silu_vjp(cache.a2.clone(), g_s2));
        let g_s1 = self.conv1.vjp(g_h1, cache.hw);
        let g_x = self.norm1.vjp(&cache.n1, silu_vjp(cache.a1.clone(), g_s1));
        let g_skip = match &self.skip {
            Some(conv) => conv.vjp(g, cache.hw),
            None => g,
        };
        g_x + g_skip
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

/// A forward step of the down path whose output is pushed as a skip.
#[derive(Debug, Clone)]
enum DownStep {
    ConvIn {
        hw: [usize; 2],
    },
    Block {
        res: ResBlockCache,
        attn: Option<AttentionCache>,
    },
    Down {
        hw: [usize; 2],
    },
}

#[derive(Debug, Clone)]
enum UpStep {
    Block {
        skip_channels: usize,
        h_channels: usize,
        res: ResBlockCache,
        attn: Option<AttentionCache>,
    },
    Up,
}

#[derive(Debug, Clone)]
pub struct UnetCache {
    down: Vec<DownStep>,
    mid: (ResBlockCache, AttentionCache, ResBlockCache),
    up: Vec<UpStep>,
    out_norm: NormCache<3>,
    out_act: Tensor<4>,
    out_hw: [usize; 2],
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

    fn block_forward(
        res: &ResBlock,
        attn: Option<&AttentionBlock>,
        h: Tensor<4>,
        temb: Tensor<2>,
        train: bool,
    ) -> (Tensor<4>, ResBlockCache, Option<AttentionCache>) {
        let (h, rc) = res.forward_cached(h, temb, train);
        match attn {
            Some(a) => {
                let (h, ac) = a.forward_cached(h);
                (h, rc, Some(ac))
            }
            None => (h, rc, None),
        }
    }

    fn block_vjp(
        res: &ResBlock,
        attn: Option<&AttentionBlock>,
        rc: &ResBlockCache,
        ac: &Option<AttentionCache>,
        g: Tensor<4>,
    ) -> Tensor<4> {
        let g = match (attn, ac) {
            (Some(a), Some(c)) => a.vjp(c, g),
            _ => g,
        };
        res.vjp(rc, g)
    }

    /// x is flat `[B, C·H·W]`; returns g(x) flat, and the cache for [`Unet::vjp`].
    pub fn forward_cached(&self, x: Tensor<2>, cond: &Conditioning) -> (Tensor<2>, UnetCache) {
        let [c, hh, ww] = self.image_shape;
        let b = x.dims()[0];
        let temb = self.temb_act(b, cond);
        let train = cond.train;
        let mut h = self.conv_in.forward(x.reshape([b, c, hh, ww]));
        let mut hs = vec![h.clone()];
        let mut down_steps = vec![DownStep::ConvIn { hw: [hh, ww] }];
        for level in &self.down {
            for (j, res) in level.blocks.iter().enumerate() {
                let (next, rc, ac) =
                    Self::block_forward(res, level.attns.get(j), h, temb.clone(), train);
                h = next;
                hs.push(h.clone());
                down_steps.push(DownStep::Block { res: rc, attn: ac });
            }
            if let Some(ds) = &level.downsample {
                let [_, _, h_, w_] = h.dims();
                h = ds.forward(h);
                hs.push(h.clone());
                down_steps.push(DownStep::Down { hw: [h_, w_] });
            }
        }
        let (h1, m1) = self.mid1.forward_cached(h, temb.clone(), train);
        let (h2, ma) = self.mid_attn.forward_cached(h1);
        let (mut h, m2) = self.mid2.forward_cached(h2, temb.clone(), train);
        let mut up_steps = Vec::new();
        for level in &self.up {
            for (j, res) in level.blocks.iter().enumerate() {
                let skip = hs.pop().expect("skip bookkeeping");
                let (h_channels, skip_channels) = (h.dims()[1], skip.dims()[1]);
                let (next, rc, ac) = Self::block_forward(
                    res,
                    level.attns.get(j),
                    Tensor::cat(vec![h, skip], 1),
                    temb.clone(),
                    train,
                );
                h = next;
                up_steps.push(UpStep::Block {
                    skip_channels,
                    h_channels,
                    res: rc,
                    attn: ac,
                });
            }
            if let Some(us) = &level.upsample {
                h = us.forward(h);
                up_steps.push(UpStep::Up);
            }
        }
        let [_, _, ho, wo] = h.dims();
        let (out_act, out_norm) = self.norm_out.forward_cached(h);
        let out = self.conv_out.forward(silu(out_act.clone()));
        let cache = UnetCache {
            down: down_steps,
            mid: (m1, ma, m2),
            up: up_steps,
            out_norm,
            out_act,
            out_hw: [ho, wo],
        };
        (out.reshape([b, c * hh * ww]), cache)
    }

    /// gᵀ·∂g(x)/∂x, flat `[B, C·H·W]`.
    pub fn vjp(&self, cache: &UnetCache, g: Tensor<2>) -> Tensor<2> {
        let [c, hh, ww] = self.image_shape;
        let b = g.dims()[0];
        let g = self.conv_out.vjp(g.reshape([b, c, hh, ww]), cache.out_hw);
        let mut g = self
            .norm_out
            .vjp(&cache.out_norm, silu_vjp(cache.out_act.clone(), g));
        // Up path in reverse; collect the skip cotangents in the order the skips were popped, reversed.
        let mut g_skips: Vec<Tensor<4>> = Vec::new();
        let mut steps = cache.up.iter().rev();
        for level in self.up.iter().rev() {
            if let Some(us) = &level.upsample {
                let step = steps.next().expect("up cache");
                debug_assert!(matches!(step, UpStep::Up));
                g = us.vjp(g);
            }
            for (j, res) in level.blocks.iter().enumerate().rev() {
                let Some(UpStep::Block {
                    skip_channels,
                    h_channels,
                    res: rc,
                    attn: ac,
                }) = steps.next()
                else {
                    panic!("UNet cache does not match the network (up path)");
                };
                let g_cat = Self::block_vjp(res, level.attns.get(j), rc, ac, g);
                let (g_h, g_skip) = concat_channels_vjp(g_cat, *h_channels);
                debug_assert_eq!(g_skip.dims()[1], *skip_channels);
                g = g_h;
                g_skips.push(g_skip);
            }
        }
        let (m1, ma, m2) = &cache.mid;
        g = self.mid2.vjp(m2, g);
        g = self.mid_attn.vjp(ma, g);
        g = self.mid1.vjp(m1, g);
        // Down path in reverse: each step's output was a skip, so its cotangent is the sum.
        let mut steps = cache.down.iter().rev();
        for level in self.down.iter().rev() {
            if let Some(ds) = &level.downsample {
                g = g + g_skips.pop().expect("skip cotangent");
                let Some(DownStep::Down { hw }) = steps.next() else {
                    panic!("UNet cache does not match the network (downsample)");
                };
                g = ds.vjp(g, *hw);
            }
            for (j, res) in level.blocks.iter().enumerate().rev() {
                g = g + g_skips.pop().expect("skip cotangent");
                let Some(DownStep::Block { res: rc, attn: ac }) = steps.next() else {
                    panic!("UNet cache does not match the network (down path)");
                };
                g = Self::block_vjp(res, level.attns.get(j), rc, ac, g);
            }
        }
        g = g + g_skips.pop().expect("skip cotangent of conv_in");
        let Some(DownStep::ConvIn { hw }) = steps.next() else {
            panic!("UNet cache does not match the network (conv_in)");
        };
        debug_assert!(g_skips.is_empty());
        self.conv_in.vjp(g, *hw).reshape([b, c * hh * ww])
    }
}
