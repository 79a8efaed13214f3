//! `cargo xtask bench fid-features`: images/s of the FID network (Inception-v3 pool3 features,
//! after its resize to 299×299) on seeded random images, and on request the reference
//! TorchScript network (`default_1.pt`, the file `fetch inception` converts) run by PyTorch on
//! the very same images: both rates, their ratio, and how far the features differ.

use crate::json_file::write_json;
use crate::torch::run_torch_bench;
use anyhow::{Context, Result, ensure};
use ebdiff_core::NamedDevice;
use ebdiff_core::rng::{stream, uniform_vec};
use ebdiff_eval::fid::{DEFAULT_BATCH, FeatureExtractor};
use ebdiff_eval::inception::{DEFAULT_WEIGHTS_DIR, FEATURE_DIM};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The network, images and batch of [`fid_features`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct FidFeaturesOptions {
    /// Folder of converted FID weights (`cargo xtask fetch inception`); PyTorch reads the
    /// `default_1.pt` kept beside them.
    #[cfg_attr(feature = "clap", arg(long, default_value = DEFAULT_WEIGHTS_DIR))]
    pub weights: PathBuf,
    /// Images timed (after one untimed warm-up batch).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = FidFeaturesOptions::default().count))]
    pub count: usize,
    /// Side of the square RGB images (32: CIFAR-10's; the network resizes them to 299).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = FidFeaturesOptions::default().size))]
    pub size: usize,
    /// Images per forward pass, on both sides.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DEFAULT_BATCH))]
    pub batch: usize,
    /// Also run the reference network with this Python (torch, numpy, pillow) on the same images.
    #[cfg_attr(feature = "clap", arg(long, value_name = "PYTHON"))]
    pub compare_torch: Option<PathBuf>,
    /// Write the numbers as JSON.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub json: Option<PathBuf>,
}

impl Default for FidFeaturesOptions {
    fn default() -> Self {
        FidFeaturesOptions {
            weights: PathBuf::from(DEFAULT_WEIGHTS_DIR),
            count: 200,
            size: 32,
            batch: DEFAULT_BATCH,
            compare_torch: None,
            json: None,
        }
    }
}

/// Our side of the benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct FidFeaturesNumbers {
    pub backend: String,
    pub images: usize,
    pub size: usize,
    pub batch: usize,
    pub seconds: f64,
    pub images_per_s: f64,
}

/// What [`fid_features`] measured: the JSON that `--json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct FidFeaturesReport {
    pub ebdiff: FidFeaturesNumbers,
    /// `torch_bench.py fid-features`'s JSON with the largest feature difference added
    /// (`max_abs_diff`, `max_abs_feature`), with `compare_torch`.
    pub torch: Option<serde_json::Value>,
}

