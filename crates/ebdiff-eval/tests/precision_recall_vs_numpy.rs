//! Improved precision/recall against a direct numpy implementation (`kid_pr_cases.npz`), and on
//! sets whose answer is known without computing.

use ebdiff_eval::{PR_NEIGHBOURHOOD, precision_recall};

mod common;

fn features() -> (
    Vec<f32>,
    Vec<f32>,
    usize,
    std::collections::BTreeMap<String, ebdiff_data::io::npy::NpyArray>,
) {
    let f = common::kid_pr_fixture();
    (f.real, f.generated, f.dim, f.arrays)
}

#[test]
fn matches_numpy_for_k_1_3_5() {
    let (real, generated, dim, arrays) = features();
    for k in [1, 3, 5] {
        let pr = precision_recall(&real, &generated, dim, k);
        let precision = arrays[&format!("precision_k{k}")].data[0];
        let recall = arrays[&format!("recall_k{k}")].data[0];
        eprintln!(
            "k={k}: ours ({}, {}), numpy ({precision}, {recall})",
            pr.precision, pr.recall
        );
        assert_eq!((pr.precision, pr.recall), (precision, recall), "k = {k}");
    }
}

#[test]
fn identical_sets_score_one() {
    let (real, _, dim, _) = features();
    let pr = precision_recall(&real, &real, dim, PR_NEIGHBOURHOOD);
    assert_eq!((pr.precision, pr.recall), (1.0, 1.0));
}

#[test]
fn distant_generated_points_score_zero() {
    let (real, _, dim, _) = features();
    let far: Vec<f32> = real.iter().map(|v| v + 1000.0).collect();
    let pr = precision_recall(&real, &far, dim, PR_NEIGHBOURHOOD);
    assert_eq!((pr.precision, pr.recall), (0.0, 0.0));
}

#[test]
fn generated_subset_of_real_has_full_precision() {
    // Every generated point is a real point, at distance 0 from its own ball's centre.
    let (real, _, dim, _) = features();
    let pr = precision_recall(&real, &real[..50 * dim], dim, PR_NEIGHBOURHOOD);
    assert_eq!(pr.precision, 1.0);
    assert!(pr.recall < 1.0);
}
