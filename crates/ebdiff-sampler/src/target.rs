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

/// One weighted score term of a product composition (for Feynman–Kac corrector weights).
#[derive(Debug, Clone)]
pub struct ScoreTerm {
    /// The term's weight in the product (path weights multiplied through nested products).
    pub weight: f64,
    /// ∇ₓ of the term's log-density, unweighted, `[B, D]`.
    pub score: Tensor<2>,
    /// A classifier term ∇ log p(y | x, t) rather than a diffusion model's score.
    pub classifier: bool,
}

/// A family of unnormalized densities indexed by diffusion level.
pub trait Target {
    fn data_dim(&self) -> usize;
    /// `Some(n)` when evaluations need exactly n rows in a fixed order (per-example labels):
    /// such targets cannot be sampled by samplers that resample or reorder particles.
    fn fixed_batch(&self) -> Option<usize> {
        None
    }
    /// Whether [`Target::evaluate`] returns log-densities (needed for exact MH corrections).
    fn has_energy(&self) -> bool;
    /// Score, and log-density when available, at level `level`.
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation;
    /// The score alone.
    fn score(&self, x: Tensor<2>, level: usize) -> Tensor<2> {
        self.evaluate(x, level).score
    }
    /// The evaluation together with the product's weighted score terms (one term for a plain
    /// target); `None` for targets that are not products of terms (mixtures).
    fn evaluate_terms(&self, x: Tensor<2>, level: usize) -> Option<(Evaluation, Vec<ScoreTerm>)> {
        let e = self.evaluate(x, level);
        let term = ScoreTerm {
            weight: 1.0,
            score: e.score.clone(),
            classifier: false,
        };
        Some((e, vec![term]))
    }
    /// c such that the target at the noisiest levels is ≈ N(0, I/c): 1 for a diffusion model,
    /// Σ wᵢ cᵢ for a product (a classifier term, flat at high noise, counts 0). SMC starts its
    /// particles from N(0, I/c).
    fn noise_precision(&self) -> f64 {
        1.0
    }
    /// Whether `evaluate`'s log-densities are normalized at every level (oracles): a mixture
    /// then needs no normalizer estimate for this component.
    fn is_normalized(&self) -> bool {
        false
    }
    /// The exact, normalized log-density of the data law (σ = 0), where it is known (oracle
    /// components): SMC then ends with a weighted move from level 0 to the data.
    fn data_log_density(&self, _x: Tensor<2>) -> Option<Tensor<1>> {
        None
    }
    /// Mean ‖wᵢ ∇fᵢ‖ over the batch for each weighted term of a composition (one entry for a
    /// plain target): shows which term dominates the dynamics at each level.
    fn term_score_norms(&self, x: Tensor<2>, level: usize) -> Vec<f64> {
        vec![mean_row_norm(self.score(x, level))]
    }
}

/// A borrowed target is a target (so compositions can use components they do not own).
impl<T: Target + ?Sized> Target for &T {
    fn data_dim(&self) -> usize {
        (**self).data_dim()
    }
    fn fixed_batch(&self) -> Option<usize> {
        (**self).fixed_batch()
    }
    fn has_energy(&self) -> bool {
        (**self).has_energy()
    }
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        (**self).evaluate(x, level)
    }
    fn score(&self, x: Tensor<2>, level: usize) -> Tensor<2> {
        (**self).score(x, level)
    }
    fn evaluate_terms(&self, x: Tensor<2>, level: usize) -> Option<(Evaluation, Vec<ScoreTerm>)> {
        (**self).evaluate_terms(x, level)
    }
    fn noise_precision(&self) -> f64 {
        (**self).noise_precision()
    }
    fn is_normalized(&self) -> bool {
        (**self).is_normalized()
    }
    fn data_log_density(&self, x: Tensor<2>) -> Option<Tensor<1>> {
        (**self).data_log_density(x)
    }
    fn term_score_norms(&self, x: Tensor<2>, level: usize) -> Vec<f64> {
        (**self).term_score_norms(x, level)
    }
}

