//! Oracle components: the exact diffused laws of the 2-D toys, as [`Target`]s.
//!
//! For a toy p₀ (a [`Toy2d`], `rect`s background-smoothed exactly as [`Toy2d::log_density`]) and a
//! VP schedule, level k has the law
//!
//! q_k(x) = ∫ p₀(x₀) N(x; √ᾱ_k x₀, σ_k² I) dx₀,
//!
//! whose **normalized** log-density and exact score [`OracleTarget`] returns (f64 on the host,
//! handed back as f32 tensors like every other target). Note that q₀ is not p₀: level 0 still has
//! noise σ₀ (≈ 0.025 for the cosine T = 100 schedule) and scale √ᾱ₀. Exact data samples (p₀) come
//! from [`OracleTarget::sample_data`], exact level-k samples from [`OracleTarget::sample_level`].
//!
//! - `ring`, `blobs`: isotropic Gaussian mixtures, q_k = Σ_j w_j N(√ᾱ_k μ_j, (ᾱ_k v + σ_k²) I)
//!   ([`IsotropicGmm::diffused`]).
//! - `rect` with background b: (1 − b)·U(rect) + b·U([−1.1, 1.1]²), a mixture of two uniform
//!   boxes. A box [lo, hi] diffuses, per axis, to
//!   (1/(√ᾱ (hi − lo)))·[Φ((x − √ᾱ lo)/σ) − Φ((x − √ᾱ hi)/σ)], and the two axes multiply.
//!
//! ## Stable Φ-differences
//! At σ₀ ≈ 0.025 a point 3 units from a box sits > 100 σ in the tails, where Φ(a) − Φ(b) is
//! 1 − 1 or 0 − 0 in floating point. [`log_ndtr_diff`] works in log space instead:
//! - both arguments in the upper tail (b ≥ 0): Φ(a) − Φ(b) = Q(b) − Q(a) with Q = 1 − Φ, so
//!   log = log Q(b) + log(−expm1(log Q(a) − log Q(b))); the lower tail (a ≤ 0) by symmetry;
//! - b < 0 < a: log1p(−(Q(a) + Φ(b))) while the two tails sum to < ½, else
//!   log(½(erf(a/√2) + erf(|b|/√2))), a sum of two positive terms (no cancellation);
//! - a − b < 10⁻² and |a + b|(a − b) < 2 (e.g. ᾱ → 0 at the last levels): 8-point Gauss–Legendre
//!   of φ on [b, a] in log space, which does not lose the digits the difference would.
//!
//! log Q(z) ([`log_ndtr`] by symmetry) is log(½ erfc(z/√2)) with `libm::erfc` (the musl/fdlibm
//! port, error below 1 ulp) for z/√2 ≤ 26, where erfc ≥ 10⁻²⁹⁶ is still a normal f64; the
//! rounding error of z/√2 (which erfc's tail magnifies by 2z²/2) is carried separately and
//! corrected to first order. Beyond, the asymptotic series
//! erfc(t) = e^{−t²}/(t√π) · Σₙ (−1)ⁿ (2n − 1)!!/(2t²)ⁿ with 7 terms (truncation < 10⁻¹⁷). The per-axis score is (φ(a) − φ(b))/(σ (Φ(a) − Φ(b))),
//! computed as a ratio of log-space terms with φ(a) − φ(b) = φ(a)·(−expm1(−(b − a)(b + a)/2))
//! (or the mirror image), so it neither overflows nor cancels in the tails.

use crate::analytic::IsotropicGmm;
use crate::target::{Evaluation, Target};
use burn::tensor::{Tensor, TensorData};
use ebdiff_core::{NoiseSchedule, ScheduleConfig};
use ebdiff_data::{BACKGROUND_HALF_WIDTH, Toy2d, Toy2dConfig};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, PI, SQRT_2};
use std::fmt;

/// A model entry of a sampling config that is an exact (oracle) diffused toy instead of a trained
/// run:
///
/// ```toml
/// [models]
/// ring = { exact = { kind = "ring", modes = 8, radius = 0.5, std = 0.075 }, diffusion = { kind = "cosine", timesteps = 100 } }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExactModel {
    /// The 2-D toy (the `[data]` table of a training config: `ring`, `blobs` or `rect`).
    pub exact: Toy2dConfig,
    /// The schedule it is diffused with (default: cosine, T = 100, as `configs/toy2d.toml`).
    #[serde(default = "default_diffusion")]
    pub diffusion: ScheduleConfig,
}

