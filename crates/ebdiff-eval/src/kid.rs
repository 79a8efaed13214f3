//! Kernel Inception Distance (Bińkowski et al. 2018) as torch-fidelity and clean-fid compute it:
//! the unbiased MMD² with the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³, on `subsets`
//! random subsets of `subset_size` rows drawn without replacement from each set, reported as the
//! mean and the (population, ddof = 0) standard deviation over subsets.

use crate::feature_rows::{row_count, rows_as_columns, selected_rows_as_columns};
use nalgebra::DMatrix;
use rand::{SeedableRng, rngs::StdRng, seq::index::sample};

/// Subsets drawn for KID. The defaults are torch-fidelity's and clean-fid's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KidConfig {
    /// Number of random subsets averaged (default 100).
    pub subsets: usize,
    /// Rows per subset from each set (default 1000); clamped to the smaller set, as clean-fid
    /// does, so that small evaluations still run.
    pub subset_size: usize,
    /// Seed of the subset draws.
    pub seed: u64,
}

impl Default for KidConfig {
    fn default() -> Self {
        Self {
            subsets: 100,
            subset_size: 1000,
            seed: 0,
        }
    }
}

impl KidConfig {
    /// Rows per subset for sets of `n_real` and `n_generated` rows: `subset_size` clamped to the
    /// smaller set.
    pub fn subset_size_for(&self, n_real: usize, n_generated: usize) -> usize {
        self.subset_size.min(n_real).min(n_generated)
    }

