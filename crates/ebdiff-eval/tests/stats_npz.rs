//! FID statistics files: numpy-written files load with exact values, malformed ones are refused
//! with messages naming the file and the key, and our files round-trip.

use std::path::{Path, PathBuf};

use ebdiff_data::io::npz::{NpzError, read_npz};
use ebdiff_eval::{load_stats_npz, save_stats_npz, save_stats_npz_with_features};

const DIM: usize = 16;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The analytic contents of the numpy-written fixtures: mu_i = i/4, sigma_ij = 1/(i+j+1) + [i=j].
fn analytic_stats() -> (Vec<f64>, Vec<f64>) {
    let mu = (0..DIM).map(|i| i as f64 / 4.0).collect();
    let sigma = (0..DIM * DIM)
        .map(|k| {
            let (i, j) = (k / DIM, k % DIM);
            1.0 / (i + j + 1) as f64 + if i == j { 1.0 } else { 0.0 }
        })
        .collect();
    (mu, sigma)
}

#[test]
fn loads_np_savez_exactly() {
    let set = load_stats_npz(&fixture("stats_savez.npz")).unwrap();
    assert_eq!(set.mu.len(), DIM);
    assert_eq!((set.mu, set.sigma), analytic_stats());
    assert_eq!((set.count, set.features), (0, None));
}

#[test]
fn loads_compressed_file_with_float32_mean_like_pytorch_fid() {
    let set = load_stats_npz(&fixture("stats_savez_compressed_mu_float32.npz")).unwrap();
    assert_eq!(set.mu.len(), DIM);
    assert_eq!((set.mu, set.sigma), analytic_stats()); // i/4 is exact in float32
}

fn load_error(name: &str) -> (NpzError, String) {
    let err = load_stats_npz(&fixture(name)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(name),
        "message does not name the file: {message}"
    );
    (err, message)
}

#[test]
fn refuses_fortran_order() {
    let (err, message) = load_error("stats_fortran_order.npz");
    assert!(
        matches!(err, NpzError::BadArray { ref key, .. } if key == "sigma"),
        "{message}"
    );
    assert!(message.contains("Fortran order") && message.contains("np.ascontiguousarray"));
}

#[test]
fn refuses_missing_sigma() {
    let (err, message) = load_error("stats_missing_sigma.npz");
    assert!(
        matches!(err, NpzError::MissingKey { ref key, ref found, .. } if key == "sigma" && found == &["mu"]),
        "{message}"
    );
    assert!(message.contains("np.savez(path, mu=mu, sigma=sigma)"));
}

#[test]
fn refuses_non_square_sigma() {
    let (err, message) = load_error("stats_wrong_shape.npz");
    assert!(matches!(err, NpzError::BadArray { ref key, .. } if key == "sigma"));
    assert!(
        message.contains("shape [16, 15], expected (16, 16)"),
        "{message}"
    );
}

#[test]
fn refuses_float16() {
    let (err, message) = load_error("stats_float16.npz");
    assert!(matches!(err, NpzError::BadArray { ref key, .. } if key == "mu"));
    assert!(message.contains("dtype '<f2'"), "{message}");
}

#[test]
fn refuses_missing_and_non_zip_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.npz");
    let err = load_stats_npz(&missing).unwrap_err();
    assert!(matches!(err, NpzError::Io { .. }) && err.to_string().contains("absent.npz"));

    let text = dir.path().join("notes.npz");
    std::fs::write(&text, "mu, sigma").unwrap();
    let err = load_stats_npz(&text).unwrap_err();
    assert!(matches!(err, NpzError::Zip { .. }), "{err}");
    assert!(err.to_string().contains("notes.npz"));
}

#[test]
fn saved_stats_round_trip_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats.npz");
    let mu: Vec<f64> = (0..5).map(|i| (i as f64 + 0.1).sqrt() * 1e-3).collect();
    let sigma: Vec<f64> = (0..25).map(|k| ((k * 7 % 25) as f64).exp() / 3.0).collect();
    save_stats_npz(&path, &mu, &sigma).unwrap();

    let arrays = read_npz(&path).unwrap();
    assert_eq!(arrays.keys().collect::<Vec<_>>(), ["mu", "sigma"]);
    assert_eq!(arrays["mu"].shape, [5]);
    assert_eq!(arrays["sigma"].shape, [5, 5]);
    let back = load_stats_npz(&path).unwrap();
    assert_eq!(back.mu.len(), 5);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back.mu), bits(&mu));
    assert_eq!(bits(&back.sigma), bits(&sigma));
    // Written through a temporary name, which must not be left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["stats.npz"]);
}

#[test]
fn save_refuses_mismatched_covariance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.npz");
    let err = save_stats_npz(&path, &[0.0; 3], &[0.0; 8]).unwrap_err();
    assert!(
        err.to_string().contains("bad.npz") && err.to_string().contains("3×3"),
        "{err}"
    );
    assert!(!path.exists());
}

#[test]
fn features_are_stored_as_float32_rows_beside_the_stats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ref.npz");
    let features: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
    save_stats_npz_with_features(&path, &[0.0, 1.0], &[1.0, 0.0, 0.0, 1.0], Some(&features))
        .unwrap();
    let arrays = read_npz(&path).unwrap();
    assert_eq!(arrays["features"].shape, [3, 2]);
    let back: Vec<f32> = arrays["features"].data.iter().map(|&v| v as f32).collect();
    assert_eq!(back, features);
    // Rows must be whole.
    let err = save_stats_npz_with_features(&path, &[0.0, 1.0], &[1.0, 0.0, 0.0, 1.0], Some(&[1.0]))
        .unwrap_err();
    assert!(err.to_string().contains("features"), "{err}");
}

#[test]
fn the_one_reader_returns_stored_features_and_checks_their_rows() {
    use ebdiff_data::io::npy::{npy_f32_bytes, npy_f64_bytes};
    use ebdiff_data::io::npz::write_npz;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ref.npz");
    let features: Vec<f32> = (0..6).map(|i| i as f32 * 0.25).collect();
    save_stats_npz_with_features(&path, &[0.0, 1.0], &[1.0, 0.0, 0.0, 1.0], Some(&features))
        .unwrap();
    let set = load_stats_npz(&path).unwrap();
    assert_eq!(set.count, 3);
    assert_eq!(set.features.as_deref(), Some(&features[..]));

    // Rows of another width than mu's are refused, naming the array and the expected shape.
    let bad = dir.path().join("bad.npz");
    write_npz(
        &bad,
        vec![
            ("mu", npy_f64_bytes(&[2], &[0.0, 1.0])),
            ("sigma", npy_f64_bytes(&[2, 2], &[1.0, 0.0, 0.0, 1.0])),
            ("features", npy_f32_bytes(&[2, 3], &features)),
        ],
    )
    .unwrap();
    let err = load_stats_npz(&bad).unwrap_err();
    assert!(
        matches!(err, NpzError::BadArray { ref key, .. } if key == "features"),
        "{err}"
    );
    assert!(err.to_string().contains("expected (N, 2)"), "{err}");
}
