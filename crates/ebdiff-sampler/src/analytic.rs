//! Analytic targets with exact log-densities and scores: isotropic Gaussian mixtures, either the
//! same at every level or diffused by the VP forward process (q_k = N(√ᾱ_k μ, ᾱ_k v + σ_k²) per
//! component). They stand in for trained models in tests and sampler studies.

use crate::target::{Evaluation, Target};
use burn::tensor::{Device, Tensor, TensorData, activation::softmax};
use ebdiff_core::NoiseSchedule;
use std::f64::consts::PI;

/// Σ_j w_j N(μ_j, v I) in D dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct IsotropicGmm {
    pub means: Vec<Vec<f64>>,
    pub weights: Vec<f64>,
    pub var: f64,
}

impl IsotropicGmm {
    pub fn new(means: Vec<Vec<f64>>, weights: Vec<f64>, var: f64) -> Self {
        assert!(
            !means.is_empty() && means.len() == weights.len(),
            "one weight per component"
        );
        let d = means[0].len();
        assert!(
            means.iter().all(|m| m.len() == d),
            "components differ in dimension"
        );
        assert!(var > 0.0);
        let total: f64 = weights.iter().sum();
        IsotropicGmm {
            means,
            weights: weights.iter().map(|w| w / total).collect(),
            var,
        }
    }

    pub fn gaussian(mean: Vec<f64>, var: f64) -> Self {
        Self::new(vec![mean], vec![1.0], var)
    }

    pub fn dim(&self) -> usize {
        self.means[0].len()
    }

    /// Exact samples, flat `[n, D]`.
    pub fn sample(&self, n: usize, rng: &mut impl rand::Rng) -> Vec<f32> {
        use rand_distr::{Distribution, Normal, weighted::WeightedIndex};
        let pick = WeightedIndex::new(&self.weights).expect("positive weights");
        let normal = Normal::new(0.0, self.var.sqrt()).unwrap();
        let mut out = Vec::with_capacity(n * self.dim());
        for _ in 0..n {
            let m = &self.means[pick.sample(rng)];
            out.extend(m.iter().map(|mu| (mu + normal.sample(rng)) as f32));
        }
        out
    }

    /// The mixture after diffusing to level k: means √ᾱ μ, variance ᾱ v + σ².
    pub fn diffused(&self, schedule: &NoiseSchedule, k: usize) -> IsotropicGmm {
        let (ab, s) = (schedule.alpha_bar(k), schedule.sigma(k));
        IsotropicGmm {
            means: self
                .means
                .iter()
                .map(|m| m.iter().map(|v| v * ab.sqrt()).collect())
                .collect(),
            weights: self.weights.clone(),
            var: ab * self.var + s * s,
        }
    }

    /// Exact log-density and score of a batch `[B, D]`.
    pub fn evaluate_at(&self, x: Tensor<2>) -> Evaluation {
        let device = x.device();
        let (j, d) = (self.means.len(), self.dim());
        let flat: Vec<f32> = self.means.iter().flatten().map(|v| *v as f32).collect();
        let m = Tensor::<2>::from_data(TensorData::new(flat, [j, d]), &device);
        let log_w: Vec<f32> = self.weights.iter().map(|w| w.ln() as f32).collect();
        let log_w = Tensor::<2>::from_data(TensorData::new(log_w, [1, j]), &device);
        // ‖x − μ_j‖² = ‖x‖² − 2⟨x, μ_j⟩ + ‖μ_j‖², [B, J]
        let x2 = x.clone().square().sum_dim(1);
        let m2 = m.clone().square().sum_dim(1).transpose();
        let dist = x2 - x.clone().matmul(m.clone().transpose()).mul_scalar(2.0) + m2;
        let logits = log_w + dist.div_scalar(-2.0 * self.var);
        let max = logits.clone().max_dim(1);
        let lse = ((logits.clone() - max.clone()).exp().sum_dim(1).log() + max).squeeze_dim::<1>(1);
        let log_norm = -0.5 * d as f64 * (2.0 * PI * self.var).ln();
        let r = softmax(logits, 1);
        let score = (r.matmul(m) - x).div_scalar(self.var);
        Evaluation {
            log_density: Some(lse.add_scalar(log_norm)),
            score,
        }
    }
}

/// A target that is the same mixture at every level (for kernel invariance tests).
pub struct StaticTarget(pub IsotropicGmm);

impl Target for StaticTarget {
    fn data_dim(&self) -> usize {
        self.0.dim()
    }
    fn has_energy(&self) -> bool {
        true
    }
    fn evaluate(&self, x: Tensor<2>, _level: usize) -> Evaluation {
        self.0.evaluate_at(x)
    }
}

/// The exact diffused marginals of a mixture: an oracle "model" for level k.
pub struct DiffusedTarget<'a> {
    pub data: IsotropicGmm,
    pub schedule: &'a NoiseSchedule,
}

impl Target for DiffusedTarget<'_> {
    fn data_dim(&self) -> usize {
        self.data.dim()
    }
    fn has_energy(&self) -> bool {
        true
    }
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        self.data.diffused(self.schedule, level).evaluate_at(x)
    }
    fn data_log_density(&self, x: Tensor<2>) -> Option<Tensor<1>> {
        self.data.evaluate_at(x).log_density
    }
    fn is_normalized(&self) -> bool {
        true
    }
}

/// Hides the log-density of a target: exercises the score-only (line-integral) paths.
pub struct ScoreOnly<T: Target>(pub T);

impl<T: Target> Target for ScoreOnly<T> {
    fn data_dim(&self) -> usize {
        self.0.data_dim()
    }
    fn has_energy(&self) -> bool {
        false
    }
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        Evaluation {
            log_density: None,
            score: self.0.evaluate(x, level).score,
        }
    }
}

/// Uploads flat `[n, d]` points.
pub fn points(data: Vec<f32>, d: usize, device: &Device) -> Tensor<2> {
    let n = data.len() / d;
    Tensor::from_data(TensorData::new(data, [n, d]), device)
}