fn default_diffusion() -> ScheduleConfig {
    ScheduleConfig::cosine(100)
}

/// A rejected oracle config: the offending key (e.g. `exact.std`, `diffusion.timesteps`) and what
/// is wrong with it / what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for OracleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for OracleError {}

impl ExactModel {
    /// A toy diffused with the default schedule (cosine, T = 100).
    pub fn new(exact: Toy2dConfig) -> Self {
        ExactModel {
            exact,
            diffusion: default_diffusion(),
        }
    }

    /// Semantic checks of both tables; the error's key is prefixed with `exact.` or `diffusion.`.
    pub fn validate(&self) -> Result<(), OracleError> {
        self.exact
            .validate()
            .map_err(|(key, message)| OracleError {
                key: format!("exact.{key}"),
                message,
            })?;
        self.diffusion
            .validate()
            .map_err(|(key, message)| OracleError {
                key: format!("diffusion.{key}"),
                message,
            })
    }

    /// The schedule of the `diffusion` table.
    pub fn schedule(&self) -> Result<NoiseSchedule, OracleError> {
        self.validate()?;
        Ok(self.diffusion.build())
    }

    /// The oracle target (which owns its schedule: [`OracleTarget::schedule`]).
    pub fn build(&self) -> Result<OracleTarget, OracleError> {
        let schedule = self.schedule()?;
        OracleTarget::new(self.exact.build(), schedule)
    }
}

/// The diffused law of one uniform box [x0, x1] × [y0, y1].
#[derive(Debug, Clone, PartialEq)]
struct UniformBox {
    log_weight: f64,
    x: [f64; 2],
    y: [f64; 2],
}

#[derive(Debug, Clone, PartialEq)]
enum Law {
    Gaussians(IsotropicGmm),
    Boxes(Vec<UniformBox>),
}

/// The exact diffused marginals q_k of a 2-D toy under a schedule (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct OracleTarget {
    toy: Toy2d,
    schedule: NoiseSchedule,
    law: Law,
}

impl OracleTarget {
    /// The oracle of `toy` under `schedule`. Errors (key `diffusion`) unless 0 < ᾱ_k < 1 at every
    /// level: a level without noise has no density, a level without signal no finite box density.
    pub fn new(toy: Toy2d, schedule: NoiseSchedule) -> Result<Self, OracleError> {
        if schedule.is_empty() {
            return Err(OracleError {
                key: "diffusion".into(),
                message: "the schedule has no levels; use at least 2 timesteps".into(),
            });
        }
        if let Some(k) =
            (0..schedule.len()).find(|&k| !(schedule.alpha_bar(k) > 0.0 && schedule.sigma(k) > 0.0))
        {
            return Err(OracleError {
                key: "diffusion".into(),
                message: format!(
                    "level {k} has alpha_bar = {}: the oracle needs 0 < alpha_bar < 1 at every \
                     level (every beta in (0, 1))",
                    schedule.alpha_bar(k)
                ),
            });
        }
        let law = match toy.config() {
            Toy2dConfig::Ring { .. } | Toy2dConfig::Blobs { .. } => {
                let means: Vec<Vec<f64>> = toy.means().iter().map(|m| m.to_vec()).collect();
                let weights = vec![1.0; means.len()];
                Law::Gaussians(IsotropicGmm::new(means, weights, toy.std().powi(2)))
            }
            &Toy2dConfig::Rect {
                x, y, background, ..
            } => {
                let mut boxes = vec![UniformBox {
                    log_weight: (1.0 - background).ln(),
                    x,
                    y,
                }];
                if background > 0.0 {
                    let b = [-BACKGROUND_HALF_WIDTH, BACKGROUND_HALF_WIDTH];
                    boxes.push(UniformBox {
                        log_weight: background.ln(),
                        x: b,
                        y: b,
                    });
                }
                Law::Boxes(boxes)
            }
        };
        Ok(OracleTarget { toy, schedule, law })
    }

