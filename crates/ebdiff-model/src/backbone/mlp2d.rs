//! The paper's residual MLP for 2-D data (method.md §5.1, §11), with its explicit input VJP.
//!
//! h₀ = x W_in; block: a = LN(h), c = silu(a)W₁ + e W_e, f = silu(c)W₂, o = silu(f)W₃, h ← h + o;
//! g = h W_out. e is a learned table lookup of the level (plus a class embedding if conditional).

use crate::layers::{ClassEmbedding, LayerNorm, Linear, NormCache, silu, silu_vjp};
use crate::traits::Conditioning;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct MlpBlock {
    pub norm: LayerNorm,
    pub l1: Linear,
    pub l_emb: Linear,
    pub l2: Linear,
    pub l3: Linear,
}

#[derive(Debug, Clone)]
pub struct MlpBlockCache {
    norm: NormCache<2>,
    a: Tensor<2>,
    c: Tensor<2>,
    f: Tensor<2>,
}

impl MlpBlock {
    fn new(hidden: usize, emb_dim: usize, zero_out: bool, device: &Device) -> Self {
        MlpBlock {
            norm: LayerNorm::new(hidden, device),
            l1: Linear::new(hidden, 2 * hidden, true, false, device),
            l_emb: Linear::new(emb_dim, 2 * hidden, true, false, device),
            l2: Linear::new(2 * hidden, 2 * hidden, true, false, device),
            l3: Linear::new(2 * hidden, hidden, true, zero_out, device),
        }
    }

    pub fn forward_cached(&self, h: Tensor<2>, emb: Tensor<2>) -> (Tensor<2>, MlpBlockCache) {
        let (a, norm) = self.norm.forward_cached(h.clone());
        let c = self.l1.forward(silu(a.clone())) + self.l_emb.forward(emb);
        let f = self.l2.forward(silu(c.clone()));
        let o = self.l3.forward(silu(f.clone()));
        (h + o, MlpBlockCache { norm, a, c, f })
    }

    pub fn vjp(&self, cache: &MlpBlockCache, g: Tensor<2>) -> Tensor<2> {
        let g_f = silu_vjp(cache.f.clone(), self.l3.vjp(g.clone()));
        let g_c = silu_vjp(cache.c.clone(), self.l2.vjp(g_f));
        let g_a = silu_vjp(cache.a.clone(), self.l1.vjp(g_c));
        g + self.norm.vjp(&cache.norm, g_a)
    }
}

#[derive(Module, Debug)]
pub struct ResidualMlp {
    pub input: Linear,
    pub time_table: Param<Tensor<2>>,
    pub class_emb: Option<ClassEmbedding>,
    pub blocks: Vec<MlpBlock>,
    pub output: Linear,
}

#[derive(Debug, Clone)]
pub struct ResidualMlpCache {
    blocks: Vec<MlpBlockCache>,
}

/// Shape of a [`ResidualMlp`].
#[derive(Debug, Clone)]
pub struct ResidualMlpShape {
    pub data_dim: usize,
    pub hidden: usize,
    pub blocks: usize,
    pub emb_dim: usize,
    pub timesteps: usize,
    pub num_classes: Option<usize>,
    pub zero_init_output: bool,
}

impl ResidualMlp {
    pub fn new(s: &ResidualMlpShape, device: &Device) -> Self {
        ResidualMlp {
            input: Linear::new(s.data_dim, s.hidden, true, false, device),
            time_table: Initializer::Normal {
                mean: 0.0,
                std: 1.0,
            }
            .init([s.timesteps, s.emb_dim], device),
            class_emb: s
                .num_classes
                .map(|n| ClassEmbedding::new(n, s.emb_dim, device)),
            blocks: (0..s.blocks)
                .map(|_| MlpBlock::new(s.hidden, s.emb_dim, s.zero_init_output, device))
                .collect(),
            output: Linear::new(s.hidden, s.data_dim, true, s.zero_init_output, device),
        }
    }

    fn embedding(&self, batch: usize, cond: &Conditioning) -> Tensor<2> {
        let e = self.time_table.val().select(0, cond.t.clone());
        match &self.class_emb {
            Some(ce) => e.clone() + ce.forward(cond.labels.clone(), batch, &e.device()),
            None => {
                assert!(
                    cond.labels.is_none(),
                    "labels were given to an unconditional model (set model.num_classes to train a conditional one)"
                );
                e
            }
        }
    }

    pub fn forward_cached(
        &self,
        x: Tensor<2>,
        cond: &Conditioning,
    ) -> (Tensor<2>, ResidualMlpCache) {
        let emb = self.embedding(x.dims()[0], cond);
        let mut h = self.input.forward(x);
        let mut caches = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (next, cache) = block.forward_cached(h, emb.clone());
            h = next;
            caches.push(cache);
        }
        (self.output.forward(h), ResidualMlpCache { blocks: caches })
    }

    pub fn vjp(&self, cache: &ResidualMlpCache, g: Tensor<2>) -> Tensor<2> {
        let mut g = self.output.vjp(g);
        for (block, c) in self.blocks.iter().zip(&cache.blocks).rev() {
            g = block.vjp(c, g);
        }
        self.input.vjp(g)
    }
}
