//! Composition of targets at one level (method.md §3), in log-density/score space:
//!
//! * product      f = Σ wᵢ fᵢ,                     s = Σ wᵢ sᵢ        (negative wᵢ: negation)
//! * guidance     f = f_∅ + w Σᵢ (f_{yᵢ} − f_∅)    (classifier-free / composable guidance; a product)
//! * mixture      f = (1/β) LSE_i(log πᵢ + β fᵢ),  s = Σ rᵢ sᵢ, r = softmax(log π + β f);
//!   β = 1 is the exact mixture, a larger β sharpens towards the max
//! * classifier   f + λ log p(y | x, t): a product with a classifier target of weight λ.
//!
//! A node has a log-density only if all its children do; a mixture needs one for its weights and
//! refuses score-only children when it is built.

use crate::target::{Evaluation, ScoreTerm, Target};
use burn::tensor::{Tensor, activation::softmax};

#[derive(Debug, Clone, PartialEq)]
pub enum CompositionError {
    /// A mixture child cannot give log-densities.
    ScoreOnlyMixtureChild {
        index: usize,
    },
    Empty(&'static str),
    DimensionMismatch {
        expected: usize,
        found: usize,
        index: usize,
    },
    InvalidParameter(String),
}

impl std::fmt::Display for CompositionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompositionError::ScoreOnlyMixtureChild { index } => write!(
                f,
                "mixture component {index} is score-only: a mixture needs each component's log-density \
                 for its responsibilities (use an energy-parameterized model)"
            ),
            CompositionError::Empty(what) => write!(f, "{what} needs at least one component"),
            CompositionError::DimensionMismatch {
                expected,
                found,
                index,
            } => {
                write!(
                    f,
                    "component {index} has data dimension {found}, expected {expected}"
                )
            }
            CompositionError::InvalidParameter(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CompositionError {}

/// A composed target: a tree whose leaves are any [`Target`].
pub enum Composition<'a> {
    Leaf(Box<dyn Target + 'a>),
    Product(Vec<(f64, Composition<'a>)>),
    Mixture {
        components: Vec<(f64, Composition<'a>)>,
        sharpness: f64,
        /// log Zᵢ(k) per component and level (`[component][level]`), subtracted from the
        /// components' log-densities so that the weights πᵢ are the mixture's masses; `None`
        /// treats every component as normalized ("equal" normalizers).
        log_normalizers: Option<Vec<Vec<f64>>>,
    },
}

fn check_dims(children: &[(f64, Composition)]) -> Result<usize, CompositionError> {
    let dim = children
        .first()
        .ok_or(CompositionError::Empty("a composition"))?
        .1
        .data_dim();
    for (i, (_, c)) in children.iter().enumerate() {
        if c.data_dim() != dim {
            return Err(CompositionError::DimensionMismatch {
                expected: dim,
                found: c.data_dim(),
                index: i,
            });
        }
    }
    Ok(dim)
}

impl<'a> Composition<'a> {
    pub fn leaf(target: impl Target + 'a) -> Self {
        Composition::Leaf(Box::new(target))
    }

    /// Weighted product Σ wᵢ fᵢ (weights may be negative).
    pub fn product(terms: Vec<(f64, Composition<'a>)>) -> Result<Self, CompositionError> {
        check_dims(&terms)?;
        if let Some((w, _)) = terms.iter().find(|(w, _)| !w.is_finite()) {
            return Err(CompositionError::InvalidParameter(format!(
                "product weight {w} is not finite"
            )));
        }
        Ok(Composition::Product(terms))
    }

    /// p₁^{1+α} / p₂^α (method.md §3.5).
    pub fn negation(
        keep: Composition<'a>,
        remove: Composition<'a>,
        alpha: f64,
    ) -> Result<Self, CompositionError> {
        Self::product(vec![(1.0 + alpha, keep), (-alpha, remove)])
    }

    /// f_∅ + w Σᵢ (f_{yᵢ} − f_∅): classifier-free guidance (one condition) or the composable
    /// "y₁ AND y₂ AND …" of several. Written as the product with weights (1 − w·n, w, …, w).
    pub fn guided(
        uncond: Composition<'a>,
        conds: Vec<Composition<'a>>,
        weight: f64,
    ) -> Result<Self, CompositionError> {
        if conds.is_empty() {
            return Err(CompositionError::Empty("guidance"));
        }
        let n = conds.len() as f64;
        let mut terms = vec![(1.0 - weight * n, uncond)];
        terms.extend(conds.into_iter().map(|c| (weight, c)));
        Self::product(terms)
    }

    /// Classifier guidance f + λ log p(y | x, t), with `classifier` a target whose log-density is
    /// log p(y | x, t).
    pub fn classifier_guided(
        base: Composition<'a>,
        classifier: Composition<'a>,
        scale: f64,
    ) -> Result<Self, CompositionError> {
        Self::product(vec![(1.0, base), (scale, classifier)])
    }

    /// Mixture Σ πᵢ pᵢ; `sharpness` β = 1 is the exact mixture. Refuses score-only components.
    pub fn mixture(
        components: Vec<(f64, Composition<'a>)>,
        sharpness: f64,
    ) -> Result<Self, CompositionError> {
        check_dims(&components)?;
        if let Some(index) = components.iter().position(|(_, c)| !c.has_energy()) {
            return Err(CompositionError::ScoreOnlyMixtureChild { index });
        }
        if let Some((w, _)) = components
            .iter()
            .find(|(w, _)| !(*w > 0.0 && w.is_finite()))
        {
            return Err(CompositionError::InvalidParameter(format!(
                "mixture weight {w} must be positive"
            )));
        }
        if !(sharpness > 0.0 && sharpness.is_finite()) {
            return Err(CompositionError::InvalidParameter(format!(
                "mixture sharpness {sharpness} must be positive"
            )));
        }
        Ok(Composition::Mixture {
            components,
            sharpness,
            log_normalizers: None,
        })
    }

    /// A mixture whose components have per-level log-normalizers `log_z[i][k]` (e.g. estimated
    /// by [`crate::normalizers::estimate_log_normalizers`]).
    pub fn calibrated_mixture(
        components: Vec<(f64, Composition<'a>)>,
        sharpness: f64,
        log_z: Vec<Vec<f64>>,
    ) -> Result<Self, CompositionError> {
        if log_z.len() != components.len() || log_z.iter().any(|z| z.iter().any(|v| !v.is_finite()))
        {
            return Err(CompositionError::InvalidParameter(format!(
                "{} normalizer tables (all finite) are needed for {} mixture components",
                log_z.len(),
                components.len()
            )));
        }
        match Self::mixture(components, sharpness)? {
            Composition::Mixture {
                components,
                sharpness,
                ..
            } => Ok(Composition::Mixture {
                components,
                sharpness,
                log_normalizers: Some(log_z),
            }),
            _ => unreachable!("mixture() builds a mixture"),
        }
    }
}

impl Target for Composition<'_> {
    fn data_dim(&self) -> usize {
        match self {
            Composition::Leaf(t) => t.data_dim(),
            Composition::Product(c) | Composition::Mixture { components: c, .. } => {
                c[0].1.data_dim()
            }
        }
    }

    fn fixed_batch(&self) -> Option<usize> {
        match self {
            Composition::Leaf(t) => t.fixed_batch(),
            Composition::Product(c) | Composition::Mixture { components: c, .. } => {
                c.iter().find_map(|(_, t)| t.fixed_batch())
            }
        }
    }

    fn has_energy(&self) -> bool {
        match self {
            Composition::Leaf(t) => t.has_energy(),
            Composition::Product(c) => c.iter().all(|(_, t)| t.has_energy()),
            Composition::Mixture { .. } => true,
        }
    }

    fn evaluate_terms(&self, x: Tensor<2>, level: usize) -> Option<(Evaluation, Vec<ScoreTerm>)> {
        match self {
            Composition::Leaf(t) => t.evaluate_terms(x, level),
            Composition::Mixture { .. } => None,
            Composition::Product(terms) => {
                let mut flat = Vec::new();
                let mut score: Option<Tensor<2>> = None;
                let mut logp: Option<Tensor<1>> = Some(Tensor::zeros([x.dims()[0]], &x.device()));
                for (w, t) in terms {
                    let (e, sub) = t.evaluate_terms(x.clone(), level)?;
                    let s = e.score.mul_scalar(*w);
                    score = Some(match score {
                        Some(acc) => acc + s,
                        None => s,
                    });
                    logp = match (logp, e.log_density) {
                        (Some(acc), Some(f)) => Some(acc + f.mul_scalar(*w)),
                        _ => None,
                    };
                    flat.extend(sub.into_iter().map(|mut term| {
                        term.weight *= w;
                        term
                    }));
                }
                let e = Evaluation {
                    log_density: logp,
                    score: score.expect("non-empty product"),
                };
                Some((e, flat))
            }
        }
    }

    fn noise_precision(&self) -> f64 {
        match self {
            Composition::Leaf(t) => t.noise_precision(),
            Composition::Product(terms) => terms.iter().map(|(w, t)| w * t.noise_precision()).sum(),
            Composition::Mixture { components, .. } => {
                let total: f64 = components.iter().map(|(pi, _)| pi).sum();
                components
                    .iter()
                    .map(|(pi, t)| pi * t.noise_precision())
                    .sum::<f64>()
                    / total
            }
        }
    }

    fn is_normalized(&self) -> bool {
        matches!(self, Composition::Leaf(t) if t.is_normalized())
    }

    fn data_log_density(&self, x: Tensor<2>) -> Option<Tensor<1>> {
        match self {
            Composition::Leaf(t) => t.data_log_density(x),
            Composition::Product(terms) => terms.iter().try_fold(
                Tensor::zeros([x.dims()[0]], &x.device()),
                |acc: Tensor<1>, (w, t)| Some(acc + t.data_log_density(x.clone())?.mul_scalar(*w)),
            ),
            Composition::Mixture {
                components,
                sharpness,
                ..
            } => {
                // Data-level densities are normalized: no calibration needed.
                let logits = components
                    .iter()
                    .map(|(pi, c)| {
                        Some(
                            c.data_log_density(x.clone())?
                                .mul_scalar(*sharpness)
                                .add_scalar(pi.ln())
                                .unsqueeze_dim(1),
                        )
                    })
                    .collect::<Option<Vec<Tensor<2>>>>()?;
                Some(log_sum_exp_rows(Tensor::cat(logits, 1)).div_scalar(*sharpness))
            }
        }
    }

    fn term_score_norms(&self, x: Tensor<2>, level: usize) -> Vec<f64> {
        match self {
            Composition::Leaf(t) => t.term_score_norms(x, level),
            Composition::Product(terms)
            | Composition::Mixture {
                components: terms, ..
            } => terms
                .iter()
                .flat_map(|(w, t)| {
                    t.term_score_norms(x.clone(), level)
                        .into_iter()
                        .map(move |n| n * w.abs())
                })
                .collect(),
        }
    }

    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        match self {
            Composition::Leaf(t) => t.evaluate(x, level),
            Composition::Product(terms) => {
                let mut score: Option<Tensor<2>> = None;
                let mut logp: Option<Tensor<1>> = None;
                let mut all_energy = true;
                for (w, t) in terms {
                    let e = t.evaluate(x.clone(), level);
                    let s = e.score.mul_scalar(*w);
                    score = Some(match score {
                        Some(acc) => acc + s,
                        None => s,
                    });
                    match (e.log_density, all_energy) {
                        (Some(f), true) => {
                            let f = f.mul_scalar(*w);
                            logp = Some(match logp {
                                Some(acc) => acc + f,
                                None => f,
                            });
                        }
                        _ => all_energy = false,
                    }
                }
                Evaluation {
                    log_density: if all_energy { logp } else { None },
                    score: score.expect("non-empty product"),
                }
            }
            Composition::Mixture {
                components,
                sharpness,
                log_normalizers,
            } => {
                let evals: Vec<Evaluation> = components
                    .iter()
                    .map(|(_, c)| c.evaluate(x.clone(), level))
                    .collect();
                // logits_i = log πᵢ + β (fᵢ − log Zᵢ(k)), [B, n]
                let logits: Vec<Tensor<2>> = evals
                    .iter()
                    .zip(components)
                    .enumerate()
                    .map(|(i, (e, (pi, _)))| {
                        let log_z = log_normalizers.as_ref().map_or(0.0, |z| z[i][level]);
                        e.log_density
                            .clone()
                            .expect("mixture components have energies")
                            .sub_scalar(log_z)
                            .mul_scalar(*sharpness)
                            .add_scalar(pi.ln())
                            .unsqueeze_dim(1)
                    })
                    .collect();
                let logits = Tensor::cat(logits, 1);
                let lse = log_sum_exp_rows(logits.clone());
                let r = softmax(logits, 1);
                let mut score: Option<Tensor<2>> = None;
                for (i, e) in evals.into_iter().enumerate() {
                    let ri = r.clone().narrow(1, i, 1);
                    let s = e.score * ri;
                    score = Some(match score {
                        Some(acc) => acc + s,
                        None => s,
                    });
                }
                Evaluation {
                    log_density: Some(lse.div_scalar(*sharpness)),
                    score: score.expect("non-empty mixture"),
                }
            }
        }
    }
}

/// Row-wise log-sum-exp of `[B, n]` logits, `[B]`.
fn log_sum_exp_rows(logits: Tensor<2>) -> Tensor<1> {
    let max = logits.clone().max_dim(1);
    ((logits - max.clone()).exp().sum_dim(1).log() + max).squeeze_dim::<1>(1)
}