/// `cargo xtask bench fid-features`: times the FID network on `opts.count` seeded random RGB
/// images of `opts.size`² pixels on `on`, writes the numbers to `out` (and `opts.json`) and
/// returns them.
///
/// ```no_run
/// use ebdiff_bench::{FidFeaturesOptions, fid_features};
/// use ebdiff_core::NamedDevice;
///
/// let opts = FidFeaturesOptions {
///     count: 50,
///     ..FidFeaturesOptions::default()
/// };
/// let report = fid_features(&opts, &NamedDevice::cpu(), &mut std::io::stdout())?;
/// assert!(report.ebdiff.images_per_s > 0.0);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn fid_features(
    opts: &FidFeaturesOptions,
    on: &NamedDevice,
    out: &mut dyn Write,
) -> Result<FidFeaturesReport> {
    ensure!(
        opts.count >= 1 && opts.batch >= 1 && opts.size >= 1,
        "--count, --batch and --size must be ≥ 1"
    );
    let fx = FeatureExtractor::load(&opts.weights, on.device.clone(), opts.batch).with_context(
        || {
            format!(
                "no FID weights in {}: run `cargo xtask fetch inception`",
                opts.weights.display()
            )
        },
    )?;
    let shape = [3, opts.size, opts.size];
    let images: Vec<u8> = uniform_vec(
        &mut stream(0, "bench-fid"),
        opts.count * 3 * opts.size * opts.size,
    )
    .into_iter()
    .map(|u| (u * 256.0).min(255.0) as u8)
    .collect();
    writeln!(
        out,
        "bench fid-features: backend {}, {} RGB images {}×{} (resized to 299), batch {}",
        on.backend, opts.count, opts.size, opts.size, opts.batch
    )?;
    let per_image = 3 * opts.size * opts.size;
    let warm = opts.batch.min(opts.count) * per_image;
    let _ = fx.features_u8(&images[..warm], shape, &mut |_| {});
    let start = Instant::now();
    let ours = fx.features_u8(&images, shape, &mut |_| {});
    let seconds = start.elapsed().as_secs_f64();
    let rate = opts.count as f64 / seconds;
    writeln!(out, "ebdiff: {seconds:.2} s, {rate:.2} images/s")?;
    let torch = match &opts.compare_torch {
        Some(python) => Some(torch_side(python, opts, &images, &ours)?),
        None => None,
    };
    if let Some(t) = &torch {
        writeln!(
            out,
            "PyTorch {}: {:.2} s, {:.2} images/s\nebdiff/PyTorch throughput: {:.2}×\n\
             features (same images): max |difference| {:.2e}, max |feature| {:.2e}",
            t["torch_version"].as_str().unwrap_or("?"),
            t["seconds"].as_f64().unwrap_or(f64::NAN),
            t["images_per_s"].as_f64().unwrap_or(f64::NAN),
            rate / t["images_per_s"].as_f64().unwrap_or(f64::NAN),
            t["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
            t["max_abs_feature"].as_f64().unwrap_or(f64::NAN),
        )?;
    }
    let report = FidFeaturesReport {
        ebdiff: FidFeaturesNumbers {
            backend: on.backend.to_string(),
            images: opts.count,
            size: opts.size,
            batch: opts.batch,
            seconds,
            images_per_s: rate,
        },
        torch,
    };
    if let Some(path) = &opts.json {
        write_json(path, &report)?;
        writeln!(out, "wrote {}", path.display())?;
    }
    Ok(report)
}

/// Runs `torch_bench.py fid-features` on the same pixels (a raw file) and adds the largest
/// difference between its features and `ours` to its JSON.
fn torch_side(
    python: &Path,
    opts: &FidFeaturesOptions,
    images: &[u8],
    ours: &[f32],
) -> Result<serde_json::Value> {
    let dir = std::env::temp_dir().join(format!("ebdiff-bench-fid-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (pixels, feats) = (dir.join("images.u8"), dir.join("features.f32"));
    std::fs::write(&pixels, images)?;
    let shape = format!("{},3,{},{}", opts.count, opts.size, opts.size);
    let mut out = run_torch_bench(
        python,
        "fid-features",
        &[
            (
                "--weights",
                opts.weights.join("default_1.pt").display().to_string(),
            ),
            ("--images", pixels.display().to_string()),
            ("--shape", shape),
            ("--batch", opts.batch.to_string()),
            ("--features-out", feats.display().to_string()),
        ],
        "torch numpy pillow",
    )?;
    let theirs: Vec<f32> = std::fs::read(&feats)?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    ensure!(
        theirs.len() == ours.len() && ours.len() == opts.count * FEATURE_DIM,
        "PyTorch returned {} feature values, ebdiff {}",
        theirs.len(),
        ours.len()
    );
    let max_diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let max_feature = theirs.iter().map(|v| v.abs()).fold(0f32, f32::max);
    out["max_abs_diff"] = max_diff.into();
    out["max_abs_feature"] = max_feature.into();
    std::fs::remove_dir_all(&dir).ok();
    Ok(out)
}
