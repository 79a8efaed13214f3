//! `cargo xtask bench fid-features`: images/s of the FID network (Inception-v3 pool3 features,
//! after its resize to 299×299) on seeded random images, and with `--compare-torch` the
//! reference TorchScript network (`default_1.pt`, the file `fetch inception` converts) run by
//! PyTorch on the very same images: both rates, their ratio, and how far the features differ.

use anyhow::{Context, Result};
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_core::rng::{stream, uniform_vec};
use ebdiff_eval::fid::{DEFAULT_BATCH, FeatureExtractor};
use ebdiff_eval::inception::{DEFAULT_WEIGHTS_DIR, FEATURE_DIM};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct FidFeaturesArgs {
    /// Folder of converted FID weights (`cargo xtask fetch inception`); PyTorch reads the
    /// `default_1.pt` kept beside them.
    #[arg(long, default_value = DEFAULT_WEIGHTS_DIR)]
    weights: PathBuf,
    /// Images timed (after one untimed warm-up batch).
    #[arg(long, default_value_t = 200)]
    count: usize,
    /// Side of the square RGB images (32: CIFAR-10's; the network resizes them to 299).
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Images per forward pass, on both sides.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// Also run the reference network with this Python (torch, numpy, pillow) on the same images.
    #[arg(long, value_name = "PYTHON")]
    compare_torch: Option<PathBuf>,
    /// Write the numbers as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

pub fn fid_features(args: FidFeaturesArgs, backend: BackendKind) -> Result<()> {
    anyhow::ensure!(
        args.count >= 1 && args.batch >= 1 && args.size >= 1,
        "--count, --batch and --size must be ≥ 1"
    );
    let fx = FeatureExtractor::load(&args.weights, crate::device(backend)?, args.batch)
        .with_context(|| {
            format!(
                "no FID weights in {}: run `cargo xtask fetch inception`",
                args.weights.display()
            )
        })?;
    let shape = [3, args.size, args.size];
    let images: Vec<u8> = uniform_vec(
        &mut stream(0, "bench-fid"),
        args.count * 3 * args.size * args.size,
    )
    .into_iter()
    .map(|u| (u * 256.0).min(255.0) as u8)
    .collect();
    println!(
        "bench fid-features: backend {backend}, {} RGB images {}×{} (resized to 299), batch {}",
        args.count, args.size, args.size, args.batch
    );
    let per_image = 3 * args.size * args.size;
    let warm = args.batch.min(args.count) * per_image;
    let _ = fx.features_u8(&images[..warm], shape, &mut |_| {});
    let start = Instant::now();
    let ours = fx.features_u8(&images, shape, &mut |_| {});
    let seconds = start.elapsed().as_secs_f64();
    let rate = args.count as f64 / seconds;
    println!("ebdiff: {seconds:.2} s, {rate:.2} images/s");
    let torch = match &args.compare_torch {
        Some(python) => Some(torch_side(python, &args, &images, &ours)?),
        None => None,
    };
    if let Some(t) = &torch {
        println!(
            "PyTorch {}: {:.2} s, {:.2} images/s\nebdiff/PyTorch throughput: {:.2}×\n\
             features (same images): max |difference| {:.2e}, max |feature| {:.2e}",
            t["torch_version"].as_str().unwrap_or("?"),
            t["seconds"].as_f64().unwrap_or(f64::NAN),
            t["images_per_s"].as_f64().unwrap_or(f64::NAN),
            rate / t["images_per_s"].as_f64().unwrap_or(f64::NAN),
            t["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
            t["max_abs_feature"].as_f64().unwrap_or(f64::NAN),
        );
    }
    if let Some(path) = &args.json {
        let all = serde_json::json!({
            "ebdiff": { "backend": backend.to_string(), "images": args.count, "size": args.size,
                        "batch": args.batch, "seconds": seconds, "images_per_s": rate },
            "torch": torch,
        });
        std::fs::write(path, serde_json::to_string_pretty(&all)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs `torch_bench.py fid-features` on the same pixels (a raw file) and adds the largest
/// difference between its features and `ours` to its JSON.
fn torch_side(
    python: &Path,
    args: &FidFeaturesArgs,
    images: &[u8],
    ours: &[f32],
) -> Result<serde_json::Value> {
    let dir = std::env::temp_dir().join(format!("ebdiff-bench-fid-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (pixels, feats, json) = (
        dir.join("images.u8"),
        dir.join("features.f32"),
        dir.join("out.json"),
    );
    std::fs::write(&pixels, images)?;
    let status = std::process::Command::new(python)
        .arg("scripts/bench/torch_bench.py")
        .arg("fid-features")
        .arg("--weights")
        .arg(args.weights.join("default_1.pt"))
        .arg("--images")
        .arg(&pixels)
        .args(["--shape", &format!("{},3,{},{}", args.count, args.size, args.size)])
        .args(["--batch", &args.batch.to_string()])
        .arg("--features-out")
        .arg(&feats)
        .arg("--json")
        .arg(&json)
        .status()
        .with_context(|| {
            format!(
                "cannot run {} (install: python3 -m venv .venv && .venv/bin/pip install torch numpy pillow)",
                python.display()
            )
        })?;
    anyhow::ensure!(
        status.success(),
        "the PyTorch FID benchmark failed ({status})"
    );
    let mut out: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let theirs: Vec<f32> = std::fs::read(&feats)?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    anyhow::ensure!(
        theirs.len() == ours.len() && ours.len() == args.count * FEATURE_DIM,
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
