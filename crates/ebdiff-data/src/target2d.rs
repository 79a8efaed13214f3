//! Exact composed 2-D targets (method.md §3.2–3.5, §5.1): the true laws that product, mixture and
//! negation compositions of toy models should sample, with normalised log-densities and exact
//! samplers, so composed samplers can be scored against the truth.
//!
//! Every component enters through its [`Toy2d::log_density`], i.e. `rect`s are background-smoothed
//! (see [`crate::toy2d`]). That keeps products' log-likelihood scores finite and makes negations
//! (which divide by a density) well defined; the samplers here draw from exactly these smoothed
//! laws, so a few exact samples of e.g. ring × bar lie on ring modes outside the bar.

use crate::toy2d::{Toy2d, Toy2dConfig};
use rand::Rng;

/// How a target is composed from toys.
#[derive(Debug, Clone, PartialEq)]
pub enum Composition2d {
    Single(Toy2d),
    /// Density ∝ Π p_i.
    Product(Vec<Toy2d>),
    /// Density Σ π_i p_i; weights are normalised by [`ExactTarget2d::new`].
    Mixture(Vec<(f64, Toy2d)>),
    /// Density ∝ p_keep^{1+α} / p_remove^{α} (weights 1+α and −α, method.md §3.5).
    Negation {
        keep: Toy2d,
        remove: Toy2d,
        alpha: f64,
    },
}

/// Rejection proposal: the law of component `index` (for negations, 0 = keep), with
/// `log_bound` ≥ log[target(x) / (Z_prop · proposal(x))] everywhere.
#[derive(Debug, Clone, PartialEq)]
enum Proposal {
    /// Single and mixture targets are sampled directly.
    Direct,
    Component {
        index: usize,
        log_bound: f64,
    },
}

/// A composed 2-D target with a normalised log-density and an exact sampler.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactTarget2d {
    name: String,
    composition: Composition2d,
    /// log ∫ of the unnormalised density (0 for single and mixture targets, which are normalised).
    log_z: f64,
    proposal: Proposal,
}

/// Cells per axis of the integration grid (plus a few where edges split cells). With the paper's
/// boxes (width ≈ 2.4) the step is ≈ 0.002 = σ/37 for σ = 0.075: the midpoint rule is then far
/// more accurate than 1e-4 for the Gaussian parts, and rectangle edges are cell boundaries.
const GRID_CELLS: usize = 1200;

/// Factor by which the grid maximum of the acceptance ratio is inflated to bound it everywhere
/// (the ratio is smooth on the scale of the grid step or piecewise constant on cells).
const BOUND_SAFETY: f64 = 1.1;

impl ExactTarget2d {
    /// Builds a target, computing the normaliser and the rejection bound on a fine grid once.
    ///
    /// Errors on an empty product or mixture, invalid mixture weights or α, a composition without
    /// mass, or a negation whose `remove` density vanishes where `keep` has mass.
    pub fn new(name: impl Into<String>, composition: Composition2d) -> Result<Self, String> {
        let composition = match composition {
            Composition2d::Product(ts) if ts.is_empty() => {
                return Err("a product needs at least one factor".into());
            }
            Composition2d::Mixture(ws) => {
                if ws.is_empty() {
                    return Err("a mixture needs at least one component".into());
                }
                if let Some((w, _)) = ws.iter().find(|(w, _)| !(*w >= 0.0 && w.is_finite())) {
                    return Err(format!("mixture weights must be finite and ≥ 0, got {w}"));
                }
                let total: f64 = ws.iter().map(|(w, _)| w).sum();
                if total <= 0.0 {
                    return Err("mixture weights sum to 0".into());
                }
                Composition2d::Mixture(ws.into_iter().map(|(w, t)| (w / total, t)).collect())
            }
            Composition2d::Negation { alpha, .. } if !(alpha >= 0.0 && alpha.is_finite()) => {
                return Err(format!(
                    "negation alpha must be finite and ≥ 0, got {alpha}"
                ));
            }
            c => c,
        };
        let mut target = ExactTarget2d {
            name: name.into(),
            composition,
            log_z: 0.0,
            proposal: Proposal::Direct,
        };
        target.integrate()?;
        Ok(target)
    }