    /// The oracle of a toy config under a schedule config.
    pub fn from_configs(
        toy: &Toy2dConfig,
        diffusion: &ScheduleConfig,
    ) -> Result<Self, OracleError> {
        ExactModel {
            exact: toy.clone(),
            diffusion: diffusion.clone(),
        }
        .build()
    }

    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    /// The level-0 data law p₀ (its [`Toy2d::log_density`] is the law the oracle diffuses).
    pub fn toy(&self) -> &Toy2d {
        &self.toy
    }

    /// Normalized log q_k(p) and ∇ log q_k(p), in f64.
    ///
    /// # Panics
    /// If `level` is not a level of the schedule.
    pub fn log_density_and_score(&self, p: [f64; 2], level: usize) -> (f64, [f64; 2]) {
        assert!(
            level < self.schedule.len(),
            "OracleTarget: level {level} is outside the schedule's 0..{}",
            self.schedule.len()
        );
        match &self.law {
            Law::Gaussians(gmm) => {
                gmm_log_density_and_score(&gmm.diffused(&self.schedule, level), p)
            }
            Law::Boxes(boxes) => {
                let (sqrt_ab, sigma) = (
                    self.schedule.alpha_bar(level).sqrt(),
                    self.schedule.sigma(level),
                );
                let parts: Vec<(f64, [f64; 2])> = boxes
                    .iter()
                    .map(|b| {
                        let (lx, sx) = box_axis(p[0], b.x, sqrt_ab, sigma);
                        let (ly, sy) = box_axis(p[1], b.y, sqrt_ab, sigma);
                        (b.log_weight + lx + ly, [sx, sy])
                    })
                    .collect();
                mixture(&parts)
            }
        }
    }

    /// Normalized log q_k at each point.
    pub fn log_density(&self, points: &[[f64; 2]], level: usize) -> Vec<f64> {
        points
            .iter()
            .map(|&p| self.log_density_and_score(p, level).0)
            .collect()
    }

    /// n exact draws of the data law p₀, flat `[n, 2]`: [`Toy2d::sample_smoothed`] (for a `rect`
    /// the background-smoothed law, which is what the oracle diffuses).
    pub fn sample_data(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        self.toy.sample_smoothed(n, rng)
    }

    /// n exact draws of q_k, flat `[n, 2]`: √ᾱ_k x₀ + σ_k ε with x₀ ~ p₀.
    ///
    /// # Panics
    /// If `level` is not a level of the schedule.
    pub fn sample_level(&self, level: usize, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        assert!(
            level < self.schedule.len(),
            "OracleTarget: level {level} is outside the schedule's 0..{}",
            self.schedule.len()
        );
        let (sqrt_ab, sigma) = (
            self.schedule.alpha_bar(level).sqrt(),
            self.schedule.sigma(level),
        );
        let x0 = self.toy.sample_smoothed(n, rng);
        x0.iter()
            .map(|&v| {
                let e: f64 = StandardNormal.sample(rng);
                (sqrt_ab * v as f64 + sigma * e) as f32
            })
            .collect()
    }
}

impl Target for OracleTarget {
    fn data_dim(&self) -> usize {
        2
    }
    fn has_energy(&self) -> bool {
        true
    }
    fn is_normalized(&self) -> bool {
        true
    }
    /// The toy's own law p₀ (`Toy2d::log_density`: a rect is background-smoothed).
    fn data_log_density(&self, x: Tensor<2>) -> Option<Tensor<1>> {
        let device = x.device();
        let [b, _] = x.dims();
        let flat: Vec<f64> = x
            .into_data()
            .convert::<f64>()
            .try_to_vec()
            .expect("float tensor data");
        let l: Vec<f32> = flat
            .chunks_exact(2)
            .map(|p| self.toy().log_density([p[0], p[1]]) as f32)
            .collect();
        Some(Tensor::from_data(TensorData::new(l, [b]), &device))
    }
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        let device = x.device();
        let [b, d] = x.dims();
        assert_eq!(d, 2, "OracleTarget: points must be [B, 2], got [{b}, {d}]");
        let flat: Vec<f64> = x
            .into_data()
            .convert::<f64>()
            .try_to_vec()
            .expect("float tensor data");
        let mut log_density = Vec::with_capacity(b);
        let mut score = Vec::with_capacity(2 * b);
        for p in flat.chunks_exact(2) {
            let (l, s) = self.log_density_and_score([p[0], p[1]], level);
            log_density.push(l as f32);
            score.extend([s[0] as f32, s[1] as f32]);
        }
        Evaluation {
            log_density: Some(Tensor::from_data(
                TensorData::new(log_density, [b]),
                &device,
            )),
            score: Tensor::from_data(TensorData::new(score, [b, 2]), &device),
        }
    }
}

