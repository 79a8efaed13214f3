//! The MMD² noise floor of the exact 2-D targets: MMD² between independent exact sample sets of
//! the same size, as the sweeps compute it (RBF bandwidths 0.025, 0.05, 0.1, 0.2), over many
//! pairs; prints mean, standard deviation and the 95th percentile.
//!     cargo run --release --example mmd_null -- 2000 100
use ebdiff_data::ExactTarget2d;
use ebdiff_eval::mmd2_rbf;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a count"))
        .collect();
    let (n, pairs) = (
        args.first().copied().unwrap_or(2000),
        args.get(1).copied().unwrap_or(100),
    );
    for target in [
        ExactTarget2d::ring_times_bar(),
        ExactTarget2d::blob_mixture(),
        ExactTarget2d::box_negation(),
    ] {
        let mut v: Vec<f64> = (0..pairs as u64)
            .map(|k| {
                let a = target.sample(n, &mut ebdiff_core_free_rng(2 * k));
                let b = target.sample(n, &mut ebdiff_core_free_rng(2 * k + 1));
                mmd2_rbf(&a, &b, &[0.025, 0.05, 0.1, 0.2])
            })
            .collect();
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
        let p95 = v[(0.95 * (v.len() - 1) as f64).round() as usize];
        println!(
            "{}: n = {n}, {pairs} pairs: MMD² mean {mean:.5}, sd {sd:.5}, 95th percentile {p95:.5}",
            target.name()
        );
    }
}

fn ebdiff_core_free_rng(seed: u64) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::seed_from_u64(0x6d6d_645f_6e75_6c6c ^ seed)
}
