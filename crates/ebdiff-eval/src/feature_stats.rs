//! Streaming mean and covariance of D-dimensional feature vectors: the Gaussian statistics that
//! FID compares. Accumulated in f64 and mergeable across shards.

use crate::feature_rows::rows_as_columns;
use nalgebra::{DMatrix, DVector};

/// Running count n, mean μ and scatter S = Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ of the rows seen so far.
///
/// Keeping the *centred* scatter instead of the raw sums Σx and Σxxᵀ (what NVlabs/edm
/// all-reduces) avoids the cancellation in Σxxᵀ − n μμᵀ when ‖μ‖² dominates the variance, as for
/// non-negative Inception features. Batches and shards are combined with the pairwise update of
/// Chan, Golub & LeVeque (1979):
///   n = n_a + n_b,  δ = μ_b − μ_a,  μ = μ_a + δ n_b / n,  S = S_a + S_b + δδᵀ n_a n_b / n,
/// which is exact in real arithmetic, so merging shards equals one pass over all rows up to
/// rounding (≈1e-15 relative).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    dim: usize,
    count: u64,
    mean: DVector<f64>,
    scatter: DMatrix<f64>,
}

impl FeatureStats {
    /// Empty statistics of `dim`-dimensional features (2048 for Inception pool3).
    pub fn new(dim: usize) -> Self {
        assert!(dim > 0, "FeatureStats: feature dimension must be positive");
        Self {
            dim,
            count: 0,
            mean: DVector::zeros(dim),
            scatter: DMatrix::zeros(dim, dim),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of feature rows accumulated.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds flat row-major `[b, dim]` feature rows (b may be 0).
    ///
    /// # Panics
    /// If `rows.len()` is not a multiple of `dim`.
    pub fn add_batch(&mut self, rows: &[f32]) {
        let mut centered = rows_as_columns("FeatureStats::add_batch", rows, self.dim);
        let b = centered.ncols();
        if b == 0 {
            return;
        }
        let batch_mean = centered.column_mean();
        for mut column in centered.column_iter_mut() {
            column -= &batch_mean;
        }
        let batch_scatter = &centered * centered.transpose();
        self.combine(b as u64, &batch_mean, &batch_scatter);
    }

    /// Folds in statistics accumulated elsewhere (another shard, process or GPU).
    ///
    /// # Panics
    /// If the feature dimensions differ.
    pub fn merge(&mut self, other: &FeatureStats) {
        assert_eq!(
            self.dim, other.dim,
            "FeatureStats::merge: feature dimensions differ ({} vs {})",
            self.dim, other.dim
        );
        self.combine(other.count, &other.mean, &other.scatter);
    }

    fn combine(&mut self, n_b: u64, mean_b: &DVector<f64>, scatter_b: &DMatrix<f64>) {
        if n_b == 0 {
            return;
        }
        if self.count == 0 {
            self.count = n_b;
            self.mean.copy_from(mean_b);
            self.scatter.copy_from(scatter_b);
            return;
        }
        let (na, nb) = (self.count as f64, n_b as f64);
        let n = na + nb;
        let delta = mean_b - &self.mean;
        self.mean.axpy(nb / n, &delta, 1.0);
        self.scatter += scatter_b;
        self.scatter.ger(na * nb / n, &delta, &delta, 1.0);
        self.count += n_b;
    }

    /// Mean feature vector μ.
    ///
    /// # Panics
    /// If no rows were added.
    pub fn mean(&self) -> Vec<f64> {
        assert!(
            self.count > 0,
            "FeatureStats::mean: no feature rows were added"
        );
        self.mean.as_slice().to_vec()
    }

    /// Unbiased covariance S / (n − 1) as a row-major `dim × dim` matrix: the normalisation of
    /// `np.cov(x, rowvar=False)` used by pytorch-fid and clean-fid. Made exactly symmetric (the
    /// two triangles of a blocked matrix product can differ in the last bit).
    ///
    /// # Panics
    /// If fewer than 2 rows were added (the unbiased estimate needs n ≥ 2).
    pub fn covariance(&self) -> Vec<f64> {
        assert!(
            self.count >= 2,
            "FeatureStats::covariance: needs at least 2 feature rows, got {}",
            self.count
        );
        let scale = 1.0 / (self.count - 1) as f64;
        let d = self.dim;
        let mut out = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                out[i * d + j] = 0.5 * (self.scatter[(i, j)] + self.scatter[(j, i)]) * scale;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// Rows with a large common offset, so that a raw-moment formula would lose digits.
    fn offset_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n * dim)
            .map(|k| 50.0 + (k % dim) as f32 + rng.random_range(-1.0f32..1.0))
            .collect()
    }

    /// Textbook two-pass covariance, row-major, in f64.
    fn two_pass_covariance(rows: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
        let n = rows.len() / dim;
        let mut mean = vec![0.0; dim];
        for r in rows.chunks_exact(dim) {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += f64::from(v) / n as f64;
            }
        }
        let mut cov = vec![0.0; dim * dim];
        for r in rows.chunks_exact(dim) {
            for i in 0..dim {
                for j in 0..dim {
                    cov[i * dim + j] +=
                        (f64::from(r[i]) - mean[i]) * (f64::from(r[j]) - mean[j]) / (n - 1) as f64;
                }
            }
        }
        (mean, cov)
    }

