//! `fid_commands::fid_stats` and `fid`, the `cargo xtask fid-stats` and `fid` commands as library
//! calls, on a randomly initialized FID network (the real weights are a download; the commands,
//! not the network, are under test). Statistics that `fid_stats` writes of a folder describe it
//! exactly, so `fid` of the folder against them is its FID against itself: 0 up to round-off,
//! with precision and recall 1.

use burn::tensor::Device;
use ebdiff_core::Solo;
use ebdiff_eval::fid::SetFeatures;
use ebdiff_eval::fid_commands::{FeatureOptions, FidOptions, FidStatsOptions, fid, fid_stats};
use ebdiff_eval::inception::save_random_weights;
use ebdiff_eval::pipeline::PipelineError;
use std::path::Path;

/// `n` deterministic 3×16×16 images, one PNG each.
fn image_folder(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let px: Vec<f32> = (0..3 * 16 * 16)
            .map(|j| (((i * 7919 + j * 104729) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        ebdiff_eval::write_image_grid_png(&dir.join(format!("{i:02}.png")), &px, [3, 16, 16], 1)
            .unwrap();
    }
}

fn features(weights: &Path) -> FeatureOptions {
    FeatureOptions {
        weights: weights.to_path_buf(),
        batch: 4,
        kid_subsets: 4,
        kid_subset_size: 4,
    }
}

#[test]
fn a_folder_against_its_own_statistics_has_fid_zero_and_precision_recall_one() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("inception");
    save_random_weights(&weights, 5).unwrap();
    let folder = tmp.path().join("images");
    image_folder(&folder, 8);
    let reference = tmp.path().join("ref.npz");

    let stats_opts = FidStatsOptions {
        data: None,
        folder: Some(folder.clone()),
        limit: None,
        out: reference.clone(),
        features: features(&weights),
    };
    let stats = fid_stats(&stats_opts, Device::flex(), &Solo, &mut |_| {})
        .unwrap()
        .expect("one process is rank 0");
    assert_eq!(stats.set.count, 8);
    let printed = stats.to_string();
    assert!(
        printed.starts_with(&format!(
            "8 images of {} → {} (",
            folder.display(),
            reference.display()
        )),
        "{printed}"
    );
    assert_eq!(SetFeatures::load(&reference).unwrap().mu, stats.set.mu);
    let note: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(note["source"], folder.display().to_string());
    assert_eq!(note["count"], 8);

    let result = tmp.path().join("result.json");
    let mut fid_opts = FidOptions::new(&reference, &folder);
    fid_opts.out = Some(result.clone());
    fid_opts.features = features(&weights);
    let report = fid(&fid_opts, Device::flex(), &mut |_| {}).unwrap();
    let m = &report.record.metrics;
    assert_eq!((m.count_reference, m.count_evaluated), (8, 8));
    let trace: f64 = (0..stats.set.mu.len())
        .map(|i| stats.set.sigma[i * stats.set.mu.len() + i])
        .sum();
    assert!(trace > 0.0);
    assert!(m.fid.abs() <= 1e-6 * trace, "FID {} (trace {trace})", m.fid);
    assert_eq!((m.precision, m.recall), (Some(1.0), Some(1.0)));

    // What `cargo xtask fid` prints: FID, KID, precision/recall, then the images/s of the one
    // image folder (statistics files have none).
    let printed = report.to_string();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 4, "{printed}");
    assert_eq!(lines[0], format!("FID {:.9}", m.fid));
    assert!(lines[1].starts_with("KID "), "{printed}");
    assert_eq!(lines[2], "precision 1.0000  recall 1.0000");
    assert!(
        lines[3].starts_with(&format!("{}: ", folder.display())) && lines[3].ends_with(" images/s"),
        "{printed}"
    );
    // `--out` holds the record returned (both read back by the same parser).
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let returned: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&report.record).unwrap()).unwrap();
    assert_eq!(written, returned);
    assert_eq!(written["evaluated"], folder.display().to_string());
}

#[test]
fn fid_stats_without_a_source_is_refused_before_the_network_loads() {
    let opts = FidStatsOptions {
        data: None,
        folder: None,
        limit: None,
        out: "unused.npz".into(),
        features: features(Path::new("/nonexistent/inception")),
    };
    let err = fid_stats(&opts, Device::flex(), &Solo, &mut |_| {}).unwrap_err();
    assert!(matches!(err, PipelineError::Invalid(_)), "{err}");
    assert!(
        err.to_string().contains("--data DATASET or --folder DIR"),
        "{err}"
    );
}

#[test]
fn missing_fid_weights_name_the_fetch_command() {
    let mut opts = FidOptions::new("a.npz", "b.npz");
    opts.features = features(Path::new("/nonexistent/inception"));
    let err = fid(&opts, Device::flex(), &mut |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("cargo xtask fetch inception"),
        "{err}"
    );
}
