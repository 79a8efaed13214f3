//! KID against a plain numpy implementation of torch-fidelity's estimator
//! (`kid_pr_cases.npz`), plus its behaviour on identical and shifted sets.

use ebdiff_eval::{
    KidConfig, kernel_inception_distance, kid_from_subsets, polynomial_mmd2_unbiased,
};

mod common;
use common::{KidPrFixture as Fixture, kid_pr_fixture as fixture};

fn scalar(f: &Fixture, key: &str) -> f64 {
    f.arrays[key].data[0]
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn full_set_mmd_matches_numpy() {
    let f = fixture();
    let ours = polynomial_mmd2_unbiased(&f.real, &f.generated, f.dim);
    let rel = relative(ours, scalar(&f, "mmd2_full"));
    eprintln!("full-set MMD² {ours:.15e}, rel gap to numpy {rel:.2e}");
    assert!(rel <= 1e-10);
}

#[test]
fn stored_subsets_match_numpy_per_subset_mean_and_std() {
    let f = fixture();
    let to_indices = |key: &str| -> Vec<Vec<usize>> {
        let a = &f.arrays[key];
        a.data
            .chunks(a.shape[1])
            .map(|r| r.iter().map(|&v| v as usize).collect())
            .collect()
    };
    let subsets: Vec<(Vec<usize>, Vec<usize>)> = to_indices("kid_subset_idx_real")
        .into_iter()
        .zip(to_indices("kid_subset_idx_generated"))
        .collect();
    for (subset, &expected) in subsets.iter().zip(&f.arrays["kid_subset_mmd2"].data) {
        let one = kid_from_subsets(&f.real, &f.generated, f.dim, std::slice::from_ref(subset));
        assert!(
            relative(one.mean, expected) <= 1e-10,
            "{} vs {expected}",
            one.mean
        );
        assert_eq!(one.std, 0.0);
    }
    let kid = kid_from_subsets(&f.real, &f.generated, f.dim, &subsets);
    let (rel_mean, rel_std) = (
        relative(kid.mean, scalar(&f, "kid_mean")),
        relative(kid.std, scalar(&f, "kid_std")),
    );
    eprintln!("KID over stored subsets: mean rel gap {rel_mean:.2e}, std rel gap {rel_std:.2e}");
    assert_eq!((kid.subsets, kid.subset_size), (5, 50));
    assert!(rel_mean <= 1e-10 && rel_std <= 1e-8);
}

#[test]
fn subsets_covering_the_smaller_set_give_the_full_set_value() {
    // With 160 rows in each set and subset_size ≥ 160, every subset is a permutation of a whole
    // set, so the seeded draw cannot matter: mean = numpy's full-set value, spread = rounding.
    let f = fixture();
    let real = &f.real[..160 * f.dim];
    let config = KidConfig {
        subsets: 4,
        subset_size: 1000,
        seed: 9,
    };
    let kid = kernel_inception_distance(real, &f.generated, f.dim, &config);
    assert_eq!(kid.subset_size, 160);
    assert!(relative(kid.mean, scalar(&f, "mmd2_equal_sizes")) <= 1e-10);
    assert!(kid.std <= 1e-12 * kid.mean.abs());
}

#[test]
fn same_law_gives_near_zero_and_shifted_law_a_clear_positive() {
    // Disjoint halves of the real features: independent samples of one law, the setting in which
    // the unbiased estimate is centred on 0. (A set against itself is not: shared rows put
    // k(x, x) terms into the cross sum, see the next test.)
    let f = fixture();
    let (first, second) = f.real.split_at(100 * f.dim);
    let config = KidConfig {
        subsets: 50,
        subset_size: 50,
        seed: 3,
    };
    let same = kernel_inception_distance(first, second, f.dim, &config);
    let shifted: Vec<f32> = second.iter().map(|v| v + 0.5).collect();
    let apart = kernel_inception_distance(first, &shifted, f.dim, &config);
    eprintln!(
        "KID same law {:.3e} ± {:.1e}, shifted by 0.5 {:.3e} ± {:.1e}",
        same.mean, same.std, apart.mean, apart.std
    );
    assert!(same.mean.abs() <= 0.05 * apart.mean);
    assert!(apart.mean > 5.0 * apart.std);
}

#[test]
fn whole_set_against_itself_is_the_small_negative_unbiasedness_term() {
    // For X against itself, the estimator reduces to (2/n)(mean off-diagonal k − mean diagonal k):
    // not zero, and negative when self-similarity dominates, as the unbiased estimate may be.
    let f = fixture();
    let n = 40;
    let x = &f.real[..n * f.dim];
    let k = |i: usize, j: usize| {
        let dot: f64 = (0..f.dim)
            .map(|c| f64::from(x[i * f.dim + c]) * f64::from(x[j * f.dim + c]))
            .sum();
        (dot / f.dim as f64 + 1.0).powi(3)
    };
    let diagonal_mean = (0..n).map(|i| k(i, i)).sum::<f64>() / n as f64;
    let off_diagonal_mean = (0..n)
        .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| k(i, j))
        .sum::<f64>()
        / (n * (n - 1)) as f64;
    let expected = 2.0 / n as f64 * (off_diagonal_mean - diagonal_mean);
    let ours = polynomial_mmd2_unbiased(x, x, f.dim);
    assert!(expected < 0.0);
    assert!(relative(ours, expected) <= 1e-10, "{ours} vs {expected}");
}
