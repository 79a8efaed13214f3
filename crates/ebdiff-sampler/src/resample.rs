//! Importance-weight bookkeeping for SMC (smc.md §5): log-sum-exp, effective sample size and
//! systematic resampling, on host f64 log-weights.

/// log Σ exp(aᵢ), stable; −∞ for an empty or all −∞ input.
pub fn log_sum_exp(a: &[f64]) -> f64 {
    let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + a.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Normalized weights Wᵢ = exp(aᵢ − LSE(a)).
pub fn normalized(log_w: &[f64]) -> Vec<f64> {
    let lse = log_sum_exp(log_w);
    log_w.iter().map(|v| (v - lse).exp()).collect()
}

/// Effective sample size (Σw)²/Σw² of log-weights, in particles (1 … N).
pub fn ess(log_w: &[f64]) -> f64 {
    let lse = log_sum_exp(log_w);
    let lse2 = log_sum_exp(&log_w.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
    (2.0 * lse - lse2).exp()
}

/// Systematic resampling: one uniform `u` ∈ [0, 1), N stratified points (u + i)/N through the
/// cumulative weights. Returns N ancestor indices, non-decreasing; particle i is copied
/// ⌊N Wᵢ⌋ or ⌈N Wᵢ⌉ times, so the expected count is exactly N Wᵢ (unbiased).
pub fn systematic(log_w: &[f64], u: f64) -> Vec<usize> {
    let n = log_w.len();
    let w = normalized(log_w);
    let mut out = Vec::with_capacity(n);
    let mut cumulative = w[0];
    let mut j = 0;
    for i in 0..n {
        let point = (u + i as f64) / n as f64;
        while point >= cumulative && j + 1 < n {
            j += 1;
            cumulative += w[j];
        }
        out.push(j);
    }
    out
}

/// One index drawn by the weights: the first i whose cumulative normalized weight exceeds `u`
/// ∈ [0, 1) (inverse CDF), so P(i) = Wᵢ.
pub fn inverse_cdf(log_w: &[f64], u: f64) -> usize {
    let mut cumulative = 0.0;
    for (i, w) in normalized(log_w).into_iter().enumerate() {
        cumulative += w;
        if u < cumulative {
            return i;
        }
    }
    // Rounding left the total a hair below 1: the last particle with positive weight.
    log_w
        .iter()
        .rposition(|w| w.is_finite())
        .unwrap_or(log_w.len() - 1)
}

/// Running importance weights of N particles and the log normalizer estimate they imply.
///
/// log Ẑ accumulates log Σᵢ Wᵢ Gᵢ at every reweighting, with Wᵢ the normalized weights before it;
/// between resamplings the log-weights simply add up, so whether a level resamples or not, log Ẑ
/// telescopes to the log mean weight of each resampling epoch, summed over epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightBook {
    pub log_w: Vec<f64>,
    pub log_z: f64,
}

impl WeightBook {
    /// Initial log-weights (log Ẑ starts as their log mean).
    pub fn new(log_w: Vec<f64>) -> Self {
        let log_z = log_sum_exp(&log_w) - (log_w.len() as f64).ln();
        WeightBook { log_w, log_z }
    }

    /// Multiplies the weights by exp(`log_g`); returns this step's log Ẑ increment.
    pub fn reweight(&mut self, log_g: &[f64]) -> f64 {
        let lse = log_sum_exp(&self.log_w);
        let terms: Vec<f64> = self
            .log_w
            .iter()
            .zip(log_g)
            .map(|(w, g)| w - lse + g)
            .collect();
        let inc = log_sum_exp(&terms);
        self.log_z += inc;
        for (w, g) in self.log_w.iter_mut().zip(log_g) {
            *w += g;
        }
        inc
    }

    /// ESS / N of the current weights.
    pub fn ess_fraction(&self) -> f64 {
        ess(&self.log_w) / self.log_w.len() as f64
    }

    /// Systematic resampling with uniform `u`: the ancestor indices; the weights become equal.
    pub fn resample(&mut self, u: f64) -> Vec<usize> {
        let idx = systematic(&self.log_w, u);
        self.log_w = vec![0.0; idx.len()];
        idx
    }

    /// The normalized log-weights.
    pub fn normalized_log(&self) -> Vec<f64> {
        let lse = log_sum_exp(&self.log_w);
        self.log_w.iter().map(|w| w - lse).collect()
    }
}

/// The weights of N particles in groups of P consecutive particles (`particles_per_sample`):
/// each group is an independent SMC population of its own, normalized, resampled and estimating
/// log Z by itself (image SMC: peers group 4–8 particles per returned sample, since one population
/// of hundreds collapses to a single lineage within a few levels). One group of N particles is
/// plain SMC.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedBook {
    pub groups: Vec<WeightBook>,
    /// P, the particles of each group.
    pub group_size: usize,
}

