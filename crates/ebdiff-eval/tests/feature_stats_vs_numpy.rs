//! Streaming mean / covariance against numpy's `mean(axis=0)` and `np.cov(rowvar=False)` on the
//! seeded features of `kid_pr_cases.npz`.

use std::path::Path;

use ebdiff_eval::{FeatureStats, read_npz};

fn max_relative_gap(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn batches_and_shards_match_np_cov() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kid_pr_cases.npz");
    let arrays = read_npz(&path).unwrap();
    let real = &arrays["real"];
    let dim = real.shape[1];
    let rows: Vec<f32> = real.data.iter().map(|&v| v as f32).collect(); // stored as float32

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
        assert_eq!(stats.count(), real.shape[0] as u64);
        let mean_gap = max_relative_gap(&stats.mean(), &arrays["real_mean"].data);
        let cov_gap = max_relative_gap(&stats.covariance(), &arrays["real_cov"].data);
        eprintln!("mean rel gap {mean_gap:.2e}, covariance rel gap {cov_gap:.2e}");
        assert!(mean_gap <= 1e-13 && cov_gap <= 1e-12);
    }
}