    /// The paper's product demo: ring(8, 0.5, 0.075) × vertical bar x ∈ [−0.2, 0.2], y ∈ [−1, 1]
    /// (background 0.01). Its mass sits on the ring modes at the top and bottom.
    pub fn ring_times_bar() -> Self {
        let factors = vec![Toy2d::ring(8, 0.5, 0.075), Toy2d::vertical_bar(0.2)];
        Self::new("ring-x-bar", Composition2d::Product(factors)).expect("valid product")
    }

    /// The project-page mixture demo: left column of 3 blobs at x = −0.5 plus right column at
    /// x = 0.5 (y ∈ {−0.5, 0, 0.5}, std 0.075), equal weights: six blobs.
    pub fn blob_mixture() -> Self {
        let column = |x: f64| Toy2d::blobs(vec![[x, -0.5], [x, 0.0], [x, 0.5]], 0.075);
        let parts = vec![(0.5, column(-0.5)), (0.5, column(0.5))];
        Self::new("blob-mixture", Composition2d::Mixture(parts)).expect("valid mixture")
    }

    /// The negation demo: box [−0.7, 0.7]² with weight 1.3 minus box [−0.3, 0.3]² with weight 0.3
    /// (α = 0.3), both with background 0.01. Most mass is on the big box outside the small one
    /// (≈ 2.5 % remains inside the small box and ≈ 0.14 % on the background).
    pub fn box_negation() -> Self {
        let composition = Composition2d::Negation {
            keep: Toy2d::square(0.7),
            remove: Toy2d::square(0.3),
            alpha: 0.3,
        };
        Self::new("box-negation", composition).expect("valid negation")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn composition(&self) -> &Composition2d {
        &self.composition
    }

    /// The components' configs, in order (negation: keep, remove), e.g. to train one model each.
    pub fn components(&self) -> Vec<Toy2dConfig> {
        self.toys()
            .into_iter()
            .map(|t| t.config().clone())
            .collect()
    }

    /// log of the normaliser of the unnormalised composed density (0 for single and mixture).
    pub fn log_normalizer(&self) -> f64 {
        self.log_z
    }

    fn toys(&self) -> Vec<&Toy2d> {
        match &self.composition {
            Composition2d::Single(t) => vec![t],
            Composition2d::Product(ts) => ts.iter().collect(),
            Composition2d::Mixture(ws) => ws.iter().map(|(_, t)| t).collect(),
            Composition2d::Negation { keep, remove, .. } => vec![keep, remove],
        }
    }

    /// Unnormalised log-density (exactly normalised for single and mixture targets).
    fn log_unnormalized(&self, p: [f64; 2]) -> f64 {
        match &self.composition {
            Composition2d::Single(t) => t.log_density(p),
            Composition2d::Product(ts) => ts.iter().map(|t| t.log_density(p)).sum(),
            Composition2d::Mixture(ws) => {
                log_sum_exp(ws.iter().map(|(w, t)| w.ln() + t.log_density(p)))
            }
            Composition2d::Negation {
                keep,
                remove,
                alpha,
            } => negation_log(keep.log_density(p), remove.log_density(p), *alpha),
        }
    }

    /// Exact normalised log-density.
    pub fn log_density(&self, p: [f64; 2]) -> f64 {
        self.log_unnormalized(p) - self.log_z
    }

    /// Mean log-density of flat `[n, 2]` points.
    pub fn mean_log_density(&self, points: &[f32]) -> f64 {
        crate::mean_over_points(points, |p| self.log_density(p))
    }

    /// n exact samples, `[n, 2]`. Products and negations use rejection sampling from one
    /// component's (smoothed) law; mixtures pick a component, then sample it.
    ///
    /// # Panics
    /// If a proposal's acceptance ratio exceeds the bound (the sampler would not be exact).
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let p = self.sample_point(rng);
            out.extend([p[0] as f32, p[1] as f32]);
        }
        out
    }

    fn sample_point(&self, rng: &mut impl Rng) -> [f64; 2] {
        let (index, log_bound) = match (&self.composition, &self.proposal) {
            (Composition2d::Single(t), _) => return t.sample_smoothed_point(rng),
            (Composition2d::Mixture(ws), _) => {
                let mut u = rng.random::<f64>();
                let last = ws.len() - 1;
                for (i, (w, t)) in ws.iter().enumerate() {
                    if u < *w || i == last {
                        return t.sample_smoothed_point(rng);
                    }
                    u -= w;
                }
                unreachable!()
            }
            (_, &Proposal::Component { index, log_bound }) => (index, log_bound),
            (_, Proposal::Direct) => unreachable!("products and negations have a bound"),
        };
        loop {
            let (p, log_ratio) = match &self.composition {
                Composition2d::Product(ts) => {
                    let p = ts[index].sample_smoothed_point(rng);
                    let others = ts
                        .iter()
                        .enumerate()
                        .filter(|&(j, _)| j != index)
                        .map(|(_, t)| t.log_density(p))
                        .sum::<f64>();
                    (p, others)
                }
                Composition2d::Negation {
                    keep,
                    remove,
                    alpha,
                } => {
                    let p = keep.sample_smoothed_point(rng);
                    let lk = keep.log_density(p);
                    let log_ratio = if lk > f64::NEG_INFINITY {
                        alpha * (lk - remove.log_density(p))
                    } else {
                        f64::NEG_INFINITY
                    };
                    (p, log_ratio)
                }
                _ => unreachable!(),
            };
            assert!(
                log_ratio <= log_bound,
                "{}: acceptance ratio exp({log_ratio}) exceeds the bound exp({log_bound}) at {p:?}",
                self.name
            );
            if rng.random::<f64>().ln() < log_ratio - log_bound {
                return p;
            }
        }
    }

    /// Normaliser and rejection bound by the midpoint rule on a grid covering every component's
    /// support, with cell boundaries on all rectangle edges (so indicators integrate exactly).
    fn integrate(&mut self) -> Result<(), String> {
        let toys = self.toys();
        let (n_proposals, mass_is_one) = match &self.composition {
            Composition2d::Single(_) | Composition2d::Mixture(_) => (0, true),
            Composition2d::Product(ts) => (ts.len(), false),
            Composition2d::Negation { .. } => (1, false),
        };
        if mass_is_one {
            return Ok(());
        }
        let boxes: Vec<_> = toys.iter().map(|t| t.support_box()).collect();
        let axes: Vec<Vec<(f64, f64)>> = (0..2)
            .map(|d| {
                let lo = boxes.iter().map(|b| b[d][0]).fold(f64::INFINITY, f64::min);
                let hi = boxes
                    .iter()
                    .map(|b| b[d][1])
                    .fold(f64::NEG_INFINITY, f64::max);
                let edges: Vec<f64> = toys.iter().flat_map(|t| t.edges()[d].clone()).collect();
                grid_axis(lo, hi, &edges, (hi - lo) / GRID_CELLS as f64)
            })
            .collect();

        let mut z = 0.0;
        let mut max_log_ratio = vec![f64::NEG_INFINITY; n_proposals];
        let mut logs = vec![0.0; toys.len()];
        for &(x, wx) in &axes[0] {
            for &(y, wy) in &axes[1] {
                let p = [x, y];
                for (l, t) in logs.iter_mut().zip(&toys) {
                    *l = t.log_density(p);
                }
                let log_target = match &self.composition {
                    Composition2d::Product(_) => {
                        for (k, m) in max_log_ratio.iter_mut().enumerate() {
                            let others: f64 = logs
                                .iter()
                                .enumerate()
                                .filter(|&(j, _)| j != k)
                                .map(|(_, l)| l)
                                .sum();
                            *m = m.max(others);
                        }
                        logs.iter().sum()
                    }
                    Composition2d::Negation { alpha, .. } => {
                        let lt = negation_log(logs[0], logs[1], *alpha);
                        if lt == f64::INFINITY {
                            return Err(format!(
                                "{}: the removed density vanishes at {p:?} where the kept one \
                                 does not; give `remove` a background > 0",
                                self.name
                            ));
                        }
                        if logs[0] > f64::NEG_INFINITY {
                            max_log_ratio[0] = max_log_ratio[0].max(lt - logs[0]);
                        }
                        lt
                    }
                    _ => unreachable!(),
                };
                z += wx * wy * log_target.exp();
            }
        }
        if !(z > 0.0 && z.is_finite()) {
            return Err(format!("{}: the composed density has mass {z}", self.name));
        }
        self.log_z = z.ln();
        // The best proposal accepts with probability Z / bound_k: pick the smallest bound.
        let (index, max) = max_log_ratio
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least one proposal");
        self.proposal = Proposal::Component {
            index,
            log_bound: max + BOUND_SAFETY.ln(),
        };
        Ok(())
    }
}