/// A target seen through a respaced schedule: level k of the sampler is level `source[k]` of the
/// schedule the target was built on (`NoiseSchedule::source_level`). Respacing keeps each kept
/// level's ᾱ, so σ and every log-density are the target's own there; MCMC and SMC then step
/// through e.g. 100 of a model's 1000 training levels, as reverse diffusion does.
pub struct Respaced<'a> {
    pub inner: &'a dyn Target,
    /// The inner target's level for each sampler level.
    pub source: Vec<usize>,
}

impl Target for Respaced<'_> {
    fn data_dim(&self) -> usize {
        self.inner.data_dim()
    }
    fn fixed_batch(&self) -> Option<usize> {
        self.inner.fixed_batch()
    }
    fn has_energy(&self) -> bool {
        self.inner.has_energy()
    }
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        self.inner.evaluate(x, self.source[level])
    }
    fn score(&self, x: Tensor<2>, level: usize) -> Tensor<2> {
        self.inner.score(x, self.source[level])
    }
    fn evaluate_terms(&self, x: Tensor<2>, level: usize) -> Option<(Evaluation, Vec<ScoreTerm>)> {
        self.inner.evaluate_terms(x, self.source[level])
    }
    fn noise_precision(&self) -> f64 {
        self.inner.noise_precision()
    }
    fn is_normalized(&self) -> bool {
        self.inner.is_normalized()
    }
    fn data_log_density(&self, x: Tensor<2>) -> Option<Tensor<1>> {
        self.inner.data_log_density(x)
    }
    fn term_score_norms(&self, x: Tensor<2>, level: usize) -> Vec<f64> {
        self.inner.term_score_norms(x, self.source[level])
    }
}

/// A target evaluated `rows` rows at a time: the same values as one call (every row is evaluated
/// on its own), but networks on a CPU run a batch of ~100 images faster per image than one of
/// 1000 (cache), and a GPU's memory bounds the batch.
pub struct Chunked<'a> {
    pub inner: &'a dyn Target,
    pub rows: usize,
}

impl Chunked<'_> {
    fn chunks(&self, x: Tensor<2>) -> Vec<Tensor<2>> {
        let n = x.dims()[0];
        (0..n)
            .step_by(self.rows.max(1))
            .map(|start| x.clone().slice(start..(start + self.rows).min(n)))
            .collect()
    }
}

fn cat_evaluations(parts: Vec<Evaluation>) -> Evaluation {
    let log_density = parts
        .iter()
        .map(|e| e.log_density.clone())
        .collect::<Option<Vec<_>>>()
        .map(|v| Tensor::cat(v, 0));
    Evaluation {
        log_density,
        score: Tensor::cat(parts.into_iter().map(|e| e.score).collect(), 0),
    }
}

