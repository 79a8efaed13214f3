//! Streaming mean / covariance against numpy's `mean(axis=0)` and `np.cov(rowvar=False)` on the
//! seeded features of `kid_pr_cases.npz`.

use ebdiff_eval::FeatureStats;

mod common;
use common::{kid_pr_fixture, max_relative_gap};

#[test]
fn batches_and_shards_match_np_cov() {
    let fixture = kid_pr_fixture();
    let (rows, dim, arrays) = (&fixture.real, fixture.dim, &fixture.arrays);

    let mut one_pass = FeatureStats::new(dim);
    for batch in rows.chunks(37 * dim) {
        one_pass.add_batch(batch);
    }
    let mut shards: Vec<FeatureStats> = rows
        .chunks(64 * dim)
        .map(|shard| {
            let mut s = FeatureStats::new(dim);
            s.add_batch(shard);
            s
        })
        .collect();
    let mut merged = shards.pop().unwrap();
    for s in &shards {
        merged.merge(s);
    }

    for stats in [&one_pass, &merged] {
        assert_eq!(stats.count(), arrays["real"].shape[0] as u64);
        let mean_gap = max_relative_gap(&stats.mean(), &arrays["real_mean"].data);
        let cov_gap = max_relative_gap(&stats.covariance(), &arrays["real_cov"].data);
        eprintln!("mean rel gap {mean_gap:.2e}, covariance rel gap {cov_gap:.2e}");
        assert!(mean_gap <= 1e-13 && cov_gap <= 1e-12);
    }
}