    /// Refuses settings KID cannot run with (no subset, or subsets of fewer than 2 rows).
    pub fn validate(&self) -> Result<(), String> {
        if self.subsets == 0 {
            return Err("KID needs at least one subset; pass --kid-subsets 1 or more".into());
        }
        if self.subset_size < 2 {
            return Err(format!(
                "KID subsets of {} rows cannot give an unbiased MMD²; pass --kid-subset-size 2 \
                 or more (default {})",
                self.subset_size,
                KidConfig::default().subset_size
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KidEstimate {
    /// Mean of the per-subset unbiased MMD² (the KID; may be slightly negative when the laws agree).
    pub mean: f64,
    /// Population standard deviation of the per-subset MMD² (numpy's `np.std`).
    pub std: f64,
    /// Rows per subset actually used (after clamping to the smaller set).
    pub subset_size: usize,
    pub subsets: usize,
}

impl KidEstimate {
    /// The KID as a person reads it, for sets of `n_real` and `n_generated` rows: the mean ± the
    /// spread over subsets, or the mean alone with why there is no spread — a single subset, or
    /// subsets that each hold every row of both sets (they all give the same value, so a spread
    /// of 0 would say nothing about the estimate's uncertainty).
    pub fn summary(&self, n_real: usize, n_generated: usize) -> String {
        let (mean, m) = (self.mean, self.subset_size);
        if self.subsets == 1 {
            format!("{mean:.6} (one subset of {m} images per set: no spread over subsets)")
        } else if m == n_real && m == n_generated {
            format!(
                "{mean:.6} (each of the {} subsets holds all {m} images of both sets, so they \
                 agree: no spread over subsets)",
                self.subsets
            )
        } else {
            format!(
                "{mean:.6} ± {:.6} (std over {} subsets of {m})",
                self.std, self.subsets
            )
        }
    }
}

/// KID between flat row-major `[n, dim]` `real` and `[m, dim]` `generated` features.
///
/// The two sets must be independent samples: rows shared between them (e.g. a set against
/// itself) bring k(x, x) terms into the cross sum and bias the estimate negative.
///
/// # Panics
/// If a length is not a multiple of `dim`, `config.subsets` is 0, or fewer than 2 rows per
/// subset are available.
pub fn kernel_inception_distance(
    real: &[f32],
    generated: &[f32],
    dim: usize,
    config: &KidConfig,
) -> KidEstimate {
    let n_real = row_count("real", real, dim);
    let n_generated = row_count("generated", generated, dim);
    let m = config.subset_size_for(n_real, n_generated);
    assert!(
        m >= 2,
        "KID needs at least 2 rows per subset; got subset_size {}, {n_real} real and \
         {n_generated} generated rows",
        config.subset_size
    );
    let mut rng = StdRng::seed_from_u64(config.seed);
    let draws: Vec<(Vec<usize>, Vec<usize>)> = (0..config.subsets)
        .map(|_| {
            let r = sample(&mut rng, n_real, m).into_vec();
            let g = sample(&mut rng, n_generated, m).into_vec();
            (r, g)
        })
        .collect();
    kid_from_subsets(real, generated, dim, &draws)
}

/// KID over given subsets: each pair holds row indices into `real` and into `generated`, all of
/// one size. Separating the draws from the arithmetic lets the result be checked against a
/// reference that used the same indices.
///
/// # Panics
/// If `subsets` is empty, subset sizes differ or are below 2, or an index is out of range.
pub fn kid_from_subsets(
    real: &[f32],
    generated: &[f32],
    dim: usize,
    subsets: &[(Vec<usize>, Vec<usize>)],
) -> KidEstimate {
    assert!(!subsets.is_empty(), "KID needs at least one subset");
    let m = subsets[0].0.len();
    assert!(
        m >= 2 && subsets.iter().all(|(r, g)| r.len() == m && g.len() == m),
        "KID subsets must all hold the same number (≥ 2) of real and generated rows"
    );
    let values: Vec<f64> = subsets
        .iter()
        .map(|(r, g)| {
            let x = selected_rows_as_columns("real", real, dim, r);
            let y = selected_rows_as_columns("generated", generated, dim, g);
            mmd2_unbiased_columns(&x, &y)
        })
        .collect();
    let count = values.len() as f64;
    let mean = values.iter().sum::<f64>() / count;
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / count;
    KidEstimate {
        mean,
        std: variance.sqrt(),
        subset_size: m,
        subsets: values.len(),
    }
}

/// Unbiased MMD² with the KID kernel between all rows of `x` (`[n, dim]`) and `y` (`[m, dim]`):
/// Σ_{i≠j} k(xᵢ,xⱼ)/(n(n−1)) + Σ_{i≠j} k(yᵢ,yⱼ)/(m(m−1)) − 2 Σ_{i,j} k(xᵢ,yⱼ)/(nm).
/// For n = m this is torch-fidelity's `mmd_est='unbiased'` (the cross term keeps its diagonal).
///
/// # Panics
/// If a length is not a multiple of `dim` or a set has fewer than 2 rows.
pub fn polynomial_mmd2_unbiased(x: &[f32], y: &[f32], dim: usize) -> f64 {
    let x = rows_as_columns("x", x, dim);
    let y = rows_as_columns("y", y, dim);
    assert!(
        x.ncols() >= 2 && y.ncols() >= 2,
        "unbiased MMD² needs at least 2 rows per set, got {} and {}",
        x.ncols(),
        y.ncols()
    );
    mmd2_unbiased_columns(&x, &y)
}

/// As [`polynomial_mmd2_unbiased`], for features stored one per column.
fn mmd2_unbiased_columns(x: &DMatrix<f64>, y: &DMatrix<f64>) -> f64 {
    let (n, m) = (x.ncols() as f64, y.ncols() as f64);
    let within = |s: &DMatrix<f64>| {
        let diagonal: f64 = s
            .column_iter()
            .map(|c| kernel(c.norm_squared(), s.nrows()))
            .sum();
        kernel_sum(s, s) - diagonal
    };
    within(x) / (n * (n - 1.0)) + within(y) / (m * (m - 1.0)) - 2.0 * kernel_sum(x, y) / (n * m)
}

/// k from the inner product xᵀy in dimension d: (xᵀy / d + 1)³ (gamma = 1/d, coef0 = 1).
fn kernel(inner: f64, dim: usize) -> f64 {
    (inner / dim as f64 + 1.0).powi(3)
}

/// Σ_{i,j} k(aᵢ, bⱼ) over all column pairs, by blocks of Gram rows so that memory stays
/// bounded (about 32 MB) whatever the set sizes.
fn kernel_sum(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    const GRAM_BLOCK_ENTRIES: usize = 1 << 22;
    let dim = a.nrows();
    let block = (GRAM_BLOCK_ENTRIES / b.ncols().max(1)).max(1);
    let mut total = 0.0;
    let mut start = 0;
    while start < a.ncols() {
        let width = block.min(a.ncols() - start);
        // An explicit transpose copy (cheap) keeps this on the blocked gemm path; `tr_mul`
        // would take one dot product per entry.
        let gram = a.columns(start, width).transpose() * b;
        // Column sums first, then their total: rounding grows with n + m rather than n · m.
        for column in gram.column_iter() {
            total += column.iter().map(|&g| kernel(g, dim)).sum::<f64>();
        }
        start += width;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_mmd_in_one_dimension() {
        // d = 1, k(x, y) = (xy + 1)³. x = {0, 1}: k(0,1) = 1 → within-x term 2·1/2 = 1.
        // y = {1, 2}: k(1,2) = 27 → within-y term 27. Cross: k(0,1) + k(0,2) + k(1,1) + k(1,2)
        // = 1 + 1 + 8 + 27 = 37 → 2·37/4 = 18.5. MMD² = 1 + 27 − 18.5 = 9.5.
        let v = polynomial_mmd2_unbiased(&[0.0, 1.0], &[1.0, 2.0], 1);
        assert!((v - 9.5).abs() < 1e-12, "{v}");
    }

    #[test]
    fn blocked_kernel_sum_matches_direct_sum() {
        let a = DMatrix::from_fn(3, 5000, |i, j| ((i * 7 + j * 13) % 17) as f64 / 17.0 - 0.5);
        let b = DMatrix::from_fn(3, 1200, |i, j| ((i * 5 + j * 3) % 11) as f64 / 11.0);
        // 5000 × 1200 exceeds one block, so several blocks are summed.
        let blocked = kernel_sum(&a, &b);
        let direct: f64 = a
            .column_iter()
            .map(|x| b.column_iter().map(|y| kernel(x.dot(&y), 3)).sum::<f64>())
            .sum();
        assert!(
            (blocked - direct).abs() <= 1e-11 * direct.abs(),
            "{blocked} vs {direct}"
        );
    }

    #[test]
    fn summary_shows_a_spread_only_when_the_subsets_can_differ() {
        let estimate = |subsets, subset_size| KidEstimate {
            mean: 0.0123456,
            std: 0.0,
            subset_size,
            subsets,
        };
        let one = estimate(1, 1000).summary(5000, 5000);
        assert_eq!(
            one,
            "0.012346 (one subset of 1000 images per set: no spread over subsets)"
        );
        let whole = estimate(100, 8).summary(8, 8);
        assert!(
            whole.starts_with("0.012346 (each of the 100 subsets holds all 8 images")
                && !whole.contains('±'),
            "{whole}"
        );
        // Only the generated set is used whole: the real subsets vary, the spread is shown.
        let spread = KidEstimate {
            std: 0.0004,
            ..estimate(100, 8)
        };
        assert_eq!(
            spread.summary(20, 8),
            "0.012346 ± 0.000400 (std over 100 subsets of 8)"
        );
    }

    #[test]
    fn configs_without_a_usable_subset_are_refused() {
        assert!(KidConfig::default().validate().is_ok());
        let none = KidConfig {
            subsets: 0,
            ..KidConfig::default()
        };
        assert!(none.validate().unwrap_err().contains("--kid-subsets"));
        let tiny = KidConfig {
            subset_size: 1,
            ..KidConfig::default()
        };
        assert!(tiny.validate().unwrap_err().contains("--kid-subset-size"));
    }

    #[test]
    fn subset_size_is_clamped_to_the_smaller_set() {
        let real: Vec<f32> = (0..40).map(|i| i as f32 * 0.1).collect();
        let generated: Vec<f32> = (0..24).map(|i| i as f32 * 0.2).collect();
        let kid = kernel_inception_distance(&real, &generated, 2, &KidConfig::default());
        assert_eq!((kid.subset_size, kid.subsets), (12, 100));
        // Subsets of 12 from 12 generated rows are permutations of all of them; with 20 real
        // rows the real subsets vary, so the spread is positive.
        assert!(kid.std > 0.0);
    }
}