impl Target for Chunked<'_> {
    fn data_dim(&self) -> usize {
        self.inner.data_dim()
    }
    fn fixed_batch(&self) -> Option<usize> {
        self.inner.fixed_batch()
    }
    fn has_energy(&self) -> bool {
        self.inner.has_energy()
    }
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        if x.dims()[0] <= self.rows {
            return self.inner.evaluate(x, level);
        }
        let parts = self
            .chunks(x)
            .into_iter()
            .map(|c| self.inner.evaluate(c, level))
            .collect();
        cat_evaluations(parts)
    }
    fn score(&self, x: Tensor<2>, level: usize) -> Tensor<2> {
        if x.dims()[0] <= self.rows {
            return self.inner.score(x, level);
        }
        let parts = self
            .chunks(x)
            .into_iter()
            .map(|c| self.inner.score(c, level))
            .collect();
        Tensor::cat(parts, 0)
    }
    fn evaluate_terms(&self, x: Tensor<2>, level: usize) -> Option<(Evaluation, Vec<ScoreTerm>)> {
        if x.dims()[0] <= self.rows {
            return self.inner.evaluate_terms(x, level);
        }
        let parts = self
            .chunks(x)
            .into_iter()
            .map(|c| self.inner.evaluate_terms(c, level))
            .collect::<Option<Vec<_>>>()?;
        let n_terms = parts[0].1.len();
        let mut evals = Vec::with_capacity(parts.len());
        let mut terms: Vec<Vec<ScoreTerm>> = vec![Vec::new(); n_terms];
        for (e, ts) in parts {
            evals.push(e);
            for (slot, t) in terms.iter_mut().zip(ts) {
                slot.push(t);
            }
        }
        let terms = terms
            .into_iter()
            .map(|parts| ScoreTerm {
                weight: parts[0].weight,
                classifier: parts[0].classifier,
                score: Tensor::cat(parts.into_iter().map(|t| t.score).collect(), 0),
            })
            .collect();
        Some((cat_evaluations(evals), terms))
    }
    fn noise_precision(&self) -> f64 {
        self.inner.noise_precision()
    }
    fn is_normalized(&self) -> bool {
        self.inner.is_normalized()
    }
    fn data_log_density(&self, x: Tensor<2>) -> Option<Tensor<1>> {
        self.inner.data_log_density(x)
    }
    fn term_score_norms(&self, x: Tensor<2>, level: usize) -> Vec<f64> {
        self.inner.term_score_norms(x, level)
    }
}

/// Mean over rows of ‖row‖₂.
pub fn mean_row_norm(t: Tensor<2>) -> f64 {
    t.square().sum_dim(1).sqrt().mean().into_scalar::<f64>()
}

/// Class labels of a conditional model's evaluations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Labels {
    /// Unconditional model, or a conditional one with its null label.
    #[default]
    None,
    /// The same class for every example.
    Class(usize),
    /// One class per example (sample grids, FID with classes cycling); the batch must have
    /// exactly this many rows, in this order, so samplers that reorder particles refuse it.
    PerExample(Vec<usize>),
}

/// One trained diffusion model (optionally class-conditional) as a target:
/// f_k = −E/σ_k and ∇f_k = −ε̂/σ_k.
pub struct ModelTarget<'a> {
    pub model: &'a DiffusionModel,
    pub schedule: &'a NoiseSchedule,
    pub labels: Labels,
}

impl ModelTarget<'_> {
    fn conditioning(&self, x: &Tensor<2>, level: usize) -> Conditioning {
        let [b, _] = x.dims();
        let device = x.device();
        let cond = Conditioning::new(Tensor::<1, Int>::full([b], level as i64, &device));
        match &self.labels {
            Labels::None => cond,
            Labels::Class(y) => cond.with_labels(Tensor::<1, Int>::full([b], *y as i64, &device)),
            Labels::PerExample(ys) => {
                assert_eq!(ys.len(), b, "one label per example");
                let ys: Vec<i64> = ys.iter().map(|&y| y as i64).collect();
                cond.with_labels(Tensor::<1, Int>::from_data(
                    burn::tensor::TensorData::new(ys, [b]),
                    &device,
                ))
            }
        }
    }
}

impl Target for ModelTarget<'_> {
    fn data_dim(&self) -> usize {
        self.model.data_dim
    }
    fn fixed_batch(&self) -> Option<usize> {
        match &self.labels {
            Labels::PerExample(ys) => Some(ys.len()),
            _ => None,
        }
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
    fn evaluate_terms(&self, x: Tensor<2>, level: usize) -> Option<(Evaluation, Vec<ScoreTerm>)> {
        let e = self.evaluate(x, level);
        let term = ScoreTerm {
            weight: 1.0,
            score: e.score.clone(),
            classifier: true,
        };
        Some((e, vec![term]))
    }
    fn noise_precision(&self) -> f64 {
        0.0
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
