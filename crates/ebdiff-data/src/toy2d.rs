//! 2-D toy distributions of the paper (method.md §5.1) with exact sampling and log-density.
//!
//! Two families: isotropic Gaussian mixtures (`ring`, `blobs`) and uniform rectangles (`rect`, for
//! the paper's bars and boxes). A uniform density is −∞ outside its rectangle, which would make
//! log-likelihood scores of slightly misplaced samples infinite and negations undefined, so the
//! *log-density* of a `rect` is smoothed with a small uniform background on
//! [−1.1, 1.1]² (Sjöberg et al., `r_3_comp_2d/metrics.py`). Training data ([`Toy2d::sample`])
//! stays the plain rectangle unless the config sets `sample_background = true`, which trains on
//! the smoothed law (the one that exact targets score against); [`Toy2d::sample_smoothed`] always
//! draws from the smoothed law.

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Half-width of the background square [−1.1, 1.1]² that smooths `rect` log-densities.
pub const BACKGROUND_HALF_WIDTH: f64 = 1.1;

/// `[data]` section for 2-D toys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Toy2dConfig {
    /// Equal mixture of `modes` isotropic Gaussians with means on a circle (angles 2πk/modes).
    Ring {
        #[serde(default = "default_modes")]
        modes: usize,
        #[serde(default = "default_radius")]
        radius: f64,
        #[serde(default = "default_std")]
        std: f64,
    },
    /// Equal mixture of isotropic Gaussians of standard deviation `std` at `centers`.
    Blobs {
        centers: Vec<[f64; 2]>,
        #[serde(default = "default_std")]
        std: f64,
    },
    /// Uniform on the rectangle `x = [x0, x1]` × `y = [y0, y1]` (training samples). Its
    /// log-density (for scoring and compositions) is that of
    /// (1 − background)·U(rect) + background·U([−1.1, 1.1]²).
    Rect {
        x: [f64; 2],
        y: [f64; 2],
        #[serde(default = "default_background")]
        background: f64,
        /// Draw training samples ([`Toy2d::sample`]) from the background-smoothed law instead
        /// of the plain rectangle. Off by default and then not serialized, so configs written
        /// before this key existed keep their exact text.
        #[serde(default, skip_serializing_if = "is_false")]
        sample_background: bool,
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
fn default_background() -> f64 {
    0.01
}
fn is_false(b: &bool) -> bool {
    !*b
}

fn check_interval(key: &str, v: [f64; 2]) -> Result<(), (String, String)> {
    if v[0].is_finite() && v[1].is_finite() && v[0] < v[1] {
        Ok(())
    } else {
        Err((
            key.into(),
            format!("must be [{key}0, {key}1] with finite {key}0 < {key}1, got {v:?}"),
        ))
    }
}

fn check_std(std: f64) -> Result<(), (String, String)> {
    if std > 0.0 && std.is_finite() {
        Ok(())
    } else {
        Err(("std".into(), format!("must be > 0, got {std}")))
    }
}

impl Toy2dConfig {
    /// Semantic checks serde cannot express; the error is (key, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            Toy2dConfig::Ring { modes, radius, std } => {
                if *modes == 0 {
                    return Err(("modes".into(), "must be ≥ 1".into()));
                }
                if !(*radius >= 0.0 && radius.is_finite()) {
                    return Err(("radius".into(), format!("must be ≥ 0, got {radius}")));
                }
                check_std(*std)
            }
            Toy2dConfig::Blobs { centers, std } => {
                if centers.is_empty() {
                    return Err((
                        "centers".into(),
                        "must list at least one [x, y] centre".into(),
                    ));
                }
                if let Some((i, c)) = centers
                    .iter()
                    .enumerate()
                    .find(|(_, c)| !(c[0].is_finite() && c[1].is_finite()))
                {
                    return Err((
                        "centers".into(),
                        format!("centre {i} = {c:?} is not finite"),
                    ));
                }
                check_std(*std)
            }
            Toy2dConfig::Rect {
                x,
                y,
                background,
                sample_background,
            } => {
                check_interval("x", *x)?;
                check_interval("y", *y)?;
                if !(0.0..1.0).contains(background) {
                    return Err((
                        "background".into(),
                        format!("must be in [0, 1), got {background}"),
                    ));
                }
                if *sample_background && *background == 0.0 {
                    return Err((
                        "sample_background".into(),
                        "has no effect with background = 0 (the smoothed law is then the plain \
                         rectangle): set background > 0 or remove sample_background"
                            .into(),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The distribution.
    ///
    /// # Panics
    /// If [`Self::validate`] fails.
    pub fn build(&self) -> Toy2d {
        if let Err((key, msg)) = self.validate() {
            panic!("invalid 2-D toy config: {key}: {msg}");
        }
        let law = match self {
            Toy2dConfig::Ring { modes, radius, std } => Law::Gaussians {
                means: ring_means(*modes, *radius),
                std: *std,
            },
            Toy2dConfig::Blobs { centers, std } => Law::Gaussians {
                means: centers.clone(),
                std: *std,
            },
            &Toy2dConfig::Rect {
                x,
                y,
                background,
                sample_background,
            } => Law::Rect {
                x,
                y,
                background,
                sample_background,
            },
        };
        Toy2d {
            config: self.clone(),
            law,
        }
    }

    /// The `kind` tag: "ring", "blobs" or "rect".
    pub fn kind(&self) -> &'static str {
        match self {
            Toy2dConfig::Ring { .. } => "ring",
            Toy2dConfig::Blobs { .. } => "blobs",
            Toy2dConfig::Rect { .. } => "rect",
        }
    }
}

fn ring_means(modes: usize, radius: f64) -> Vec<[f64; 2]> {
    (0..modes)
        .map(|k| {
            let a = 2.0 * PI * k as f64 / modes as f64;
            [radius * a.cos(), radius * a.sin()]
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
enum Law {
    Gaussians {
        means: Vec<[f64; 2]>,
        std: f64,
    },
    Rect {
        x: [f64; 2],
        y: [f64; 2],
        background: f64,
        sample_background: bool,
    },
}

/// An exactly known 2-D distribution, built from (and remembering) its [`Toy2dConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct Toy2d {
    config: Toy2dConfig,
    law: Law,
}

impl Toy2d {
    /// `modes` Gaussians of standard deviation `std` at radius `radius`, angles 2πk/modes.
    pub fn ring(modes: usize, radius: f64, std: f64) -> Self {
        Toy2dConfig::Ring { modes, radius, std }.build()
    }

    /// Equal mixture of Gaussians of standard deviation `std` at `centers`.
    pub fn blobs(centers: Vec<[f64; 2]>, std: f64) -> Self {
        Toy2dConfig::Blobs { centers, std }.build()
    }

    /// Uniform on `x × y`, log-density smoothed with weight `background` (see [`Toy2dConfig::Rect`]).
    pub fn rect(x: [f64; 2], y: [f64; 2], background: f64) -> Self {
        Toy2dConfig::Rect {
            x,
            y,
            background,
            sample_background: false,
        }
        .build()
    }

    /// The paper's vertical `bar(scale)`: x ∈ [−scale, scale], y ∈ [−1, 1], background 0.01.
    pub fn vertical_bar(scale: f64) -> Self {
        Self::rect([-scale, scale], [-1.0, 1.0], default_background())
    }

    /// The square [−h, h]² (the negation demo's boxes), background 0.01.
    pub fn square(half_width: f64) -> Self {
        Self::rect(
            [-half_width, half_width],
            [-half_width, half_width],
            default_background(),
        )
    }

    pub fn config(&self) -> &Toy2dConfig {
        &self.config
    }

    /// Means of a Gaussian-mixture toy (`ring`, `blobs`).
    ///
    /// # Panics
    /// For a `rect`, which has none.
    pub fn means(&self) -> &[[f64; 2]] {
        match &self.law {
            Law::Gaussians { means, .. } => means,
            Law::Rect { .. } => panic!("Toy2d::means: a rect is not a Gaussian mixture"),
        }
    }

    /// Component standard deviation of a Gaussian-mixture toy (`ring`, `blobs`).
    ///
    /// # Panics
    /// For a `rect`.
    pub fn std(&self) -> f64 {
        match &self.law {
            Law::Gaussians { std, .. } => *std,
            Law::Rect { .. } => panic!("Toy2d::std: a rect is not a Gaussian mixture"),
        }
    }

    /// n exact training samples, row-major `[n, 2]`. For a `rect` these are uniform on the plain
    /// rectangle (no background), so they follow [`Self::log_density`] only up to the smoothing,
    /// unless its config sets `sample_background`: then they are [`Self::sample_smoothed`].
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        match &self.law {
            Law::Gaussians { means, std } => {
                let normal = Normal::new(0.0, *std).expect("positive std");
                let mut out = Vec::with_capacity(2 * n);
                for _ in 0..n {
                    let m = means[rng.random_range(0..means.len())];
                    out.push((m[0] + normal.sample(rng)) as f32);
                    out.push((m[1] + normal.sample(rng)) as f32);
                }
                out
            }
            Law::Rect {
                sample_background: true,
                ..
            } => self.sample_smoothed(n, rng),
            &Law::Rect { x, y, .. } => (0..n)
                .flat_map(|_| {
                    let p = uniform_in(x, y, rng);
                    [p[0] as f32, p[1] as f32]
                })
                .collect(),
        }
    }

    /// n exact samples, `[n, 2]`, of the law whose density [`Self::log_density`] returns: the same
    /// as [`Self::sample`] for Gaussian mixtures, the background-smoothed law for a `rect`.
    pub fn sample_smoothed(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        (0..n)
            .flat_map(|_| {
                let p = self.sample_smoothed_point(rng);
                [p[0] as f32, p[1] as f32]
            })
            .collect()
    }

    /// One draw of the law of [`Self::log_density`], in f64.
    pub(crate) fn sample_smoothed_point(&self, rng: &mut impl Rng) -> [f64; 2] {
        match &self.law {
            Law::Gaussians { means, std } => {
                let normal = Normal::new(0.0, *std).expect("positive std");
                let m = means[rng.random_range(0..means.len())];
                [m[0] + normal.sample(rng), m[1] + normal.sample(rng)]
            }
            &Law::Rect {
                x, y, background, ..
            } => {
                if rng.random::<f64>() < background {
                    let b = [-BACKGROUND_HALF_WIDTH, BACKGROUND_HALF_WIDTH];
                    uniform_in(b, b, rng)
                } else {
                    uniform_in(x, y, rng)
                }
            }
        }
    }

    /// Exact, normalised log-density at a point: log-sum-exp over the components of a Gaussian
    /// mixture; for a `rect`, log[(1 − b)·1_rect/|rect| + b·1_{[−1.1,1.1]²}/2.2²] (−∞ where both
    /// indicators vanish, e.g. everywhere outside the rectangle when b = 0). Rectangles are closed.
    pub fn log_density(&self, p: [f64; 2]) -> f64 {
        match &self.law {
            Law::Gaussians { means, std } => {
                let var = std * std;
                let log_norm = -(2.0 * PI * var).ln() - (means.len() as f64).ln();
                let term =
                    |m: &[f64; 2]| -((p[0] - m[0]).powi(2) + (p[1] - m[1]).powi(2)) / (2.0 * var);
                let max = means.iter().map(term).fold(f64::NEG_INFINITY, f64::max);
                log_norm
                    + max
                    + means
                        .iter()
                        .map(|m| (term(m) - max).exp())
                        .sum::<f64>()
                        .ln()
            }
            &Law::Rect {
                x, y, background, ..
            } => {
                let inside = |x: [f64; 2], y: [f64; 2]| {
                    (x[0]..=x[1]).contains(&p[0]) && (y[0]..=y[1]).contains(&p[1])
                };
                let mut density = 0.0;
                if inside(x, y) {
                    density += (1.0 - background) / ((x[1] - x[0]) * (y[1] - y[0]));
                }
                let b = [-BACKGROUND_HALF_WIDTH, BACKGROUND_HALF_WIDTH];
                if background > 0.0 && inside(b, b) {
                    density += background / (2.0 * BACKGROUND_HALF_WIDTH).powi(2);
                }
                density.ln()
            }
        }
    }

    /// Mean log-density of flat `[n, 2]` points.
    pub fn mean_log_density(&self, points: &[f32]) -> f64 {
        crate::mean_over_points(points, |p| self.log_density(p))
    }

    /// A box `[[x0, x1], [y0, y1]]` outside which the density is 0 or below 1e-20 of its peak
    /// (Gaussians: 10 standard deviations).
    pub(crate) fn support_box(&self) -> [[f64; 2]; 2] {
        match &self.law {
            Law::Gaussians { means, std } => {
                let r = 10.0 * std;
                let lo = |d: usize| means.iter().map(|m| m[d]).fold(f64::INFINITY, f64::min) - r;
                let hi =
                    |d: usize| means.iter().map(|m| m[d]).fold(f64::NEG_INFINITY, f64::max) + r;
                [[lo(0), hi(0)], [lo(1), hi(1)]]
            }
            &Law::Rect {
                x, y, background, ..
            } => {
                if background > 0.0 {
                    let b = BACKGROUND_HALF_WIDTH;
                    [[x[0].min(-b), x[1].max(b)], [y[0].min(-b), y[1].max(b)]]
                } else {
                    [x, y]
                }
            }
        }
    }

    /// Coordinates where the density jumps, per axis (rectangle and background edges), so that
    /// integration grids can put cell boundaries there.
    pub(crate) fn edges(&self) -> [Vec<f64>; 2] {
        match &self.law {
            Law::Gaussians { .. } => [vec![], vec![]],
            &Law::Rect {
                x, y, background, ..
            } => {
                let mut e = [x.to_vec(), y.to_vec()];
                if background > 0.0 {
                    for axis in &mut e {
                        axis.extend([-BACKGROUND_HALF_WIDTH, BACKGROUND_HALF_WIDTH]);
                    }
                }
                e
            }
        }
    }
}

fn uniform_in(x: [f64; 2], y: [f64; 2], rng: &mut impl Rng) -> [f64; 2] {
    [
        x[0] + (x[1] - x[0]) * rng.random::<f64>(),
        y[0] + (y[1] - y[0]) * rng.random::<f64>(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// Midpoint rule on [−1.6, 1.6]² with step 0.002: every rectangle edge used here (multiples of
    /// 0.1) is a cell boundary, so indicators are integrated exactly.
    fn integral(toy: &Toy2d) -> f64 {
        let n = 1600;
        let h = 3.2 / n as f64;
        let mut total = 0.0;
        for i in 0..n {
            for j in 0..n {
                let p = [-1.6 + (i as f64 + 0.5) * h, -1.6 + (j as f64 + 0.5) * h];
                total += toy.log_density(p).exp() * h * h;
            }
        }
        total
    }

    #[test]
    fn density_integrates_to_one() {
        for toy in [
            Toy2d::ring(8, 0.5, 0.075),
            Toy2d::blobs(vec![[-0.5, 0.5], [0.5, 0.0], [0.3, -0.6]], 0.075),
            Toy2d::vertical_bar(0.2),
            Toy2d::square(0.7),
            Toy2d::rect([-1.3, 0.4], [0.2, 1.5], 0.05),
            Toy2d::rect([-0.3, 0.3], [-0.3, 0.3], 0.0),
        ] {
            let total = integral(&toy);
            assert!(
                (total - 1.0).abs() < 1e-4,
                "{:?}: integral = {total}",
                toy.config()
            );
        }
    }

    #[test]
    fn single_gaussian_matches_closed_form() {
        let toy = Toy2d::ring(1, 0.0, 0.5);
        let p = [0.3, -0.2];
        let expected = -(2.0 * PI * 0.25f64).ln() - (0.09 + 0.04) / (2.0 * 0.25);
        assert!((toy.log_density(p) - expected).abs() < 1e-12);
        let blob = Toy2d::blobs(vec![[0.1, 0.2]], 0.5);
        let q = [0.4, 0.0];
        assert!((blob.log_density(q) - expected).abs() < 1e-12);
    }

    #[test]
    fn rect_density_matches_closed_form() {
        let bar = Toy2d::vertical_bar(0.2);
        let bg: f64 = 0.01 / (2.2 * 2.2);
        let inside = 0.99 / (0.4 * 2.0) + bg;
        assert!((bar.log_density([0.1, -0.9]) - inside.ln()).abs() < 1e-12);
        assert!((bar.log_density([0.5, 0.0]) - bg.ln()).abs() < 1e-12);
        assert_eq!(bar.log_density([1.2, 0.0]), f64::NEG_INFINITY);
        let plain = Toy2d::rect([0.0, 2.0], [0.0, 0.5], 0.0);
        assert!((plain.log_density([1.0, 0.25]) - 0.0).abs() < 1e-12);
        assert_eq!(plain.log_density([-0.1, 0.25]), f64::NEG_INFINITY);
    }

    #[test]
    fn rect_training_samples_fill_the_plain_rectangle_and_smoothed_ones_the_background() {
        let bar = Toy2d::vertical_bar(0.2);
        let mut rng = StdRng::seed_from_u64(3);
        let n = 100_000;
        let s = bar.sample(n, &mut rng);
        assert!(
            s.chunks_exact(2)
                .all(|p| p[0].abs() <= 0.2 && p[1].abs() <= 1.0)
        );
        let mx = s.chunks_exact(2).map(|p| p[0] as f64).sum::<f64>() / n as f64;
        let vy = s
            .chunks_exact(2)
            .map(|p| (p[1] as f64).powi(2))
            .sum::<f64>()
            / n as f64;
        assert!(
            mx.abs() < 0.003 && (vy - 1.0 / 3.0).abs() < 0.005,
            "{mx} {vy}"
        );
        // Smoothed: P(outside the bar) = 0.01 · (1 − 0.8/4.84).
        let s = bar.sample_smoothed(n, &mut rng);
        let out = s
            .chunks_exact(2)
            .filter(|p| p[0].abs() > 0.2 || p[1].abs() > 1.0)
            .count() as f64
            / n as f64;
        let expected = 0.01 * (1.0 - 0.8 / 4.84);
        let sd = (expected / n as f64).sqrt();
        assert!((out - expected).abs() < 4.0 * sd, "{out} vs {expected}");
    }

    #[test]
    fn sample_background_trains_on_the_smoothed_law() {
        // The rectangle sticks out of the background square: |rect ∩ bg| = 1.5 · 0.9.
        let (x, y, b) = ([-1.3, 0.4], [0.2, 1.5], 0.2);
        let cfg = Toy2dConfig::Rect {
            x,
            y,
            background: b,
            sample_background: true,
        };
        assert_eq!(cfg.validate(), Ok(()));
        let toy = cfg.build();
        let n = 200_000;
        let s = toy.sample(n, &mut StdRng::seed_from_u64(21));
        let outside = |p: &[f32]| {
            let (px, py) = (p[0] as f64, p[1] as f64);
            !(x[0] <= px && px <= x[1] && y[0] <= py && py <= y[1])
        };
        let out = s.chunks_exact(2).filter(|p| outside(p)).count() as f64 / n as f64;
        let expected = b * (1.0 - 1.5 * 0.9 / 4.84);
        let sd = (expected * (1.0 - expected) / n as f64).sqrt();
        assert!(
            (out - expected).abs() < 4.0 * sd,
            "{out} vs {expected} ± {sd}"
        );
        // Every sample lies in the rectangle or the background square.
        let h = BACKGROUND_HALF_WIDTH as f32;
        assert!(
            s.chunks_exact(2)
                .all(|p| !outside(p) || (p[0].abs() <= h && p[1].abs() <= h))
        );
        // Without the flag: the plain rectangle, and the very same draws as before the flag existed.
        let plain = Toy2d::rect(x, y, b);
        let s = plain.sample(n, &mut StdRng::seed_from_u64(21));
        assert_eq!(s.chunks_exact(2).filter(|p| outside(p)).count(), 0);
        let mut rng = StdRng::seed_from_u64(4);
        let by_hand: Vec<f32> = (0..10)
            .flat_map(|_| {
                let p = uniform_in(x, y, &mut rng);
                [p[0] as f32, p[1] as f32]
            })
            .collect();
        assert_eq!(plain.sample(10, &mut StdRng::seed_from_u64(4)), by_hand);
    }

    #[derive(Debug, Serialize)]
    struct SectionOut<'a> {
        data: &'a Toy2dConfig,
    }

    #[test]
    fn sample_background_is_not_serialized_when_off_so_config_text_is_unchanged() {
        // The [data] table of configs/toy2d-bar.toml with its defaults filled in, as run
        // directories store it (written before `sample_background` existed).
        let before =
            "[data]\nkind = \"rect\"\nx = [-0.2, 0.2]\ny = [-1.0, 1.0]\nbackground = 0.01\n";
        let cfg = parse(before).unwrap();
        let text = toml::to_string(&SectionOut { data: &cfg }).unwrap();
        assert_eq!(text, before);
        let on = Toy2dConfig::Rect {
            x: [-0.2, 0.2],
            y: [-1.0, 1.0],
            background: 0.01,
            sample_background: true,
        };
        let text = toml::to_string(&SectionOut { data: &on }).unwrap();
        assert!(text.ends_with("sample_background = true\n"), "{text}");
        assert_eq!(parse(&text).unwrap(), on);

        let bad = parse("[data]\nkind = \"rect\"\nx = [0, 1]\ny = [0, 1]\nbackground = 0\nsample_background = true\n")
            .unwrap();
        let (key, msg) = bad.validate().unwrap_err();
        assert_eq!(key, "sample_background");
        assert!(msg.contains("background > 0"), "{msg}");
        let err = parse("[data]\nkind = \"ring\"\nsample_background = true\n").unwrap_err();
        assert!(err.contains("sample_background"), "{err}");
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

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Section {
        data: Toy2dConfig,
    }

    fn parse(text: &str) -> Result<Toy2dConfig, String> {
        toml::from_str::<Section>(text)
            .map(|s| s.data)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn configs_parse_with_defaults_and_reject_unknown_keys_and_bad_values() {
        let ring = parse("[data]\nkind = \"ring\"\n").unwrap();
        assert_eq!(
            ring,
            Toy2dConfig::Ring {
                modes: 8,
                radius: 0.5,
                std: 0.075
            }
        );
        assert_eq!(ring.build(), Toy2d::ring(8, 0.5, 0.075));

        let bar = parse("[data]\nkind = \"rect\"\nx = [-0.2, 0.2]\ny = [-1, 1]\n").unwrap();
        assert_eq!(bar.build(), Toy2d::vertical_bar(0.2));

        let blobs =
            parse("[data]\nkind = \"blobs\"\ncenters = [[-0.5, 0.0], [0.5, 0.5]]\n").unwrap();
        assert_eq!(blobs.build().means(), &[[-0.5, 0.0], [0.5, 0.5]]);
        assert_eq!(blobs.build().std(), 0.075);

        let err = parse("[data]\nkind = \"rect\"\nx = [0, 1]\ny = [0, 1]\nbackgroud = 0.1\n")
            .unwrap_err();
        assert!(err.contains("backgroud"), "{err}");
        let err = parse("[data]\nkind = \"triangle\"\n").unwrap_err();
        assert!(err.contains("triangle"), "{err}");

        let bad = parse("[data]\nkind = \"rect\"\nx = [0.5, -0.5]\ny = [0, 1]\n").unwrap();
        let (key, msg) = bad.validate().unwrap_err();
        assert_eq!(key, "x");
        assert!(msg.contains("[0.5, -0.5]"), "{msg}");
        let bad = Toy2dConfig::Rect {
            x: [0.0, 1.0],
            y: [0.0, 1.0],
            background: 1.0,
            sample_background: false,
        };
        assert_eq!(bad.validate().unwrap_err().0, "background");
        let bad = Toy2dConfig::Blobs {
            centers: vec![],
            std: 0.1,
        };
        assert_eq!(bad.validate().unwrap_err().0, "centers");
        let bad = Toy2dConfig::Blobs {
            centers: vec![[0.0, f64::NAN]],
            std: 0.1,
        };
        assert_eq!(bad.validate().unwrap_err().0, "centers");
        let bad = Toy2dConfig::Blobs {
            centers: vec![[0.0, 0.0]],
            std: -1.0,
        };
        assert_eq!(bad.validate().unwrap_err().0, "std");
        assert_eq!(
            Toy2dConfig::Ring {
                modes: 0,
                radius: 0.5,
                std: 0.1
            }
            .validate()
            .unwrap_err()
            .0,
            "modes"
        );
    }

    #[test]
    #[should_panic(expected = "is not a Gaussian mixture")]
    fn rect_has_no_means() {
        Toy2d::square(0.3).means();
    }
}