impl GroupedBook {
    /// Initial log-weights of all particles, group after group; `log_w.len()` must be a multiple
    /// of `group_size`.
    pub fn new(log_w: Vec<f64>, group_size: usize) -> Self {
        assert!(
            group_size > 0 && log_w.len().is_multiple_of(group_size),
            "{} particles do not split into groups of {group_size}",
            log_w.len()
        );
        let groups = log_w
            .chunks(group_size)
            .map(|w| WeightBook::new(w.to_vec()))
            .collect();
        GroupedBook { groups, group_size }
    }

    /// Multiplies every particle's weight by exp(`log_g`) (all particles, group after group);
    /// returns each group's log Ẑ increment.
    pub fn reweight(&mut self, log_g: &[f64]) -> Vec<f64> {
        self.groups
            .iter_mut()
            .zip(log_g.chunks(self.group_size))
            .map(|(book, g)| book.reweight(g))
            .collect()
    }

    /// ESS / P of each group.
    pub fn ess_fractions(&self) -> Vec<f64> {
        self.groups.iter().map(WeightBook::ess_fraction).collect()
    }

    /// Resamples the groups whose flag is set, each with its own uniform from `uniform` (drawn in
    /// group order, only for those groups); returns the ancestor of every particle as a global
    /// index (identity in the other groups).
    pub fn resample(&mut self, which: &[bool], mut uniform: impl FnMut() -> f64) -> Vec<usize> {
        let p = self.group_size;
        let mut out = Vec::with_capacity(p * self.groups.len());
        for (g, (book, &go)) in self.groups.iter_mut().zip(which).enumerate() {
            if go {
                out.extend(book.resample(uniform()).into_iter().map(|i| g * p + i));
            } else {
                out.extend(g * p..(g + 1) * p);
            }
        }
        out
    }

    /// log Ẑ of the whole system: the log mean of the groups' Ẑ (each unbiased for Z, so their
    /// mean is too); with one group, that group's log Ẑ.
    pub fn log_z(&self) -> f64 {
        let z: Vec<f64> = self.groups.iter().map(|b| b.log_z).collect();
        log_sum_exp(&z) - (z.len() as f64).ln()
    }

