//! The model interface the rest of ebdiff uses. Samplers and compositions see only these traits.

use burn::tensor::{Int, Tensor};

/// Everything besides x that a network is conditioned on, for one batch.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// Per-example level index k ∈ [0, T).
    pub t: Tensor<1, Int>,
    /// Per-example class labels; `None` = unconditional. For class-conditional models the
    /// null label (`num_classes`) selects the unconditional branch used by CFG.
    pub labels: Option<Tensor<1, Int>>,
    /// Training mode (enables dropout).
    pub train: bool,
}

impl Conditioning {
    pub fn new(t: Tensor<1, Int>) -> Self {
        Conditioning {
            t,
            labels: None,
            train: false,
        }
    }

    pub fn with_labels(mut self, labels: Tensor<1, Int>) -> Self {
        self.labels = Some(labels);
        self
    }

    pub fn training(mut self, train: bool) -> Self {
        self.train = train;
        self
    }
}

/// A network predicting the noise ε of x_t = √ᾱ x₀ + σ ε. x is `[batch, dim]`.
pub trait EpsModel {
    /// Flattened data dimension.
    fn data_dim(&self) -> usize;
    /// ε̂(x, t). For energy models this is ∇ₓE.
    fn eps(&self, x: Tensor<2>, cond: &Conditioning) -> Tensor<2>;
}

/// A model with a scalar energy E_θ(x, t) per example whose input gradient is ε̂.
pub trait EnergyModel: EpsModel {
    /// E_θ(x, t), shape `[batch]`.
    fn energy(&self, x: Tensor<2>, cond: &Conditioning) -> Tensor<1>;
    /// E_θ and ε̂ = ∇ₓE_θ together (one forward and one VJP).
    fn energy_and_eps(&self, x: Tensor<2>, cond: &Conditioning) -> (Tensor<1>, Tensor<2>);
}

/// Score s = ∇ₓ log q_t(x) = −ε̂/σ_t. `sigma` is per example, shape `[batch]`.
pub fn score_from_eps(eps: Tensor<2>, sigma: Tensor<1>) -> Tensor<2> {
    eps.neg() / sigma.unsqueeze_dim::<2>(1)
}

/// Unnormalized log-density of the level-t marginal, log q̃_t = −E/σ_t (method.md §2.3).
pub fn log_density_from_energy(energy: Tensor<1>, sigma: Tensor<1>) -> Tensor<1> {
    energy.neg() / sigma
}
