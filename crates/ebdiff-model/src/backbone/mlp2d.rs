//! The paper's residual MLP for 2-D data (method.md §5.1, §11), with its explicit input VJP.
//!
//! h₀ = x W_in; block: a = LN(h), c = silu(a)W₁ + e W_e, f = silu(c)W₂, o = silu(f)W₃, h ← h + o;
//! g = h W_out. e is a learned table lookup of the level (plus a class embedding if conditional).

use crate::layers::{ClassEmbedding, LayerNorm, Linear, Shift, Silu};
use crate::traits::Conditioning;
use crate::vjp::{Layer, Named, Residual, Stack, Visitor, Vjp, residual};
use crate::{Seq, seq};
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

type BlockGraph<'a> = Residual<
    Seq![
        Named<&'a LayerNorm>,
        Named<Silu>,
        Named<&'a Linear>,
        Named<Shift<'a>>,
        Named<Silu>,
        Named<&'a Linear>,
        Named<Silu>,
        Named<&'a Linear>,
    ],
>;

pub type MlpBlockCache = <BlockGraph<'static> as Vjp<Tensor<2>>>::Cache;

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

    /// h + l3(silu(l2(silu(l1(silu(LN(h))) + l_emb(e))))).
    fn graph(&self) -> BlockGraph<'_> {
        residual(seq![
            Named("norm", &self.norm),
            Named("act1", Silu),
            Named("l1", &self.l1),
            Named("l_emb", Shift(&self.l_emb)),
            Named("act2", Silu),
            Named("l2", &self.l2),
            Named("act3", Silu),
            Named("l3", &self.l3),
        ])
    }
}

/// The context is the block embedding e, `[B, emb_dim]`.
impl Layer<Tensor<2>, Tensor<2>> for MlpBlock {
    fn forward_visit<V: Visitor>(
        &self,
        h: Tensor<2>,
        emb: &Tensor<2>,
        v: &mut V,
    ) -> (Tensor<2>, MlpBlockCache) {
        self.graph().forward_visit(h, emb, v)
    }
}

impl Vjp<Tensor<2>> for MlpBlock {
    type Output = Tensor<2>;
    type Cache = MlpBlockCache;
    fn vjp(&self, cache: &MlpBlockCache, g: Tensor<2>) -> Tensor<2> {
        self.graph().vjp(cache, g)
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

type NetGraph<'a> = Seq![Named<&'a Linear>, Stack<'a, MlpBlock>, Named<&'a Linear>];

pub type ResidualMlpCache = <NetGraph<'static> as Vjp<Tensor<2>>>::Cache;

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

    fn graph(&self) -> NetGraph<'_> {
        seq![
            Named("input", &self.input),
            Stack("blocks", &self.blocks),
            Named("output", &self.output),
        ]
    }
}

/// x `[B, data_dim]` → g(x) `[B, data_dim]`; the embedding of the conditioning is the blocks'
/// context.
impl Layer<Tensor<2>, Conditioning> for ResidualMlp {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<2>,
        cond: &Conditioning,
        v: &mut V,
    ) -> (Tensor<2>, ResidualMlpCache) {
        let emb = self.embedding(x.dims()[0], cond);
        self.graph().forward_visit(x, &emb, v)
    }
}

impl Vjp<Tensor<2>> for ResidualMlp {
    type Output = Tensor<2>;
    type Cache = ResidualMlpCache;
    fn vjp(&self, cache: &ResidualMlpCache, g: Tensor<2>) -> Tensor<2> {
        self.graph().vjp(cache, g)
    }
}
