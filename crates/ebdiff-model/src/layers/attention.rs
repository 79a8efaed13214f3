//! Single-head spatial self-attention block of the DDPM UNet: y = x + proj(attn(GN(x))).
//!
//! With Q,K,V = GN(x)·W_{q,k,v} over the N = H·W positions, S = QKᵀ/√C, P = softmax(S):
//! VJP: ∂O = ∂Y W_pᵀ, ∂P = ∂O Vᵀ, ∂V = Pᵀ∂O, ∂S = P ⊙ (∂P − rowsum(∂P ⊙ P)),
//! ∂Q = ∂S K/√C, ∂K = ∂Sᵀ Q/√C, ∂H = ∂Q W_qᵀ + ∂K W_kᵀ + ∂V W_vᵀ, then GroupNorm's VJP.

use super::linear::Linear;
use super::norm::{GroupNorm, NormCache};
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

#[derive(Debug, Clone)]
pub struct AttentionCache {
    norm: NormCache<3>,
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    p: Tensor<3>,
}

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

    fn to_tokens(x: Tensor<4>) -> Tensor<3> {
        let [b, c, h, w] = x.dims();
        x.reshape([b, c, h * w]).swap_dims(1, 2)
    }

    fn from_tokens(t: Tensor<3>, hw: [usize; 2]) -> Tensor<4> {
        let [b, _, c] = t.dims();
        t.swap_dims(1, 2).reshape([b, c, hw[0], hw[1]])
    }

    pub fn forward_cached(&self, x: Tensor<4>) -> (Tensor<4>, AttentionCache) {
        let [_, c, h, w] = x.dims();
        let (hn, norm) = self.norm.forward_cached(x.clone());
        let tokens = Self::to_tokens(hn);
        let q = self.q.forward(tokens.clone());
        let k = self.k.forward(tokens.clone());
        let v = self.v.forward(tokens);
        let scale = 1.0 / (c as f64).sqrt();
        let p = softmax(
            q.clone()
                .matmul(k.clone().swap_dims(1, 2))
                .mul_scalar(scale),
            2,
        );
        let o = p.clone().matmul(v.clone());
        let y = x + Self::from_tokens(self.proj.forward(o), [h, w]);
        (y, AttentionCache { norm, q, k, v, p })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_cached(x).0
    }

    pub fn vjp(&self, cache: &AttentionCache, grad_out: Tensor<4>) -> Tensor<4> {
        let [_, c, h, w] = grad_out.dims();
        let scale = 1.0 / (c as f64).sqrt();
        let AttentionCache { norm, q, k, v, p } = cache.clone();
        let g_o = self.proj.vjp(Self::to_tokens(grad_out.clone()));
        let g_p = g_o.clone().matmul(v.swap_dims(1, 2));
        let g_v = p.clone().swap_dims(1, 2).matmul(g_o);
        let row = (g_p.clone() * p.clone()).sum_dim(2);
        let g_s = p * (g_p - row);
        let g_q = g_s.clone().matmul(k).mul_scalar(scale);
        let g_k = g_s.swap_dims(1, 2).matmul(q).mul_scalar(scale);
        let g_tokens = self.q.vjp(g_q) + self.k.vjp(g_k) + self.v.vjp(g_v);
        grad_out + self.norm.vjp(&norm, Self::from_tokens(g_tokens, [h, w]))
    }
}
