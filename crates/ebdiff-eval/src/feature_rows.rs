//! Flat row-major `[n, dim]` f32 feature rows as an f64 `dim × n` matrix (one column per row).
//!
//! A row-major `[n, dim]` buffer is exactly a column-major `dim × n` matrix, so the conversion
//! is a widening copy with no transpose; products of these matrices go through nalgebra's
//! `matrixmultiply` kernels.

use nalgebra::DMatrix;

/// Number of rows in `flat`, checking that it holds whole rows of `dim` values.
pub(crate) fn row_count(name: &str, flat: &[f32], dim: usize) -> usize {
    assert!(dim > 0, "{name}: feature dimension must be positive");
    assert!(
        flat.len().is_multiple_of(dim),
        "{name}: length {} is not a multiple of the feature dimension {dim}",
        flat.len()
    );
    flat.len() / dim
}

/// The rows of `flat` as the columns of a `dim × n` f64 matrix.
pub(crate) fn rows_as_columns(name: &str, flat: &[f32], dim: usize) -> DMatrix<f64> {
    let n = row_count(name, flat, dim);
    DMatrix::from_iterator(dim, n, flat.iter().map(|&v| f64::from(v)))
}

/// The rows of `flat` picked by `indices`, as the columns of a `dim × indices.len()` matrix.
pub(crate) fn selected_rows_as_columns(
    name: &str,
    flat: &[f32],
    dim: usize,
    indices: &[usize],
) -> DMatrix<f64> {
    let n = row_count(name, flat, dim);
    if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
        panic!("{name}: row index {bad} out of range for {n} rows");
    }
    DMatrix::from_iterator(
        dim,
        indices.len(),
        indices
            .iter()
            .flat_map(|&i| flat[i * dim..(i + 1) * dim].iter().map(|&v| f64::from(v))),
    )
}