/// log-sum-exp of the components' log-densities and the responsibility-weighted mean score.
fn mixture(parts: &[(f64, [f64; 2])]) -> (f64, [f64; 2]) {
    let max = parts
        .iter()
        .map(|(l, _)| *l)
        .fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return (max, [0.0, 0.0]);
    }
    let (mut total, mut s) = (0.0, [0.0, 0.0]);
    for (l, g) in parts {
        let w = (l - max).exp();
        total += w;
        s[0] += w * g[0];
        s[1] += w * g[1];
    }
    (max + total.ln(), [s[0] / total, s[1] / total])
}

fn gmm_log_density_and_score(g: &IsotropicGmm, p: [f64; 2]) -> (f64, [f64; 2]) {
    let v = g.var;
    let log_norm = -(2.0 * PI * v).ln();
    let parts: Vec<(f64, [f64; 2])> = g
        .means
        .iter()
        .zip(&g.weights)
        .map(|(m, w)| {
            let d = [p[0] - m[0], p[1] - m[1]];
            let l = w.ln() + log_norm - (d[0] * d[0] + d[1] * d[1]) / (2.0 * v);
            (l, [-d[0] / v, -d[1] / v])
        })
        .collect();
    mixture(&parts)
}

/// One axis of a diffused uniform box [lo, hi]: log of
/// (1/(√ᾱ (hi − lo)))·[Φ((x − √ᾱ lo)/σ) − Φ((x − √ᾱ hi)/σ)] and its x-derivative.
fn box_axis(x: f64, [lo, hi]: [f64; 2], sqrt_ab: f64, sigma: f64) -> (f64, f64) {
    let a = (x - sqrt_ab * lo) / sigma;
    let b = (x - sqrt_ab * hi) / sigma;
    let (log_diff, ratio) = ndtr_interval(a, b);
    (log_diff - (sqrt_ab * (hi - lo)).ln(), ratio / sigma)
}

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// log φ(z) of the standard normal density.
fn log_phi(z: f64) -> f64 {
    -0.5 * z * z - LN_SQRT_2PI
}

/// 1/√2 − `FRAC_1_SQRT_2` (mpmath): with it, z/√2 is carried to ~2⁻¹⁰⁶ relative.
const FRAC_1_SQRT_2_LO: f64 = -4.833_646_656_726_457e-17;

/// erfc(z/√2). The tail of erfc turns a relative error η of its argument u into a relative error
/// 2u²η of the result (1e-13 at z = 30), so the rounding error of z/√2 is carried separately
/// (u + du, du by FMA) and corrected to first order: erfc(u + du) ≈ erfc(u) − du·(2/√π)e^{−u²}.
fn erfc_over_sqrt2(z: f64) -> f64 {
    let u = z * FRAC_1_SQRT_2;
    let du = z.mul_add(FRAC_1_SQRT_2, -u) + z * FRAC_1_SQRT_2_LO;
    libm::erfc(u) - du * FRAC_2_SQRT_PI * (-u * u).exp()
}

/// log Q(z) = log P(N(0, 1) > z), accurate to a few ulp for all z (see the module docs).
fn log_upper_tail(z: f64) -> f64 {
    if z < 0.0 {
        (-0.5 * erfc_over_sqrt2(-z)).ln_1p()
    } else if z <= 26.0 * SQRT_2 {
        (0.5 * erfc_over_sqrt2(z)).ln()
    } else {
        // erfc(t) = e^{−t²}/(t√π) · Σₙ (−1)ⁿ (2n − 1)!!/(2t²)ⁿ with t = z/√2, 2t² = z²; the
        // next term is < 10⁻¹⁷. Q = erfc/2 and 2t√π = z·√(2π).
        let u = 1.0 / (z * z);
        let mut term = 1.0;
        let mut series = 1.0;
        for n in 1..=7 {
            term *= -((2 * n - 1) as f64) * u;
            series += term;
        }
        -0.5 * z * z - z.ln() - LN_SQRT_2PI + series.ln()
    }
}

