//! Variance-preserving discrete noise schedules (method.md §1).
//!
//! Indexing is 0-based everywhere: level k ∈ [0, T) is the paper's step k+1. All quantities are kept
//! in f64 on the host; models receive per-example σ_t as tensors built from these tables.
//! σ_t := √(1 − ᾱ_t) is defined here and only here.

use serde::{Deserialize, Serialize};

/// How β_t is laid out over the T training levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// β linear from `beta_start`·(1000/T) to `beta_end`·(1000/T) (DDPM / guided-diffusion).
    Linear {
        timesteps: usize,
        #[serde(default = "default_beta_start")]
        beta_start: f64,
        #[serde(default = "default_beta_end")]
        beta_end: f64,
    },
    /// Nichol & Dhariwal cosine: ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T)+s)/(1+s)·π/2), β clipped.
    Cosine {
        timesteps: usize,
        #[serde(default = "default_cosine_s")]
        s: f64,
        #[serde(default = "default_max_beta")]
        max_beta: f64,
    },
}

fn default_beta_start() -> f64 {
    1e-4
}
fn default_beta_end() -> f64 {
    0.02
}
fn default_cosine_s() -> f64 {
    0.008
}
fn default_max_beta() -> f64 {
    0.999
}

impl ScheduleConfig {
    pub fn cosine(timesteps: usize) -> Self {
        ScheduleConfig::Cosine {
            timesteps,
            s: default_cosine_s(),
            max_beta: default_max_beta(),
        }
    }

    pub fn linear(timesteps: usize) -> Self {
        ScheduleConfig::Linear {
            timesteps,
            beta_start: default_beta_start(),
            beta_end: default_beta_end(),
        }
    }

    pub fn timesteps(&self) -> usize {
        match self {
            ScheduleConfig::Linear { timesteps, .. } | ScheduleConfig::Cosine { timesteps, .. } => {
                *timesteps
            }
        }
    }

