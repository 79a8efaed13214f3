//! FID statistics files: `.npz` archives with arrays `mu` (D) and `sigma` (D × D), the format
//! pytorch-fid, clean-fid and NVlabs/edm read and write, plus optional `features` (N × D, what
//! KID and precision/recall need) and `count`. The file format itself (`.npy` members in a zip)
//! is [`ebdiff_data::io::npz`].
//!
//! `mu` and `sigma` are written as float64; reading also takes float32 (pytorch-fid and clean-fid
//! store `mu` as float32 because they average float32 features; `np.cov` makes `sigma` float64).

use crate::fid::SetFeatures;
use ebdiff_data::io::npy::{npy_f32_bytes, npy_f64_bytes};
use ebdiff_data::io::npz::{NpzError, read_npz_keys, write_npz};
use std::path::Path;

/// What a statistics file must hold, quoted when an array is missing.
const EXPECTED: &str = "FID statistics need `mu` and `sigma`, as written by \
                        np.savez(path, mu=mu, sigma=sigma)";

/// Writes `mu` (length D) and row-major `sigma` (D × D) as float64 arrays `mu` and `sigma`, the
/// layout `np.load(path)['mu']` / `['sigma']` expects. The archive is written next to `path`
/// and renamed into place, so an interrupted run never leaves a truncated statistics file.
pub fn save_stats_npz(path: &Path, mu: &[f64], sigma: &[f64]) -> Result<(), NpzError> {
    save_stats_npz_with_features(path, mu, sigma, None)
}

/// [`save_stats_npz`] plus, optionally, the row-major `[n, D]` float32 features themselves as
/// array `features` (what KID and precision/recall need; FID tools ignore extra keys).
pub fn save_stats_npz_with_features(
    path: &Path,
    mu: &[f64],
    sigma: &[f64],
    features: Option<&[f32]>,
) -> Result<(), NpzError> {
    let dim = mu.len();
    if dim == 0 || sigma.len() != dim * dim {
        return Err(NpzError::BadArray {
            path: path.to_path_buf(),
            key: "sigma".into(),
            problem: format!(
                "{} entries for a {dim}-dimensional mean; pass a non-empty mu and the full \
                 row-major {dim}×{dim} covariance",
                sigma.len()
            ),
        });
    }
    let mut arrays = vec![
        ("mu", npy_f64_bytes(&[dim], mu)),
        ("sigma", npy_f64_bytes(&[dim, dim], sigma)),
    ];
    if let Some(f) = features {
        arrays.push(("features", features_npy(path, f, dim)?));
    }
    write_npz(path, arrays)
}

/// Only the row-major `[n, dim]` float32 `features` (the shards of `cargo xtask eval`).
pub fn save_features_npz(path: &Path, features: &[f32], dim: usize) -> Result<(), NpzError> {
    write_npz(path, vec![("features", features_npy(path, features, dim)?)])
}

fn features_npy(path: &Path, f: &[f32], dim: usize) -> Result<Vec<u8>, NpzError> {
    if dim == 0 || !f.len().is_multiple_of(dim) {
        return Err(NpzError::BadArray {
            path: path.to_path_buf(),
            key: "features".into(),
            problem: format!("{} values are not rows of {dim}", f.len()),
        });
    }
    Ok(npy_f32_bytes(&[f.len() / dim, dim], f))
}

/// The one reader of FID statistics files (ours, pytorch-fid's, clean-fid's): `mu` (D,),
/// `sigma` (D, D), and when present `features` (N, D) with N ≥ 1 and `count` (the number of
/// images; N when features are stored, else `count`, else 0).
///
/// Accepts float64 or float32 arrays of any D; refuses missing keys, Fortran-ordered or
/// non-numeric arrays, and other shapes. [`SetFeatures::load`] adds the check that D is the FID
/// network's 2048.
pub fn load_stats_npz(path: &Path) -> Result<SetFeatures, NpzError> {
    // Only these are parsed: other members (of any dtype) are ignored.
    let mut npz = read_npz_keys(path, |key| {
        matches!(key, "mu" | "sigma" | "features" | "count")
    })?;
    let (mu, sigma) = (npz.take("mu", EXPECTED)?, npz.take("sigma", EXPECTED)?);
    let [dim] = mu.shape[..] else {
        return Err(npz.bad_array(
            "mu",
            format!("shape {:?}, expected a vector (D,)", mu.shape),
        ));
    };
    if sigma.shape != [dim, dim] {
        return Err(npz.bad_array(
            "sigma",
            format!(
                "shape {:?}, expected ({dim}, {dim}) to match mu of length {dim}",
                sigma.shape
            ),
        ));
    }
    let features = match npz.arrays.remove("features") {
        Some(f) if f.shape.len() == 2 && f.shape[0] > 0 && f.shape[1] == dim => Some(f.to_f32()),
        Some(f) => {
            return Err(npz.bad_array(
                "features",
                format!(
                    "shape {:?}, expected (N, {dim}) with N ≥ 1 rows of mu's dimension",
                    f.shape
                ),
            ));
        }
        None => None,
    };
    let count = match (&features, npz.arrays.get("count")) {
        (Some(f), _) => f.len() / dim,
        (None, Some(c)) => c.data.first().map_or(0, |&c| c as usize),
        (None, None) => 0,
    };
    Ok(SetFeatures {
        mu: mu.data,
        sigma: sigma.data,
        count,
        features,
    })
}