    fn max_relative_gap(a: &[f64], b: &[f64]) -> f64 {
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    #[test]
    fn hand_computed_covariance() {
        // Rows (1,2), (3,6), (5,7): mean (3,5), deviations (−2,−3), (0,1), (2,2);
        // scatter [[8,10],[10,14]], divided by n − 1 = 2.
        let mut s = FeatureStats::new(2);
        s.add_batch(&[1.0, 2.0, 3.0, 6.0, 5.0, 7.0]);
        assert_eq!(s.count(), 3);
        assert_eq!(s.mean(), vec![3.0, 5.0]);
        assert_eq!(s.covariance(), vec![4.0, 5.0, 5.0, 7.0]);
    }

    #[test]
    fn row_by_row_equals_one_batch_hand_example() {
        let mut s = FeatureStats::new(2);
        for row in [[1.0, 2.0], [3.0, 6.0], [5.0, 7.0]] {
            s.add_batch(&row);
        }
        assert_eq!(s.mean(), vec![3.0, 5.0]);
        let cov = s.covariance();
        for (got, want) in cov.iter().zip([4.0, 5.0, 5.0, 7.0]) {
            assert!((got - want).abs() <= 1e-14, "{cov:?}");
        }
    }

    #[test]
    fn merged_shards_equal_single_pass() {
        let dim = 7;
        let rows = offset_rows(150, dim, 3);
        let mut single = FeatureStats::new(dim);
        single.add_batch(&rows);

        // Uneven shards, each fed in uneven batches, merged in a tree.
        let shard = |lo: usize, hi: usize, batch: usize| {
            let mut s = FeatureStats::new(dim);
            for chunk in rows[lo * dim..hi * dim].chunks(batch * dim) {
                s.add_batch(chunk);
            }
            s
        };
        let mut left = shard(0, 37, 5);
        left.merge(&shard(37, 38, 1));
        let mut right = shard(38, 120, 64);
        right.merge(&shard(120, 150, 7));
        right.merge(&FeatureStats::new(dim)); // an empty shard changes nothing
        left.merge(&right);

        assert_eq!(left.count(), 150);
        assert!(max_relative_gap(&left.mean(), &single.mean()) <= 1e-12);
        let gap = max_relative_gap(&left.covariance(), &single.covariance());
        assert!(gap <= 1e-12, "merged vs single pass: relative gap {gap:e}");
    }

    #[test]
    fn matches_two_pass_reference_despite_large_offset() {
        let dim = 5;
        let rows = offset_rows(400, dim, 11);
        let mut s = FeatureStats::new(dim);
        for chunk in rows.chunks(33 * dim) {
            s.add_batch(chunk);
        }
        let (mean, cov) = two_pass_covariance(&rows, dim);
        assert!(max_relative_gap(&s.mean(), &mean) <= 1e-13);
        let gap = max_relative_gap(&s.covariance(), &cov);
        assert!(gap <= 1e-11, "relative gap {gap:e}");
    }

    #[test]
    #[should_panic(expected = "at least 2 feature rows")]
    fn covariance_of_one_row_is_refused() {
        let mut s = FeatureStats::new(3);
        s.add_batch(&[1.0, 2.0, 3.0]);
        s.covariance();
    }

    #[test]
    #[should_panic(expected = "not a multiple of the feature dimension 3")]
    fn ragged_batch_is_refused() {
        FeatureStats::new(3).add_batch(&[1.0, 2.0]);
    }
}
