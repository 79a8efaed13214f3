//! Writes FID statistics of a synthetic feature set for `scripts/fid/check_npz_roundtrip.py`,
//! which rebuilds the same features with numpy and compares `np.mean` / `np.cov` with the file.
//!
//!     cargo run --release -p ebdiff-eval --example synthetic_stats_npz -- OUT.npz [ROWS] [DIM]
//!
//! Feature (i, j) = ((i² · 7 + i · j · 13 + j · 5) mod 257) / 32 − 4: small multiples of 1/32,
//! exact in float32 and in numpy, so both sides start from identical numbers.

use std::path::PathBuf;

use ebdiff_eval::{FeatureStats, save_stats_npz};

fn feature(i: usize, j: usize) -> f32 {
    ((i * i * 7 + i * j * 13 + j * 5) % 257) as f32 / 32.0 - 4.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: synthetic_stats_npz OUT.npz [ROWS=3000] [DIM=64]";
    let out = PathBuf::from(args.next().expect(usage));
    let rows: usize = args.next().map_or(3000, |a| a.parse().expect(usage));
    let dim: usize = args.next().map_or(64, |a| a.parse().expect(usage));

    let mut stats = FeatureStats::new(dim);
    // Batches of 100 rows, as a feature extractor would deliver them.
    for start in (0..rows).step_by(100) {
        let batch: Vec<f32> = (start..(start + 100).min(rows))
            .flat_map(|i| (0..dim).map(move |j| feature(i, j)))
            .collect();
        stats.add_batch(&batch);
    }
    if let Err(err) = save_stats_npz(&out, &stats.mean(), &stats.covariance()) {
        eprintln!("{err}");
        std::process::exit(1);
    }
    println!("wrote {} ({rows} rows, {dim} dimensions)", out.display());
}