/// log Φ(z), the log of the standard normal CDF, accurate far into both tails (e.g. z = −1000).
pub fn log_ndtr(z: f64) -> f64 {
    log_upper_tail(-z)
}

/// log(Φ(a) − Φ(b)) for a ≥ b, without the cancellation of the plain difference: finite as long
/// as the difference is a normal f64 *in log space*, e.g. for a = 200, b = 199.
///
/// # Panics
/// If a < b.
pub fn log_ndtr_diff(a: f64, b: f64) -> f64 {
    assert!(a >= b, "log_ndtr_diff needs a ≥ b, got a = {a}, b = {b}");
    ndtr_interval(a, b).0
}

/// 8-point Gauss–Legendre nodes (positive half) and weights on [−1, 1].
const GL8: [(f64, f64); 4] = [
    (0.183_434_642_495_649_8, 0.362_683_783_378_362),
    (0.525_532_409_916_329, 0.313_706_645_877_887_3),
    (0.796_666_477_413_626_7, 0.222_381_034_453_374_5),
    (0.960_289_856_497_536_3, 0.101_228_536_290_376_3),
];

/// (log(Φ(a) − Φ(b)), (φ(a) − φ(b))/(Φ(a) − Φ(b))) for a ≥ b.
fn ndtr_interval(a: f64, b: f64) -> (f64, f64) {
    let delta = a - b;
    let mid = 0.5 * (a + b);
    if delta < 1e-2 && mid.abs() * delta < 1.0 {
        // ∫_b^a φ = (δ/2) Σ wᵢ φ(zᵢ); φ(a) − φ(b) = ∫_b^a φ' = −∫_b^a z φ(z) dz. Weights relative to
        // φ(mid): log φ(z) − log φ(mid) = −(z − mid)(z + mid)/2.
        let (mut mass, mut first) = (0.0, 0.0);
        for &(node, w) in &GL8 {
            for s in [node, -node] {
                let h = 0.5 * delta * s;
                let z = mid + h;
                let e = w * (-0.5 * h * (z + mid)).exp();
                mass += e;
                first += e * z;
            }
        }
        let log = (0.5 * delta).ln() + log_phi(mid) + mass.ln();
        return (log, -first / mass);
    }
    let log = if b >= 0.0 {
        log_sub(log_upper_tail(b), log_upper_tail(a))
    } else if a <= 0.0 {
        log_sub(log_ndtr(a), log_ndtr(b))
    } else {
        // b < 0 < a: 1 − Q(a) − Φ(b), from the tails while they are small (log near 0, where
        // the relative accuracy of the tails matters), else ½(erf(a/√2) + erf(|b|/√2)), a sum
        // of two positive terms.
        let tails = 0.5 * (erfc_over_sqrt2(a) + erfc_over_sqrt2(-b));
        if tails < 0.5 {
            (-tails).ln_1p()
        } else {
            (0.5 * (libm::erf(a * FRAC_1_SQRT_2) - libm::erf(b * FRAC_1_SQRT_2))).ln()
        }
    };
    // φ(a) − φ(b) relative to the larger of the two densities.
    let ratio = if a.abs() <= b.abs() {
        (log_phi(a) - log).exp() * -(-0.5 * (b - a) * (b + a)).exp_m1()
    } else {
        -(log_phi(b) - log).exp() * -(-0.5 * (a - b) * (a + b)).exp_m1()
    };
    (log, ratio)
}

