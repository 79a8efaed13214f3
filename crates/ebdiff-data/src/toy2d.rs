//! 2-D toy distributions of the paper (method.md §5.1) with exact sampling and log-density.

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// `[data]` section for 2-D toys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Toy2dConfig {
    /// Equal mixture of `modes` isotropic Gaussians with means on a circle.
    Ring {
        #[serde(default = "default_modes")]
        modes: usize,
        #[serde(default = "default_radius")]
        radius: f64,
        #[serde(default = "default_std")]
        std: f64,
    },
}

fn default_modes() -> usize {
    8
}
fn default_radius() -> f64 {
    0.5
}
fn default_std() -> f64 {
    0.075
}

impl Toy2dConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            Toy2dConfig::Ring { modes, radius, std } => {
                if *modes == 0 {
                    return Err(("modes".into(), "must be ≥ 1".into()));
                }
                if !(*radius >= 0.0 && radius.is_finite()) {
                    return Err(("radius".into(), format!("must be ≥ 0, got {radius}")));
                }
                if !(*std > 0.0 && std.is_finite()) {
                    return Err(("std".into(), format!("must be > 0, got {std}")));
                }
            }
        }
        Ok(())
    }

    pub fn build(&self) -> Toy2d {
        match *self {
            Toy2dConfig::Ring { modes, radius, std } => Toy2d::ring(modes, radius, std),
        }
    }
}

/// An exactly known 2-D distribution: an equal-weight isotropic Gaussian mixture.
#[derive(Debug, Clone, PartialEq)]
pub struct Toy2d {
    means: Vec<[f64; 2]>,
    std: f64,
}

impl Toy2d {
    /// `modes` Gaussians of standard deviation `std` at radius `radius`, angles 2πk/modes.
    pub fn ring(modes: usize, radius: f64, std: f64) -> Self {
        let means = (0..modes)
            .map(|k| {
                let a = 2.0 * PI * k as f64 / modes as f64;
                [radius * a.cos(), radius * a.sin()]
            })
            .collect();
        Toy2d { means, std }
    }

    pub fn means(&self) -> &[[f64; 2]] {
        &self.means
    }

    pub fn std(&self) -> f64 {
        self.std
    }

    /// n exact samples, row-major `[n, 2]`.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        let normal = Normal::new(0.0, self.std).expect("positive std");
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let m = self.means[rng.random_range(0..self.means.len())];
            out.push((m[0] + normal.sample(rng)) as f32);
            out.push((m[1] + normal.sample(rng)) as f32);
        }
        out
    }

    /// Exact log-density at a point (log-sum-exp over the components).
    pub fn log_density(&self, p: [f64; 2]) -> f64 {
        let var = self.std * self.std;
        let log_norm = -(2.0 * PI * var).ln() - (self.means.len() as f64).ln();
        let terms: Vec<f64> = self
            .means
            .iter()
            .map(|m| -((p[0] - m[0]).powi(2) + (p[1] - m[1]).powi(2)) / (2.0 * var))
            .collect();
        let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        log_norm + max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
    }

    /// Mean log-density of flat `[n, 2]` points.
    pub fn mean_log_density(&self, points: &[f32]) -> f64 {
        let n = points.len() / 2;
        points
            .chunks_exact(2)
            .map(|p| self.log_density([p[0] as f64, p[1] as f64]))
            .sum::<f64>()
            / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn density_integrates_to_one() {
        let toy = Toy2d::ring(8, 0.5, 0.075);
        // Midpoint rule on [-1, 1]² (the mass outside is < 1e-12).
        let n = 800;
        let h = 2.0 / n as f64;
        let mut total = 0.0;
        for i in 0..n {
            for j in 0..n {
                let p = [-1.0 + (i as f64 + 0.5) * h, -1.0 + (j as f64 + 0.5) * h];
                total += toy.log_density(p).exp() * h * h;
            }
        }
        assert!((total - 1.0).abs() < 1e-4, "integral = {total}");
    }

    #[test]
    fn single_gaussian_matches_closed_form() {
        let toy = Toy2d::ring(1, 0.0, 0.5);
        let p = [0.3, -0.2];
        let expected = -(2.0 * PI * 0.25f64).ln() - (0.09 + 0.04) / (2.0 * 0.25);
        assert!((toy.log_density(p) - expected).abs() < 1e-12);
    }

    #[test]
    fn samples_have_the_mixture_moments_and_entropy() {
        let toy = Toy2d::ring(8, 0.5, 0.075);
        let mut rng = StdRng::seed_from_u64(7);
        let n = 200_000;
        let s = toy.sample(n, &mut rng);
        let (mut mx, mut my, mut r2) = (0.0, 0.0, 0.0);
        for p in s.chunks_exact(2) {
            mx += p[0] as f64;
            my += p[1] as f64;
            r2 += (p[0] as f64).powi(2) + (p[1] as f64).powi(2);
        }
        let n_f = n as f64;
        assert!((mx / n_f).abs() < 0.005 && (my / n_f).abs() < 0.005);
        // E‖x‖² = r² + 2σ².
        assert!((r2 / n_f - (0.25 + 2.0 * 0.075f64.powi(2))).abs() < 0.003);
        // log p ≥ log(N_own/8), whose mean is −log 8 − log(2πσ²) − 1; the other modes (5σ away)
        // add only a little on top.
        let own = -(8f64).ln() - (2.0 * PI * 0.075f64.powi(2)).ln() - 1.0;
        let mean = toy.mean_log_density(&s);
        assert!(
            mean > own - 0.01 && mean < own + 0.1,
            "mean log-density {mean}, own-component bound {own}"
        );
    }
}
