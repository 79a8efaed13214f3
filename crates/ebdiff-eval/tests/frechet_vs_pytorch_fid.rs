//! FID against pytorch-fid's `calculate_frechet_distance` (scipy sqrtm), on the cases written by
//! `scripts/fid/make_fixtures.py`.

use std::collections::BTreeMap;
use std::path::Path;

use ebdiff_data::io::npy::NpyArray;
use ebdiff_data::io::npz::read_npz;
use ebdiff_eval::frechet_distance;

const CASES: [&str; 5] = [
    "d8",
    "d64",
    "d64_rank_deficient",
    "d256_float32",
    "d64_close",
];

fn cases() -> BTreeMap<String, NpyArray> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/frechet_cases.npz");
    read_npz(&path).unwrap()
}

fn field<'a>(arrays: &'a BTreeMap<String, NpyArray>, case: &str, key: &str) -> &'a NpyArray {
    arrays
        .get(&format!("{case}_{key}"))
        .unwrap_or_else(|| panic!("frechet_cases.npz lacks {case}_{key}; rerun make_fixtures.py"))
}

#[test]
fn agrees_with_pytorch_fid_within_1e6_relative() {
    let arrays = cases();
    for case in CASES {
        let mu1 = field(&arrays, case, "mu1");
        let dim = mu1.shape[0];
        assert_eq!(field(&arrays, case, "sigma1").shape, [dim, dim]);
        let fid = frechet_distance(
            &mu1.data,
            &field(&arrays, case, "sigma1").data,
            &field(&arrays, case, "mu2").data,
            &field(&arrays, case, "sigma2").data,
        )
        .unwrap();
        let expected = field(&arrays, case, "fid").data[0];
        let relative = (fid - expected).abs() / expected.abs();
        eprintln!(
            "{case:20} D={dim:3}  ours {fid:.15e}  pytorch-fid {expected:.15e}  rel {relative:.2e}"
        );
        assert!(
            relative <= 1e-6,
            "{case}: {fid} vs pytorch-fid {expected} (relative {relative:e})"
        );
    }
}

#[test]
fn is_symmetric_in_its_two_arguments() {
    // tr(Σ1Σ2)^{1/2} = tr(Σ2Σ1)^{1/2}; the eigh route treats Σ1 and Σ2 differently, so swapping
    // them checks the square root is not biased toward either.
    let arrays = cases();
    for case in CASES {
        let [mu1, s1, mu2, s2] =
            ["mu1", "sigma1", "mu2", "sigma2"].map(|k| &field(&arrays, case, k).data);
        let forward = frechet_distance(mu1, s1, mu2, s2).unwrap();
        let backward = frechet_distance(mu2, s2, mu1, s1).unwrap();
        let relative = (forward - backward).abs() / forward;
        assert!(relative <= 1e-8, "{case}: {forward} vs swapped {backward}");
    }
}

/// Real Inception features (the golden features of 20 CIFAR-10 images), split 10 / 10: each
/// covariance has rank 9 in 2048 dimensions, the regime of every FID on fewer images than
/// features. The exact trace term is then the nuclear norm of the 10 × 10 centred cross-product
/// (the non-zero eigenvalues of Σ1Σ2 are those of KKᵀ, K = X1ᶜ X2ᶜᵀ/(n − 1)), which an SVD of a
/// small matrix gives to machine precision.
#[test]
fn rank_deficient_real_statistics_match_the_exact_nuclear_norm_value() {
    use ebdiff_eval::{FeatureStats, frechet_distance};
    use nalgebra::DMatrix;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inception_foolbox_cifar10_features.npz");
    let f = &read_npz(&path).unwrap()["features"];
    let (n, d) = (10, 2048);
    let rows = |start: usize| -> Vec<f32> {
        f.data[start * d..(start + n) * d]
            .iter()
            .map(|&v| v as f32)
            .collect()
    };
    let (x1, x2) = (rows(0), rows(10));
    let stats = |x: &[f32]| {
        let mut s = FeatureStats::new(d);
        s.add_batch(x);
        (s.mean(), s.covariance())
    };
    let ((mu1, s1), (mu2, s2)) = (stats(&x1), stats(&x2));
    let fid = frechet_distance(&mu1, &s1, &mu2, &s2).unwrap();

    let centred =
        |x: &[f32], mu: &[f64]| DMatrix::from_fn(n, d, |i, j| x[i * d + j] as f64 - mu[j]);
    let k = centred(&x1, &mu1) * centred(&x2, &mu2).transpose() / (n - 1) as f64;
    let nuclear: f64 = k.singular_values().iter().sum();
    let trace = |s: &[f64]| (0..d).map(|i| s[i * d + i]).sum::<f64>();
    let mean_term: f64 = mu1.iter().zip(&mu2).map(|(a, b)| (a - b).powi(2)).sum();
    let exact = mean_term + trace(&s1) + trace(&s2) - 2.0 * nuclear;
    let rel = (fid - exact).abs() / exact;
    assert!(rel <= 1e-9, "FID {fid} vs exact {exact}: {rel:e} relative");
}