    /// Every particle's log-weight normalized within its group, group after group.
    pub fn normalized_log(&self) -> Vec<f64> {
        self.groups
            .iter()
            .flat_map(WeightBook::normalized_log)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_and_ess_match_direct_sums() {
        let a = [0.1, -2.0, 3.5, 1.0];
        let direct: f64 = a.iter().map(|v: &f64| v.exp()).sum::<f64>().ln();
        assert!((log_sum_exp(&a) - direct).abs() < 1e-12);
        // Shifting all log-weights changes nothing; huge values do not overflow.
        let shifted: Vec<f64> = a.iter().map(|v| v + 1e4).collect();
        assert!((ess(&shifted) - ess(&a)).abs() < 1e-9);
        let w: Vec<f64> = a.iter().map(|v| v.exp()).collect();
        let want = w.iter().sum::<f64>().powi(2) / w.iter().map(|v| v * v).sum::<f64>();
        assert!((ess(&a) - want).abs() < 1e-9);
        assert!((ess(&[0.0; 7]) - 7.0).abs() < 1e-12);
        assert_eq!(log_sum_exp(&[f64::NEG_INFINITY; 3]), f64::NEG_INFINITY);
    }

    #[test]
    fn systematic_resampling_copies_each_particle_floor_or_ceil_of_n_w_times() {
        let log_w: Vec<f64> = [0.05, 0.4, 0.0001, 0.3, 0.2499]
            .iter()
            .map(|w: &f64| w.ln())
            .collect();
        let w = normalized(&log_w);
        for k in 0..50 {
            let u = (k as f64 + 0.5) / 50.0;
            let idx = systematic(&log_w, u);
            assert_eq!(idx.len(), 5);
            assert!(idx.windows(2).all(|p| p[0] <= p[1]));
            for (i, wi) in w.iter().enumerate() {
                let count = idx.iter().filter(|&&j| j == i).count() as f64;
                let nw = 5.0 * wi;
                assert!(
                    count >= nw.floor() - 1e-9 && count <= nw.ceil() + 1e-9,
                    "{i}: {count} vs {nw}"
                );
            }
        }
    }

    #[test]
    fn weights_accumulate_across_levels_that_skip_resampling() {
        let (g0, g1, g2) = (
            vec![0.3, -1.0, 2.0, 0.0],
            vec![1.5, 0.2, -0.7, 0.9],
            vec![-0.4, 0.8, 0.1, 2.2],
        );
        let log_mean = |v: &[f64]| log_sum_exp(v) - (v.len() as f64).ln();
        // No resampling: the weights are the sums, and log Ẑ telescopes to their log mean.
        let mut book = WeightBook::new(g0.clone());
        book.reweight(&g1);
        book.reweight(&g2);
        let total: Vec<f64> = (0..4).map(|i| g0[i] + g1[i] + g2[i]).collect();
        assert_eq!(book.log_w, total);
        assert!((book.log_z - log_mean(&total)).abs() < 1e-12);
        // Resampling after the first reweighting: log Ẑ is the product of the epochs' means,
        // the second epoch starting from equal weights over the copied particles.
        let mut book = WeightBook::new(g0.clone());
        book.reweight(&g1);
        let first: Vec<f64> = (0..4).map(|i| g0[i] + g1[i]).collect();
        let idx = book.resample(0.37);
        assert!(book.log_w.iter().all(|w| *w == 0.0));
        let g2_copied: Vec<f64> = idx.iter().map(|&i| g2[i]).collect();
        book.reweight(&g2_copied);
        let want = log_mean(&first) + log_mean(&g2_copied);
        assert!(
            (book.log_z - want).abs() < 1e-12,
            "{} vs {want}",
            book.log_z
        );
    }

    #[test]
    fn systematic_resampling_is_unbiased_over_the_uniform() {
        // E_u[count_i] = N Wᵢ exactly: average the counts over a fine grid of u.
        let log_w: Vec<f64> = [0.13, 0.02, 0.5, 0.35]
            .iter()
            .map(|w: &f64| w.ln())
            .collect();
        let grid = 100_000;
        let mut counts = [0.0f64; 4];
        for k in 0..grid {
            for i in systematic(&log_w, (k as f64 + 0.5) / grid as f64) {
                counts[i] += 1.0;
            }
        }
        for (c, w) in counts.iter().zip([0.13, 0.02, 0.5, 0.35]) {
            assert!((c / grid as f64 - 4.0 * w).abs() < 1e-4, "{c} vs {w}");
        }
    }

    #[test]
    fn groups_are_independent_populations() {
        let log_w = vec![0.0, 1.0, -1.0, 0.5, 2.0, 2.0];
        let mut grouped = GroupedBook::new(log_w.clone(), 3);
        let (mut a, mut b) = (
            WeightBook::new(log_w[..3].to_vec()),
            WeightBook::new(log_w[3..].to_vec()),
        );
        let g = [0.3, -0.2, 1.1, -3.0, 0.0, 0.4];
        let inc = grouped.reweight(&g);
        assert_eq!(inc, vec![a.reweight(&g[..3]), b.reweight(&g[3..])]);
        assert_eq!(
            grouped.ess_fractions(),
            vec![a.ess_fraction(), b.ess_fraction()]
        );
        // Only the second group resamples: the first keeps its particles and weights, the second
        // draws within itself (global indices 3..6) and its weights become equal.
        let idx = grouped.resample(&[false, true], || 0.25);
        assert_eq!(&idx[..3], &[0, 1, 2]);
        assert_eq!(
            idx[3..].to_vec(),
            b.resample(0.25)
                .into_iter()
                .map(|i| i + 3)
                .collect::<Vec<_>>()
        );
        assert_eq!(grouped.groups[0], a);
        assert!(grouped.groups[1].log_w.iter().all(|w| *w == 0.0));
        // log Ẑ is the log mean of the groups' Ẑ.
        let want = ((a.log_z.exp() + b.log_z.exp()) / 2.0).ln();
        assert!((grouped.log_z() - want).abs() < 1e-12);
        // One group is plain SMC.
        let one = GroupedBook::new(log_w.clone(), 6);
        assert_eq!(one.log_z(), WeightBook::new(log_w).log_z);
    }
}
