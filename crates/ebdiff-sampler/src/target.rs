//! What an MCMC kernel samples: an unnormalized density π_k(x) ∝ exp f_k(x) at diffusion level k,
//! given by its score ∇f_k and, when every ingredient has an energy, f_k itself.

use burn::tensor::{Int, Tensor};
use ebdiff_core::NoiseSchedule;
use ebdiff_model::{Conditioning, DiffusionModel, EpsModel};

/// f_k and ∇f_k for a batch `[B, D]`.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// log p̃_k(x) up to a constant, `[B]`; `None` for score-only targets.
    pub log_density: Option<Tensor<1>>,
    /// ∇ₓ log p̃_k(x), `[B, D]`.
    pub score: Tensor<2>,
}

/// A family of unnormalized densities indexed by diffusion level.
pub trait Target {
    fn data_dim(&self) -> usize;
    /// Whether [`Target::evaluate`] returns log-densities (needed for exact MH corrections).
    fn has_energy(&self) -> bool;
    /// Score, and log-density when available, at level `level`.
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation;
    /// The score alone.
    fn score(&self, x: Tensor<2>, level: usize) -> Tensor<2> {
        self.evaluate(x, level).score
    }
    /// Mean ‖wᵢ ∇fᵢ‖ over the batch for each weighted term of a composition (one entry for a
    /// plain target): shows which term dominates the dynamics at each level.
    fn term_score_norms(&self, x: Tensor<2>, level: usize) -> Vec<f64> {
        vec![mean_row_norm(self.score(x, level))]
    }
}

/// Mean over rows of ‖row‖₂.
pub fn mean_row_norm(t: Tensor<2>) -> f64 {
    t.square().sum_dim(1).sqrt().mean().into_scalar::<f64>()
}

/// One trained diffusion model (optionally with a fixed class label) as a target:
/// f_k = −E/σ_k and ∇f_k = −ε̂/σ_k.
pub struct ModelTarget<'a> {
    pub model: &'a DiffusionModel,
    pub schedule: &'a NoiseSchedule,
    /// Class label for conditional models (`None`: unconditional / null label).
    pub label: Option<usize>,
}

impl ModelTarget<'_> {
    fn conditioning(&self, x: &Tensor<2>, level: usize) -> Conditioning {
        let [b, _] = x.dims();
        let device = x.device();
        let cond = Conditioning::new(Tensor::<1, Int>::full([b], level as i64, &device));
        match self.label {
            Some(y) => cond.with_labels(Tensor::<1, Int>::full([b], y as i64, &device)),
            None => cond,
        }
    }
}

impl Target for ModelTarget<'_> {
    fn data_dim(&self) -> usize {
        self.model.data_dim
    }
    fn has_energy(&self) -> bool {
        self.model.is_energy()
    }
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        let sigma = self.schedule.sigma(level);
        let cond = self.conditioning(&x, level);
        if self.model.is_energy() {
            let (e, eps) = self.model.energy_and_eps(x, &cond);
            Evaluation {
                log_density: Some(e.div_scalar(-sigma)),
                score: eps.div_scalar(-sigma),
            }
        } else {
            Evaluation {
                log_density: None,
                score: self.model.eps(x, &cond).div_scalar(-sigma),
            }
        }
    }
}

/// Any target seen as an ε-predictor (ε = −σ_k ∇f_k), so that reverse diffusion can run on
/// compositions. All examples of a batch must share one level.
pub struct TargetAsEps<'a, T: Target + ?Sized> {
    pub target: &'a T,
    pub schedule: &'a NoiseSchedule,
}

impl<T: Target + ?Sized> EpsModel for TargetAsEps<'_, T> {
    fn data_dim(&self) -> usize {
        self.target.data_dim()
    }
    fn eps(&self, x: Tensor<2>, cond: &Conditioning) -> Tensor<2> {
        let level = cond.t.clone().slice(0..1).into_scalar::<i64>() as usize;
        self.target
            .score(x, level)
            .mul_scalar(-self.schedule.sigma(level))
    }
}

/// A noise-conditioned classifier as a target term: f_k = log p(y | x, k), ∇f_k by its explicit
/// VJP. Put it in a product with a diffusion model (`Composition::classifier_guided`) for
/// classifier guidance; having log p, the product keeps exact MH corrections.
pub struct ClassifierTarget<'a> {
    pub classifier: &'a ebdiff_model::NoisyClassifier,
    pub label: usize,
}

impl Target for ClassifierTarget<'_> {
    fn data_dim(&self) -> usize {
        self.classifier.image_shape.iter().product()
    }
    fn has_energy(&self) -> bool {
        true
    }
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        let [b, _] = x.dims();
        let device = x.device();
        let (log_p, grad) = self.classifier.log_prob_and_grad(
            x,
            Tensor::<1, Int>::full([b], level as i64, &device),
            Tensor::<1, Int>::full([b], self.label as i64, &device),
        );
        Evaluation {
            log_density: Some(log_p),
            score: grad,
        }
    }
}
