//! Improved precision and recall (Kynkäänniemi et al. 2019), as in NVlabs' reference code.
//!
//! Each set approximates its manifold by balls around its points whose radius is the distance to
//! the k-th nearest *other* point of the same set. Precision is the fraction of generated points
//! inside at least one real ball (≤, ties count as inside); recall is the fraction of real points
//! inside at least one generated ball. NVlabs stores the radii in float16; they are kept in f64
//! here, which can only move points that sit within float16 rounding of a ball's edge.

use crate::feature_rows::{row_count, rows_as_columns};
use nalgebra::{DMatrix, DVector};

/// The neighbourhood size of the paper and of NVlabs' StyleGAN2-ADA / EDM metrics.
pub const PR_NEIGHBOURHOOD: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrecisionRecall {
    pub precision: f64,
    pub recall: f64,
}

/// Precision and recall of flat row-major `generated` features against `real` ones, with k-th
/// nearest-neighbour radii (`k = PR_NEIGHBOURHOOD` for the standard metric). Cost is
/// O((n_real + n_generated)² · dim), computed in bounded-memory blocks.
///
/// # Panics
/// If a length is not a multiple of `dim`, `k` is 0, or a set has no more than `k` rows.
pub fn precision_recall(real: &[f32], generated: &[f32], dim: usize, k: usize) -> PrecisionRecall {
    let n_real = row_count("real", real, dim);
    let n_generated = row_count("generated", generated, dim);
    assert!(
        k >= 1 && n_real > k && n_generated > k,
        "precision/recall with k = {k} needs k ≥ 1 and more than k rows per set; got {n_real} \
         real and {n_generated} generated rows"
    );
    let real = rows_as_columns("real", real, dim);
    let generated = rows_as_columns("generated", generated, dim);
    PrecisionRecall {
        precision: coverage(&real, &generated, k),
        recall: coverage(&generated, &real, k),
    }
}

/// Fraction of `probes` columns within the k-NN ball of at least one `manifold` column.
fn coverage(manifold: &DMatrix<f64>, probes: &DMatrix<f64>, k: usize) -> f64 {
    let radii = knn_radii_squared(manifold, k);
    let mut inside = 0usize;
    for_each_distance_block(manifold, probes, |_, distances| {
        inside += distances
            .column_iter()
            .filter(|d| d.iter().zip(&radii).any(|(d, r)| d <= r))
            .count();
    });
    inside as f64 / probes.ncols() as f64
}

/// Squared distance from each column to its k-th nearest other column.
fn knn_radii_squared(points: &DMatrix<f64>, k: usize) -> Vec<f64> {
    let mut radii = Vec::with_capacity(points.ncols());
    for_each_distance_block(points, points, |start, mut distances| {
        for (j, mut column) in distances.column_iter_mut().enumerate() {
            // The point itself, exactly 0 rather than the rounding of the expanded formula, is
            // the smallest entry, so the k-th other neighbour is the (k+1)-th smallest (index k),
            // as NVlabs' `kthvalue(k + 1)`; duplicates of the point count as neighbours.
            column[start + j] = 0.0;
            let values = column.as_mut_slice();
            let (_, kth, _) = values.select_nth_unstable_by(k, f64::total_cmp);
            radii.push(*kth);
        }
    });
    radii
}

/// Calls `visit(start, D)` for consecutive blocks of `queries` columns, where column j of D holds
/// the squared distances from query `start + j` to every `references` column. Distances use
/// ‖a‖² + ‖b‖² − 2aᵀb (one matrix product per block; clamped at 0) and blocks hold about
/// 4M entries (32 MB).
fn for_each_distance_block(
    references: &DMatrix<f64>,
    queries: &DMatrix<f64>,
    mut visit: impl FnMut(usize, DMatrix<f64>),
) {
    const BLOCK_ENTRIES: usize = 1 << 22;
    let reference_norms: DVector<f64> = DVector::from_iterator(
        references.ncols(),
        references.column_iter().map(|c| c.norm_squared()),
    );
    // Transposed once so that each block is a blocked gemm; `tr_mul` would take one dot
    // product per entry.
    let references_t = references.transpose();
    let block = (BLOCK_ENTRIES / references.ncols().max(1)).max(1);
    let mut start = 0;
    while start < queries.ncols() {
        let width = block.min(queries.ncols() - start);
        let block_queries = queries.columns(start, width);
        let mut distances = &references_t * block_queries * -2.0;
        for (mut column, query) in distances.column_iter_mut().zip(block_queries.column_iter()) {
            let query_norm = query.norm_squared();
            for (d, r) in column.iter_mut().zip(reference_norms.iter()) {
                *d = (*d + r + query_norm).max(0.0);
            }
        }
        visit(start, distances);
        start += width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dimensional_hand_example() {
        // Real {0,1,2,3,4}, k = 1: every radius is 1. Generated {0.5, 10, 2.9, −1.5}:
        // 0.5 and 2.9 fall inside, 10 and −1.5 do not → precision 1/2.
        // Generated radii (k = 1): −1.5→2, 0.5→2, 2.9→2.4, 10→7.1; every real point is within
        // 2 of 0.5 or within 2.4 of 2.9 → recall 1 (the outlier's wide ball is the paper's
        // known weakness, and it shows here).
        let real = [0.0, 1.0, 2.0, 3.0, 4.0];
        let generated = [0.5, 10.0, 2.9, -1.5];
        let pr = precision_recall(&real, &generated, 1, 1);
        assert_eq!(pr.precision, 0.5);
        assert_eq!(pr.recall, 1.0);
    }

    #[test]
    fn ball_boundary_counts_as_inside() {
        // Real {0,1,2}, k = 1, radii 1: a probe at 3 is exactly 1 from 2 (inside), 3.5 is not.
        let pr = precision_recall(&[0.0, 1.0, 2.0], &[3.0, 3.5, 7.0], 1, 1);
        assert_eq!(pr.precision, 1.0 / 3.0);
    }

    #[test]
    fn distance_blocks_cover_all_queries_with_exact_squares() {
        let refs = DMatrix::from_fn(2, 3000, |i, j| (j + i) as f64);
        let queries = DMatrix::from_fn(2, 2000, |i, j| (2 * j + i) as f64);
        let mut seen = 0;
        for_each_distance_block(&refs, &queries, |start, d| {
            for j in 0..d.ncols() {
                let q = start + j;
                for r in [0, 1234, 2999] {
                    // (r − 2q)² + (r + 1 − 2q − 1)² = 2 (r − 2q)²
                    let want = 2.0 * (r as f64 - 2.0 * q as f64).powi(2);
                    assert_eq!(d[(r, j)], want);
                }
            }
            seen += d.ncols();
        });
        assert_eq!(seen, 2000);
    }
}