/// log(eᵘ − eᵛ) for u ≥ v.
fn log_sub(u: f64, v: f64) -> f64 {
    if u == f64::NEG_INFINITY {
        return u;
    }
    u + (-(v - u).exp_m1()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// log Φ(z) to 20 digits (mpmath, 50 digits: `log(erfc(-z/sqrt(2))/2)`).
    const LOG_NDTR: [(f64, f64); 18] = [
        (30.0, -4.906_713_927_148_187e-198),
        (8.0, -6.220_960_574_271_786e-16),
        (5.0, -2.866_516_129_637_636e-7),
        (1.0, -0.172_753_779_023_449_9),
        (0.0, -std::f64::consts::LN_2),
        (-0.5, -1.175_911_761_593_618_6),
        (-1.0, -1.841_021_645_009_263_5),
        (-3.0, -6.607_726_221_510_35),
        (-5.0, -15.064_998_393_988_726),
        (-10.0, -53.231_285_150_512_47),
        (-20.0, -203.917_155_371_097_26),
        (-36.0, -652.503_227_593_798_4),
        (-36.8, -681.645_173_441_703_4),
        (-37.0, -689.030_585_576_890_6),
        (-38.0, -726.557_216_018_820_1),
        (-50.0, -1_254.831_361_139_42),
        (-111.0, -6_166.128_549_880_299),
        (-1000.0, -500_007.826_694_812_2),
    ];

    /// log(Φ(a) − Φ(b)) (mpmath, 50–60 digits; same-sign upper tails as log(Q(b) − Q(a))).
    const LOG_NDTR_DIFF: [(f64, f64, f64); 15] = [
        (1.0, -1.0, -0.381_715_146_302_126_07),
        (0.3, 0.2, -3.253_164_190_574_811_5),
        (0.001, -0.002, -6.728_082_023_518_55),
        (5.0, 4.0, -10.369_193_541_521_652),
        (40.0, 39.0, -765.083_156_564_377_5),
        (120.0, 110.0, -6_055.619_501_526_557),
        (-110.0, -120.0, -6_055.619_501_526_557),
        (-3.0, -3.0001, -14.629_428_903_095_287),
        (2.5, 2.4999999, -20.162_034_060_799_57),
        (0.7, 0.69999999, -19.584_619_279_734_51),
        (-37.0, -38.0, -689.030_585_576_890_6),
        (6.0, -7.0, -9.878_674_580_695_25e-10),
        (38.2, 35.0, -616.975_101_261_922_5),
        (3.0000001, 3.0, -21.537_034_335_799_57),
        (0.0, 0.0, f64::NEG_INFINITY),
    ];

    #[test]
    fn log_ndtr_matches_high_precision_values_in_both_tails() {
        for (z, want) in LOG_NDTR {
            let got = log_ndtr(z);
            assert!(
                (got - want).abs() <= 1e-15 * want.abs(),
                "log Φ({z}) = {got:e}, want {want:e}"
            );
        }
        // The erfc/asymptotic switch at z = 26√2 is seamless.
        let z = 26.0 * SQRT_2;
        let (below, above) = (
            log_upper_tail(z * (1.0 - 1e-12)),
            log_upper_tail(z * (1.0 + 1e-12)),
        );
        assert!(
            (below - above).abs() < 1e-11 * below.abs(),
            "{below} {above}"
        );
    }

    #[test]
    fn log_ndtr_diff_matches_high_precision_values() {
        for (a, b, want) in LOG_NDTR_DIFF {
            let got = log_ndtr_diff(a, b);
            if want == f64::NEG_INFINITY {
                assert_eq!(got, want);
                continue;
            }
            assert!(
                (got - want).abs() <= 1e-13 * want.abs().max(1e-9),
                "log(Φ({a}) − Φ({b})) = {got:e}, want {want:e}"
            );
        }
    }

    #[test]
    fn interval_ratio_matches_the_density_difference_where_it_is_representable() {
        // (φ(a) − φ(b))/(Φ(a) − Φ(b)) in plain arithmetic, on moderate arguments of every branch.
        let phi = |z: f64| (-0.5 * z * z).exp() / (2.0 * PI).sqrt();
        let cdf = |z: f64| 0.5 * libm::erfc(-z / SQRT_2);
        for (a, b) in [
            (1.0, -1.0),
            (0.3, 0.2),
            (-0.2, -0.9),
            (2.0, 1.0),
            (0.5, -3.0),
            (0.1, 0.095),
        ] {
            let want = (phi(a) - phi(b)) / (cdf(a) - cdf(b));
            let (_, got) = ndtr_interval(a, b);
            assert!(
                (got - want).abs() < 1e-9 * (1.0 + want.abs()),
                "({a}, {b}): {got} vs {want}"
            );
        }
    }
}