/// (1+α)·log p_keep − α·log p_remove, with 0 wherever p_keep = 0 (even if p_remove = 0 there).
fn negation_log(log_keep: f64, log_remove: f64, alpha: f64) -> f64 {
    if log_keep == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else {
        (1.0 + alpha) * log_keep - alpha * log_remove
    }
}

fn log_sum_exp(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + xs.map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// Midpoint cells `(centre, width)` of [lo, hi] with boundaries at every edge inside it and
/// widths at most `step`.
fn grid_axis(lo: f64, hi: f64, edges: &[f64], step: f64) -> Vec<(f64, f64)> {
    let mut cuts: Vec<f64> = edges
        .iter()
        .copied()
        .filter(|e| *e > lo && *e < hi)
        .chain([lo, hi])
        .collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    cuts.windows(2)
        .flat_map(|w| {
            let k = ((w[1] - w[0]) / step).ceil().max(1.0) as usize;
            let h = (w[1] - w[0]) / k as f64;
            (0..k).map(move |i| (w[0] + (i as f64 + 0.5) * h, h))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::f64::consts::SQRT_2;

    /// Midpoint-rule integral of the density over a rectangle with `k × k` cells. Cell edges fall
    /// on all rectangle edges of the paper's toys when the rectangle's corners are multiples of
    /// 0.1 and k is a multiple of 10 per 0.1.
    fn cell_mass(t: &ExactTarget2d, x: [f64; 2], y: [f64; 2], k: usize) -> f64 {
        let (hx, hy) = ((x[1] - x[0]) / k as f64, (y[1] - y[0]) / k as f64);
        let mut m = 0.0;
        for i in 0..k {
            for j in 0..k {
                let p = [x[0] + (i as f64 + 0.5) * hx, y[0] + (j as f64 + 0.5) * hy];
                m += t.log_density(p).exp();
            }
        }
        m * hx * hy
    }

    fn paper_targets() -> Vec<ExactTarget2d> {
        vec![
            ExactTarget2d::ring_times_bar(),
            ExactTarget2d::blob_mixture(),
            ExactTarget2d::box_negation(),
        ]
    }

    #[test]
    fn densities_integrate_to_one() {
        let others = [
            ExactTarget2d::new("single", Composition2d::Single(Toy2d::square(0.5))).unwrap(),
            ExactTarget2d::new(
                "blobs-x-ring",
                Composition2d::Product(vec![
                    Toy2d::ring(8, 0.5, 0.1),
                    Toy2d::blobs(vec![[0.3, 0.3], [-0.4, 0.1]], 0.2),
                ]),
            )
            .unwrap(),
        ];
        for t in paper_targets().iter().chain(&others) {
            // Independent of the construction grid: uniform step 0.002 on [−1.6, 1.6]².
            let total = cell_mass(t, [-1.6, 1.6], [-1.6, 1.6], 1600);
            assert!(
                (total - 1.0).abs() < 1e-4,
                "{}: integral = {total}",
                t.name()
            );
        }
    }

    /// Numerical Recipes' erfc (fractional error < 1.2e-7).
    fn erfc(x: f64) -> f64 {
        let z = x.abs();
        let t = 1.0 / (1.0 + 0.5 * z);
        let poly = -z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77))))))));
        let r = t * poly.exp();
        if x >= 0.0 { r } else { 2.0 - r }
    }

    #[test]
    fn ring_times_bar_normaliser_matches_gaussian_cdfs() {
        // Z = Σ_k ⅛ [0.99/0.8 · P_k(bar) + 0.01/4.84 · P_k(background)].
        let phi = |x: f64| 0.5 * erfc(-x / SQRT_2);
        let mass = |m: f64, a: f64, b: f64| phi((b - m) / 0.075) - phi((a - m) / 0.075);
        let z: f64 = Toy2d::ring(8, 0.5, 0.075)
            .means()
            .iter()
            .map(|m| {
                let bar = mass(m[0], -0.2, 0.2) * mass(m[1], -1.0, 1.0);
                let bg = mass(m[0], -1.1, 1.1) * mass(m[1], -1.1, 1.1);
                (0.99 / 0.8 * bar + 0.01 / 4.84 * bg) / 8.0
            })
            .sum();
        let t = ExactTarget2d::ring_times_bar();
        let rel = (t.log_normalizer().exp() - z).abs() / z;
        assert!(
            rel < 1e-5,
            "grid Z = {}, closed form {z}",
            t.log_normalizer().exp()
        );
    }

    #[test]
    fn box_negation_density_matches_closed_form() {
        let t = ExactTarget2d::box_negation();
        let bg: f64 = 0.01 / 4.84;
        let big = 0.99 / 1.96 + bg;
        let small = 0.99 / 0.36 + bg;
        let ring_value = big.powf(1.3) / bg.powf(0.3);
        let centre_value = big.powf(1.3) / small.powf(0.3);
        let z = ring_value * (1.96 - 0.36) + centre_value * 0.36 + bg * (4.84 - 1.96);
        assert!((t.log_normalizer() - z.ln()).abs() < 1e-9);
        assert!((t.log_density([0.5, -0.5]) - (ring_value / z).ln()).abs() < 1e-9);
        assert!((t.log_density([0.1, 0.0]) - (centre_value / z).ln()).abs() < 1e-9);
        assert!((t.log_density([1.0, 0.0]) - (bg / z).ln()).abs() < 1e-9);
        assert_eq!(t.log_density([1.5, 0.0]), f64::NEG_INFINITY);
    }

    #[test]
    fn mixture_is_the_six_blob_mixture() {
        let t = ExactTarget2d::blob_mixture();
        let mut centers = vec![];
        for x in [-0.5, 0.5] {
            for y in [-0.5, 0.0, 0.5] {
                centers.push([x, y]);
            }
        }
        let six = Toy2d::blobs(centers, 0.075);
        for p in [[0.0, 0.0], [0.5, 0.5], [-0.45, 0.1], [1.0, -1.0]] {
            assert!((t.log_density(p) - six.log_density(p)).abs() < 1e-12);
        }
        // Unequal weights are normalised.
        let w = ExactTarget2d::new(
            "weighted",
            Composition2d::Mixture(vec![(3.0, Toy2d::square(0.2)), (1.0, Toy2d::square(0.5))]),
        )
        .unwrap();
        let expected: f64 = 0.75 * (0.99 / 0.16 + 0.01 / 4.84) + 0.25 * (0.99 / 1.0 + 0.01 / 4.84);
        assert!((w.log_density([0.0, 0.0]) - expected.ln()).abs() < 1e-12);
    }

    /// Pearson χ² of 50k samples against the integrated density over 0.1 × 0.1 cells of
    /// [−1.2, 1.2]² (cells with < 5 expected counts pooled, plus one bin for the rest).
    fn chi_square(t: &ExactTarget2d, seed: u64) -> (f64, usize) {
        let n = 50_000;
        let s = t.sample(n, &mut StdRng::seed_from_u64(seed));
        let cells = 24;
        let cell = |v: f32| ((v as f64 + 1.2) / 0.1).floor();
        let mut counts = vec![0usize; cells * cells + 1];
        for p in s.chunks_exact(2) {
            let (i, j) = (cell(p[0]), cell(p[1]));
            let inside = (0.0..cells as f64).contains(&i) && (0.0..cells as f64).contains(&j);
            let k = if inside {
                i as usize * cells + j as usize
            } else {
                cells * cells
            };
            counts[k] += 1;
        }
        let mut bins = vec![];
        let mut rest = (0.0, 0usize);
        let mut inside_mass = 0.0;
        for i in 0..cells {
            for j in 0..cells {
                let x0 = -1.2 + 0.1 * i as f64;
                let y0 = -1.2 + 0.1 * j as f64;
                let m = cell_mass(t, [x0, x0 + 0.1], [y0, y0 + 0.1], 20);
                inside_mass += m;
                let e = m * n as f64;
                let o = counts[i * cells + j];
                if e < 5.0 {
                    rest = (rest.0 + e, rest.1 + o);
                } else {
                    bins.push((e, o));
                }
            }
        }
        rest = (
            rest.0 + (1.0 - inside_mass).max(0.0) * n as f64,
            rest.1 + counts[cells * cells],
        );
        bins.push(rest);
        let chi2 = bins
            .iter()
            .map(|&(e, o)| (o as f64 - e).powi(2) / e.max(1e-12))
            .sum();
        (chi2, bins.len() - 1)
    }

    #[test]
    fn rejection_samples_follow_the_density() {
        for (seed, t) in paper_targets().iter().enumerate() {
            let (chi2, df) = chi_square(t, seed as u64);
            let limit = df as f64 + 5.0 * (2.0 * df as f64).sqrt();
            eprintln!(
                "{}: χ² = {chi2:.1} with {df} dof (limit {limit:.1})",
                t.name()
            );
            assert!(chi2 < limit, "{}: χ² = {chi2} with {df} dof", t.name());
        }
    }

    #[test]
    fn negation_samples_put_the_background_mass_outside_the_big_box() {
        let t = ExactTarget2d::box_negation();
        let n = 200_000;
        let s = t.sample(n, &mut StdRng::seed_from_u64(11));
        let frac = |f: &dyn Fn(f64, f64) -> bool| {
            s.chunks_exact(2)
                .filter(|p| f(p[0] as f64, p[1] as f64))
                .count() as f64
                / n as f64
        };
        let z = t.log_normalizer().exp();
        let bg: f64 = 0.01 / 4.84;
        for (region, fraction, expected) in [
            (
                "outside",
                frac(&|x, y| x.abs().max(y.abs()) > 0.7),
                bg * (4.84 - 1.96) / z,
            ),
            (
                "centre",
                frac(&|x, y| x.abs().max(y.abs()) < 0.3),
                (0.99 / 1.96 + bg).powf(1.3) / (0.99 / 0.36 + bg).powf(0.3) * 0.36 / z,
            ),
        ] {
            let sd = (expected * (1.0 - expected) / n as f64).sqrt();
            assert!(
                (fraction - expected).abs() < 4.0 * sd,
                "{region}: {fraction} vs {expected}"
            );
        }
    }

    #[test]
    fn product_mass_sits_on_the_top_and_bottom_ring_modes() {
        let t = ExactTarget2d::ring_times_bar();
        let n = 20_000;
        let s = t.sample(n, &mut StdRng::seed_from_u64(5));
        let near = |p: &[f32], y: f64| (p[0] as f64).hypot(p[1] as f64 - y) < 0.25;
        let top = s.chunks_exact(2).filter(|p| near(p, 0.5)).count() as f64 / n as f64;
        let bottom = s.chunks_exact(2).filter(|p| near(p, -0.5)).count() as f64 / n as f64;
        // From the density: the two 0.25-discs hold ≈ 98 % of the mass (most of the rest is the
        // tails of the 45° modes that reach into the bar), the equator next to nothing.
        let disc = |y: f64| {
            let k = 400;
            let h = 0.5 / k as f64;
            let mut m = 0.0;
            for i in 0..k {
                for j in 0..k {
                    let p = [
                        -0.25 + (i as f64 + 0.5) * h,
                        y - 0.25 + (j as f64 + 0.5) * h,
                    ];
                    if p[0].hypot(p[1] - y) < 0.25 {
                        m += t.log_density(p).exp() * h * h;
                    }
                }
            }
            m
        };
        let (exact_top, exact_bottom) = (disc(0.5), disc(-0.5));
        assert!(
            exact_top + exact_bottom > 0.97,
            "{exact_top} + {exact_bottom}"
        );
        assert!((exact_top - exact_bottom).abs() < 1e-4);
        for (fraction, exact) in [(top, exact_top), (bottom, exact_bottom)] {
            let sd = (exact * (1.0 - exact) / n as f64).sqrt();
            assert!((fraction - exact).abs() < 4.0 * sd, "{fraction} vs {exact}");
        }
        assert!(cell_mass(&t, [-0.3, 0.3], [-0.2, 0.2], 400) < 1e-3);
    }

    #[test]
    fn components_round_trip_and_invalid_compositions_are_rejected() {
        let t = ExactTarget2d::box_negation();
        let c = t.components();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].build(), Toy2d::square(0.7));
        assert_eq!(c[1].kind(), "rect");
        assert_eq!(
            ExactTarget2d::ring_times_bar().components()[0].kind(),
            "ring"
        );
        assert_eq!(ExactTarget2d::blob_mixture().components().len(), 2);

        assert!(ExactTarget2d::new("empty", Composition2d::Product(vec![])).is_err());
        let disjoint = Composition2d::Product(vec![
            Toy2d::rect([0.0, 0.1], [0.0, 0.1], 0.0),
            Toy2d::rect([0.5, 0.6], [0.0, 0.1], 0.0),
        ]);
        assert!(ExactTarget2d::new("disjoint", disjoint).is_err());
        let unbounded = Composition2d::Negation {
            keep: Toy2d::square(0.7),
            remove: Toy2d::rect([-0.3, 0.3], [-0.3, 0.3], 0.0),
            alpha: 0.3,
        };
        let err = ExactTarget2d::new("neg", unbounded).unwrap_err();
        assert!(err.contains("background"), "{err}");
        let negative = Composition2d::Mixture(vec![(-1.0, Toy2d::square(0.7))]);
        assert!(ExactTarget2d::new("mix", negative).is_err());
    }
}
