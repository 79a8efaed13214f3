//! Single-head spatial self-attention block of the DDPM UNet: y = x + proj(attn(GN(x))).
//!
//! With Q,K,V = GN(x)·W_{q,k,v} over the N = H·W positions, S = QKᵀ/√C, P = softmax(S):
//! VJP: ∂O = ∂Y W_pᵀ, ∂P = ∂O Vᵀ, ∂V = Pᵀ∂O, ∂S = P ⊙ (∂P − rowsum(∂P ⊙ P)),
//! ∂Q = ∂S K/√C, ∂K = ∂Sᵀ Q/√C, ∂H = ∂Q W_qᵀ + ∂K W_kᵀ + ∂V W_vᵀ, then GroupNorm's VJP.

use super::linear::Linear;
use super::norm::GroupNorm;
use crate::vjp::{Layer, Named, Residual, Visitor, Vjp, residual};
use burn::module::Module;
use burn::tensor::{Device, Tensor, activation::softmax};

#[derive(Module, Debug)]
pub struct AttentionBlock {
    pub norm: GroupNorm,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub proj: Linear,
}

type Graph<'a> = Residual<
    crate::Seq![
        Named<&'a GroupNorm>,
        Tokens<crate::Seq![SelfAttention<'a>, Named<&'a Linear>]>
    ],
>;

/// What [`AttentionBlock`]'s VJP needs from its forward pass.
pub type AttentionCache = <Graph<'static> as Vjp<Tensor<4>>>::Cache;

impl AttentionBlock {
    pub fn new(channels: usize, groups: usize, zero_proj: bool, device: &Device) -> Self {
        AttentionBlock {
            norm: GroupNorm::new(groups, channels, device),
            q: Linear::new(channels, channels, true, false, device),
            k: Linear::new(channels, channels, true, false, device),
            v: Linear::new(channels, channels, true, false, device),
            proj: Linear::new(channels, channels, true, zero_proj, device),
        }
    }

    /// x + proj(attention(tokens(GN(x)))).
    fn graph(&self) -> Graph<'_> {
        residual(crate::seq![
            Named("norm", &self.norm),
            Tokens(crate::seq![
                SelfAttention {
                    q: &self.q,
                    k: &self.k,
                    v: &self.v,
                },
                Named("proj", &self.proj),
            ]),
        ])
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_cached(x, &()).0
    }
}

impl<C> Layer<Tensor<4>, C> for AttentionBlock {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<4>,
        ctx: &C,
        v: &mut V,
    ) -> (Tensor<4>, AttentionCache) {
        self.graph().forward_visit(x, ctx, v)
    }
}

impl Vjp<Tensor<4>> for AttentionBlock {
    type Output = Tensor<4>;
    type Cache = AttentionCache;
    fn vjp(&self, cache: &AttentionCache, g: Tensor<4>) -> Tensor<4> {
        self.graph().vjp(cache, g)
    }
}

/// Runs `F` on the N = H·W positions as tokens `[B, N, C]`.
#[derive(Debug, Clone, Copy)]
pub struct Tokens<F>(pub F);

fn to_tokens(x: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).swap_dims(1, 2)
}

fn from_tokens(t: Tensor<3>, hw: [usize; 2]) -> Tensor<4> {
    let [b, _, c] = t.dims();
    t.swap_dims(1, 2).reshape([b, c, hw[0], hw[1]])
}

impl<C, F: Layer<Tensor<3>, C, Output = Tensor<3>>> Layer<Tensor<4>, C> for Tokens<F> {
    fn forward_visit<V: Visitor>(
        &self,
        x: Tensor<4>,
        ctx: &C,
        v: &mut V,
    ) -> (Tensor<4>, Self::Cache) {
        let [_, _, h, w] = x.dims();
        let (y, cache) = self.0.forward_visit(to_tokens(x), ctx, v);
        (from_tokens(y, [h, w]), (cache, [h, w]))
    }
}

impl<F: Vjp<Tensor<3>, Output = Tensor<3>>> Vjp<Tensor<4>> for Tokens<F> {
    type Output = Tensor<4>;
    type Cache = (F::Cache, [usize; 2]);
    fn vjp(&self, (cache, hw): &Self::Cache, g: Tensor<4>) -> Tensor<4> {
        from_tokens(self.0.vjp(cache, to_tokens(g)), *hw)
    }
}

/// `products` batched `[N, N] × [N, C]`-sized products over tokens `[B, N, C]`.
fn count_products(&[b, n, c]: &[usize; 3], products: usize) {
    for _ in 0..products {
        crate::flops::matmul(b * n, n, c);
    }
}

/// Single-head softmax attention of tokens `[B, N, C]` with themselves (before the output
/// projection).
#[derive(Debug, Clone, Copy)]
pub struct SelfAttention<'a> {
    pub q: &'a Linear,
    pub k: &'a Linear,
    pub v: &'a Linear,
}

#[derive(Debug, Clone)]
pub struct SelfAttentionCache {
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    p: Tensor<3>,
}

impl<C> Layer<Tensor<3>, C> for SelfAttention<'_> {
    fn forward_visit<V: Visitor>(
        &self,
        tokens: Tensor<3>,
        ctx: &C,
        vis: &mut V,
    ) -> (Tensor<3>, SelfAttentionCache) {
        let c = tokens.dims()[2];
        let (q, ()) = vis.child(&"q", self.q, tokens.clone(), ctx);
        let (k, ()) = vis.child(&"k", self.k, tokens.clone(), ctx);
        let (v, ()) = vis.child(&"v", self.v, tokens, ctx);
        let scale = 1.0 / (c as f64).sqrt();
        count_products(&q.dims(), 2); // q kᵀ and p v
        let p = softmax(
            q.clone()
                .matmul(k.clone().swap_dims(1, 2))
                .mul_scalar(scale),
            2,
        );
        let o = p.clone().matmul(v.clone());
        (o, SelfAttentionCache { q, k, v, p })
    }
}

impl Vjp<Tensor<3>> for SelfAttention<'_> {
    type Output = Tensor<3>;
    type Cache = SelfAttentionCache;

    fn vjp(&self, cache: &SelfAttentionCache, g_o: Tensor<3>) -> Tensor<3> {
        let c = g_o.dims()[2];
        let scale = 1.0 / (c as f64).sqrt();
        let SelfAttentionCache { q, k, v, p } = cache.clone();
        count_products(&q.dims(), 4); // g_p, g_v, g_q, g_k
        let g_p = g_o.clone().matmul(v.swap_dims(1, 2));
        let g_v = p.clone().swap_dims(1, 2).matmul(g_o);
        let row = (g_p.clone() * p.clone()).sum_dim(2);
        let g_s = p * (g_p - row);
        let g_q = g_s.clone().matmul(k).mul_scalar(scale);
        let g_k = g_s.swap_dims(1, 2).matmul(q).mul_scalar(scale);
        let linear_vjp = |l: &Linear, g: Tensor<3>| Vjp::<Tensor<3>>::vjp(l, &(), g);
        linear_vjp(self.q, g_q) + linear_vjp(self.k, g_k) + linear_vjp(self.v, g_v)
    }
}