    /// Checks ranges; the error names the offending key relative to the schedule table.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let t = self.timesteps();
        if !(2..=100_000).contains(&t) {
            return Err((
                "timesteps".into(),
                format!("must be in 2..=100000, got {t}"),
            ));
        }
        match self {
            ScheduleConfig::Linear {
                beta_start,
                beta_end,
                timesteps,
            } => {
                let scale = 1000.0 / *timesteps as f64;
                if !(*beta_start > 0.0 && beta_start < beta_end && beta_end * scale < 1.0) {
                    return Err((
                        "beta_start/beta_end".into(),
                        format!(
                            "need 0 < beta_start < beta_end and beta_end·1000/T < 1, got {beta_start}, {beta_end} with T={timesteps}"
                        ),
                    ));
                }
            }
            ScheduleConfig::Cosine { s, max_beta, .. } => {
                if !(*s >= 0.0 && *s < 1.0) {
                    return Err(("s".into(), format!("must be in [0, 1), got {s}")));
                }
                if !(*max_beta > 0.0 && *max_beta < 1.0) {
                    return Err((
                        "max_beta".into(),
                        format!("must be in (0, 1), got {max_beta}"),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn build(&self) -> NoiseSchedule {
        let t = self.timesteps();
        let betas: Vec<f64> = match self {
            ScheduleConfig::Linear {
                beta_start,
                beta_end,
                ..
            } => {
                let scale = 1000.0 / t as f64;
                let (a, b) = (beta_start * scale, beta_end * scale);
                (0..t)
                    .map(|k| a + (b - a) * k as f64 / (t - 1) as f64)
                    .collect()
            }
            ScheduleConfig::Cosine { s, max_beta, .. } => {
                let f = |u: f64| {
                    ((u / t as f64 + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..t)
                    .map(|k| (1.0 - f((k + 1) as f64) / f(k as f64)).clamp(0.0, *max_beta))
                    .collect()
            }
        };
        NoiseSchedule::from_betas(betas)
    }
}

/// Tables of a discrete VP diffusion, indexed by level k ∈ [0, T).
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    betas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    /// The original-schedule level of each level (identity unless respaced).
    source_levels: Vec<usize>,
}

impl NoiseSchedule {
    pub fn from_betas(betas: Vec<f64>) -> Self {
        let mut acc = 1.0;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        let source_levels = (0..betas.len()).collect();
        NoiseSchedule {
            betas,
            alphas_cumprod,
            source_levels,
        }
    }

    /// Number of levels T.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    pub fn beta(&self, k: usize) -> f64 {
        self.betas[k]
    }

    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// α_k = 1 − β_k.
    pub fn alpha(&self, k: usize) -> f64 {
        1.0 - self.betas[k]
    }

    /// ᾱ_k = ∏_{j≤k} α_j.
    pub fn alpha_bar(&self, k: usize) -> f64 {
        self.alphas_cumprod[k]
    }

    /// ᾱ_{k−1}, with ᾱ_{−1} := 1.
    pub fn alpha_bar_prev(&self, k: usize) -> f64 {
        if k == 0 {
            1.0
        } else {
            self.alphas_cumprod[k - 1]
        }
    }

    /// σ_k = √(1 − ᾱ_k): the noise standard deviation of level k, and the factor that turns
    /// ε-predictions into scores (s = −ε/σ) and energies into log-densities (log q̃ = −E/σ).
    pub fn sigma(&self, k: usize) -> f64 {
        (1.0 - self.alphas_cumprod[k]).sqrt()
    }

    /// Posterior variance β̃_k = β_k (1 − ᾱ_{k−1}) / (1 − ᾱ_k) ("fixed small").
    pub fn posterior_variance(&self, k: usize) -> f64 {
        self.betas[k] * (1.0 - self.alpha_bar_prev(k)) / (1.0 - self.alpha_bar(k))
    }

    /// Coefficients (c1, c2) of the posterior mean μ = c1·x̂₀ + c2·x_k.
    pub fn posterior_mean_coefs(&self, k: usize) -> (f64, f64) {
        let denom = 1.0 - self.alpha_bar(k);
        let c1 = self.betas[k] * self.alpha_bar_prev(k).sqrt() / denom;
        let c2 = (1.0 - self.alpha_bar_prev(k)) * self.alpha(k).sqrt() / denom;
        (c1, c2)
    }

    /// The original-schedule level that level k came from (identity unless respaced).
    pub fn source_level(&self, k: usize) -> usize {
        self.source_levels[k]
    }

    /// Keeps the given increasing subset of levels: new β_i = 1 − ᾱ_{s_i}/ᾱ_{s_{i−1}} with
    /// ᾱ_{s_{−1}} := 1, so the kept levels have exactly their original ᾱ (method.md §1.2).
    pub fn respaced(&self, keep: &[usize]) -> Result<NoiseSchedule, String> {
        if keep.is_empty() {
            return Err("respacing needs at least one level".into());
        }
        if keep.windows(2).any(|w| w[0] >= w[1]) || *keep.last().unwrap() >= self.len() {
            return Err(format!(
                "respacing levels must be strictly increasing and < {}, got {keep:?}",
                self.len()
            ));
        }
        let mut prev = 1.0;
        let betas = keep
            .iter()
            .map(|&k| {
                let ab = self.alphas_cumprod[k];
                let b = 1.0 - ab / prev;
                prev = ab;
                b
            })
            .collect();
        let mut out = NoiseSchedule::from_betas(betas);
        out.source_levels = keep.iter().map(|&k| self.source_levels[k]).collect();
        Ok(out)
    }

    /// `count` levels from an evenly spaced grid over [0, T−1], rounded (guided-diffusion style).
    pub fn evenly_spaced_levels(&self, count: usize) -> Vec<usize> {
        let t = self.len();
        let count = count.clamp(1, t);
        if count == 1 {
            return vec![t - 1];
        }
        let mut levels: Vec<usize> = (0..count)
            .map(|i| ((i as f64) * (t - 1) as f64 / (count - 1) as f64).round() as usize)
            .collect();
        levels.dedup();
        levels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Reference values of the 2-D cosine schedule (T = 100), method.md §1.2 table.
    #[test]
    fn cosine_matches_reference_table() {
        let s = ScheduleConfig::cosine(100).build();
        let table = [
            (0, 0.000631, 0.999369, 0.0251),
            (9, 0.005033, 0.972093, 0.1671),
            (24, 0.012883, 0.847012, 0.3911),
            (49, 0.030593, 0.493844, 0.7114),
            (74, 0.071578, 0.144272, 0.9251),
            (89, 0.172145, 0.024092, 0.9879),
            (98, 0.749939, 0.000243, 0.99988),
        ];
        for (k, beta, ab, sigma) in table {
            assert!(close(s.beta(k), beta, 2e-6), "beta[{k}] = {}", s.beta(k));
            assert!(
                close(s.alpha_bar(k), ab, 2e-6),
                "alpha_bar[{k}] = {}",
                s.alpha_bar(k)
            );
            assert!(
                close(s.sigma(k), sigma, 1e-4),
                "sigma[{k}] = {}",
                s.sigma(k)
            );
        }
        assert_eq!(s.beta(99), 0.999, "last beta is clipped");
        assert!(close(s.sigma(99), 1.0, 1e-6));
    }

    #[test]
    fn linear_endpoints_and_closed_form() {
        let s = ScheduleConfig::linear(1000).build();
        assert!(close(s.beta(0), 1e-4, 1e-15));
        assert!(close(s.beta(999), 0.02, 1e-15));
        // ᾱ_k = ∏(1−β_j): compare with a log-sum computed independently.
        let k = 500;
        let log_ab: f64 = (0..=k)
            .map(|j| (1.0 - (1e-4 + (0.02 - 1e-4) * j as f64 / 999.0)).ln())
            .sum();
        assert!(close(s.alpha_bar(k), log_ab.exp(), 1e-12));
        // T=100 rescales the endpoints by 1000/T.
        let s100 = ScheduleConfig::linear(100).build();
        assert!(close(s100.beta(0), 1e-3, 1e-15) && close(s100.beta(99), 0.2, 1e-12));
    }

    #[test]
    fn posterior_coefficients_match_definition() {
        let s = ScheduleConfig::cosine(100).build();
        for k in [1usize, 30, 77] {
            let (c1, c2) = s.posterior_mean_coefs(k);
            // With x̂₀ from the forward relation the posterior mean equals (x − β/σ ε)/√α (method.md §1.4).
            let (x, eps) = (0.7f64, -0.3f64);
            let x0 = (x - s.sigma(k) * eps) / s.alpha_bar(k).sqrt();
            let mu = c1 * x0 + c2 * x;
            let mu2 = (x - s.beta(k) / s.sigma(k) * eps) / s.alpha(k).sqrt();
            assert!(close(mu, mu2, 1e-12), "k={k}: {mu} vs {mu2}");
            let var = s.posterior_variance(k);
            assert!(var > 0.0 && var < s.beta(k));
        }
        assert_eq!(s.posterior_variance(0), 0.0);
    }

    #[test]
    fn respacing_preserves_alpha_bar_of_kept_levels() {
        let s = ScheduleConfig::linear(1000).build();
        let keep = s.evenly_spaced_levels(50);
        assert_eq!(keep.len(), 50);
        assert_eq!((keep[0], keep[49]), (0, 999));
        let r = s.respaced(&keep).unwrap();
        assert_eq!(r.len(), 50);
        for (i, &k) in keep.iter().enumerate() {
            assert!(close(r.alpha_bar(i), s.alpha_bar(k), 1e-12));
            assert!(close(r.sigma(i), s.sigma(k), 1e-12));
            assert_eq!(r.source_level(i), k);
        }
        assert!(s.respaced(&[3, 2]).is_err());
        assert!(s.respaced(&[1000]).is_err());
    }

    #[test]
    fn validation_rejects_bad_values() {
        let bad = ScheduleConfig::Cosine {
            timesteps: 100,
            s: -1.0,
            max_beta: 0.999,
        };
        assert_eq!(bad.validate().unwrap_err().0, "s");
        let bad = ScheduleConfig::Linear {
            timesteps: 10,
            beta_start: 1e-4,
            beta_end: 0.02,
        };
        assert!(
            bad.validate().is_err(),
            "beta_end·1000/T = 2 must be rejected"
        );
        assert!(ScheduleConfig::cosine(100).validate().is_ok());
    }
}
