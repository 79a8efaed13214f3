//! FID commands over the eval crate's Inception network:
//! - `cargo xtask fid A B`: FID (and KID, precision/recall) between two image folders or `.npz`
//!   statistics files;
//! - `cargo xtask fid-stats --data cifar10-train`: reference statistics of a dataset or folder;
//! - `cargo xtask eval --checkpoint RUN`: generate with the EMA weights in resumable shards and
//!   compare with reference statistics.
//!
//! Every result JSON records the convention (weights hash, resize, N, sampler, seeds).

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::{Args, ValueEnum};
use ebdiff_core::BackendKind;
use ebdiff_data::image::ImageDataConfig;
use ebdiff_data::io::npz::read_npz;
use ebdiff_eval::fid::{
    FeatureExtractor, FidConvention, SetFeatures, compare_sets, image_files, load_rgb_images,
};
use ebdiff_eval::inception::{DEFAULT_WEIGHTS_DIR, FEATURE_DIM};
use ebdiff_eval::{
    KidConfig, model_pixel_to_u8, save_features_npz, save_stats_npz_with_features,
    write_image_grid_png,
};
use ebdiff_sampler::{Labels, ModelTarget, SamplerKind};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct FeatureOptions {
    /// Folder of converted FID weights (`cargo xtask fetch inception`).
    #[arg(long, default_value = DEFAULT_WEIGHTS_DIR)]
    weights: PathBuf,
    /// Images per forward pass of the FID network.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// KID subsets and subset size (clean-fid / torch-fidelity: 100 × 1000).
    #[arg(long, default_value_t = 100)]
    kid_subsets: usize,
    #[arg(long, default_value_t = 1000)]
    kid_subset_size: usize,
}

impl FeatureOptions {
    fn extractor(&self, device: Device) -> Result<FeatureExtractor> {
        Ok(FeatureExtractor::load(&self.weights, device, self.batch)?)
    }

    fn kid(&self) -> KidConfig {
        KidConfig {
            subsets: self.kid_subsets,
            subset_size: self.kid_subset_size,
            seed: 0,
        }
    }
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images ({per_sec}, eta {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Features of uint8 images with a progress bar; also returns images/s.
fn extract(fx: &FeatureExtractor, pixels: &[u8], shape: [usize; 3], what: &str) -> (Vec<f32>, f64) {
    let n = pixels.len() / shape.iter().product::<usize>();
    let pb = bar(n, what);
    let t0 = Instant::now();
    let f = fx.features_u8(pixels, shape, &mut |done| pb.set_position(done as u64));
    pb.finish_and_clear();
    (f, n as f64 / t0.elapsed().as_secs_f64())
}

fn load_stats(path: &Path) -> Result<SetFeatures> {
    SetFeatures::load(path).map_err(anyhow::Error::msg)
}

/// A folder of images or an `.npz` of statistics; returns the set and images/s (folders only).
fn load_set(
    path: &Path,
    fx: &FeatureExtractor,
    limit: Option<usize>,
) -> Result<(SetFeatures, Option<f64>)> {
    if path.is_file() {
        return Ok((load_stats(path)?, None));
    }
    if !path.is_dir() {
        bail!(
            "{} is neither an image folder nor an .npz statistics file",
            path.display()
        );
    }
    let mut files = image_files(path).map_err(anyhow::Error::msg)?;
    if let Some(l) = limit {
        files.truncate(l);
    }
    let (pixels, shape) = load_rgb_images(&files).map_err(anyhow::Error::msg)?;
    let (features, rate) = extract(fx, &pixels, shape, &path.display().to_string());
    Ok((SetFeatures::from_features(features), Some(rate)))
}

#[derive(Args)]
pub struct FidArgs {
    /// Reference: image folder or .npz statistics.
    reference: PathBuf,
    /// Evaluated: image folder or .npz statistics.
    evaluated: PathBuf,
    /// Use only the first N images of each folder (sorted by path).
    #[arg(long)]
    limit: Option<usize>,
    /// Write the result (with its convention) to this JSON file.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    features: FeatureOptions,
}

pub fn fid(args: FidArgs, backend: BackendKind) -> Result<()> {
    // Check both before spending minutes on the first.
    for p in [&args.reference, &args.evaluated] {
        if !p.exists() {
            bail!(
                "{} does not exist (expected an image folder or an .npz)",
                p.display()
            );
        }
    }
    let device = backend.device().map_err(anyhow::Error::msg)?;
    let fx = args.features.extractor(device)?;
    let (a, rate_a) = load_set(&args.reference, &fx, args.limit)?;
    let (b, rate_b) = load_set(&args.evaluated, &fx, args.limit)?;
    let cmp = compare_sets(&a, &b, &args.features.kid())?;
    println!("FID {:.9}", cmp.fid);
    if let (Some(k), Some(s)) = (cmp.kid_mean, cmp.kid_std) {
        println!("KID {k:.6} ± {s:.6}");
    }
    if let (Some(p), Some(r)) = (cmp.precision, cmp.recall) {
        println!("precision {p:.4}  recall {r:.4}");
    }
    for (path, rate) in [(&args.reference, rate_a), (&args.evaluated, rate_b)] {
        if let Some(r) = rate {
            println!("{}: {r:.2} images/s", path.display());
        }
    }
    if let Some(out) = args.out {
        let result = json!({
            "reference": args.reference, "evaluated": args.evaluated, "limit": args.limit,
            "metrics": cmp, "images_per_second": [rate_a, rate_b],
            "convention": FidConvention::new(fx.provenance(), &args.features.kid()),
        });
        std::fs::write(&out, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

#[derive(Clone, Copy, ValueEnum, Debug)]
pub enum ReferenceData {
    Cifar10Train,
    Cifar10Test,
    MnistTrain,
    MnistTest,
    FashionMnistTrain,
    FashionMnistTest,
}

impl ReferenceData {
    /// The `[data]` table that loads it (default folders under datasets/).
    fn config(self) -> (ImageDataConfig, [usize; 3]) {
        let (kind, split, shape) = match self {
            Self::Cifar10Train => ("cifar10", "train", [3, 32, 32]),
            Self::Cifar10Test => ("cifar10", "test", [3, 32, 32]),
            Self::MnistTrain => ("mnist", "train", [1, 28, 28]),
            Self::MnistTest => ("mnist", "test", [1, 28, 28]),
            Self::FashionMnistTrain => ("fashion-mnist", "train", [1, 28, 28]),
            Self::FashionMnistTest => ("fashion-mnist", "test", [1, 28, 28]),
        };
        let text = format!("kind = \"{kind}\"\nsplit = \"{split}\"\n");
        (toml::from_str(&text).expect("valid built-in table"), shape)
    }
}

#[derive(Args)]
pub struct FidStatsArgs {
    /// Dataset (its default folder under datasets/) …
    #[arg(long, conflicts_with = "folder", required_unless_present = "folder")]
    data: Option<ReferenceData>,
    /// … or a folder of images.
    #[arg(long)]
    folder: Option<PathBuf>,
    /// Use only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Output .npz (mu, sigma, features); a JSON of the convention is written beside it.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    features: FeatureOptions,
}

pub fn fid_stats(args: FidStatsArgs, backend: BackendKind) -> Result<()> {
    let device = backend.device().map_err(anyhow::Error::msg)?;
    let fx = args.features.extractor(device)?;
    let t0 = Instant::now();
    let (set, source) = match (args.data, &args.folder) {
        (Some(d), _) => {
            let (cfg, shape) = d.config();
            let mut ds = cfg.build(shape, true)?;
            let n = args.limit.unwrap_or(ds.len()).min(ds.len());
            ds.images.truncate(n * ds.pixels_per_image());
            let (f, _) = extract(&fx, &ds.images, shape, &format!("{d:?}"));
            (SetFeatures::from_features(f), format!("{d:?}"))
        }
        (None, Some(folder)) => (
            load_set(folder, &fx, args.limit)?.0,
            folder.display().to_string(),
        ),
        (None, None) => unreachable!("clap requires one"),
    };
    write_reference(&args.out, &set, &source, &fx, &args.features.kid())?;
    println!(
        "{} images of {source} → {} ({:.0} s)",
        set.count,
        args.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_reference(
    out: &Path,
    set: &SetFeatures,
    source: &str,
    fx: &FeatureExtractor,
    kid: &KidConfig,
) -> Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    save_stats_npz_with_features(out, &set.mu, &set.sigma, set.features.as_deref())?;
    let note = json!({
        "source": source, "count": set.count,
        "convention": FidConvention::new(fx.provenance(), kid),
    });
    std::fs::write(
        out.with_extension("json"),
        serde_json::to_string_pretty(&note)?,
    )?;
    Ok(())
}

#[derive(Args)]
pub struct EvalArgs {
    /// Run directory (config.toml + ema.bpk).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Images to generate (EDM / score_sde convention: 50 000).
    #[arg(long, default_value_t = 50_000)]
    samples: usize,
    /// Sampler of the run's model (ancestral, ddim, or an MCMC kernel on energy models).
    #[arg(long, default_value = "ancestral")]
    sampler: SamplerKind,
    /// Reverse steps (respaced evenly; default: the run's [sample].steps, else all levels).
    #[arg(long)]
    steps: Option<usize>,
    /// First seed; shard k uses seed + k.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images per shard (one file each; finished shards are kept and skipped on re-runs).
    #[arg(long, default_value_t = 1000)]
    shard_size: usize,
    /// Reference statistics (.npz). Default: the run's [data] train split, computed once and
    /// cached in <checkpoint>/eval/reference-<limit|all>.npz.
    #[arg(long = "ref")]
    reference: Option<PathBuf>,
    /// Use only the first N reference images when computing the default reference.
    #[arg(long)]
    reference_limit: Option<usize>,
    /// Output directory (default <checkpoint>/eval/<sampler>-<steps>-n<samples>-seed<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    features: FeatureOptions,
}

pub fn eval(args: EvalArgs, backend: BackendKind) -> Result<()> {
    let device = backend.device().map_err(anyhow::Error::msg)?;
    let run = ebdiff_trainer::RunDir::open(&args.checkpoint)?.load(&device)?;
    let (model, full_schedule, cfg) = (run.model, run.schedule, run.config);
    let shape: [usize; 3] =
        cfg.model.data_shape.clone().try_into().map_err(|_| {
            anyhow::anyhow!("{}: FID needs an image model", args.checkpoint.display())
        })?;
    let fx = args.features.extractor(device.clone())?;
    let kid = args.features.kid();

    let reference_path = match &args.reference {
        Some(p) => p.clone(),
        None => {
            let limit = args.reference_limit.map_or("all".into(), |n| n.to_string());
            let path = args.checkpoint.join(format!("eval/reference-{limit}.npz"));
            if !path.is_file() {
                let ebdiff_trainer::data::DataConfig::Image(data) = &cfg.data else {
                    bail!("the run's [data] is not an image dataset; pass --ref");
                };
                let mut ds = data.build(shape, true)?;
                let n = args.reference_limit.unwrap_or(ds.len()).min(ds.len());
                ds.images.truncate(n * ds.pixels_per_image());
                let (f, _) = extract(&fx, &ds.images, shape, "reference (training data)");
                let source = format!("{} [data] of {}", n, args.checkpoint.display());
                write_reference(&path, &SetFeatures::from_features(f), &source, &fx, &kid)?;
            }
            path
        }
    };
    let reference = load_stats(&reference_path)?;

    let steps = args
        .steps
        .or(cfg.sample.steps)
        .unwrap_or(full_schedule.len())
        .min(full_schedule.len());
    let mut sampling = ebdiff_trainer::sampling_config(&cfg, args.shard_size.max(1), args.seed);
    sampling.sampler.kind = args.sampler;
    sampling.sampler.respace = Some(steps);
    let out = args.out.clone().unwrap_or_else(|| {
        args.checkpoint.join(
            format!(
                "eval/{}-{steps}-n{}-seed{}",
                args.sampler.name(),
                args.samples,
                args.seed
            )
            .to_lowercase(),
        )
    });
    std::fs::create_dir_all(&out)?;
    let classes = cfg.model.num_classes;
    let shards = args.samples.div_ceil(args.shard_size.max(1));
    let pb = bar(args.samples, "generating + features");
    let t0 = Instant::now();
    let mut generated_here = 0usize;
    let mut features = Vec::with_capacity(args.samples * FEATURE_DIM);
    for k in 0..shards {
        let start = k * args.shard_size;
        let n = args.shard_size.min(args.samples - start);
        let path = out.join(format!("shard-{k:05}.npz"));
        let shard_features = match read_npz(&path)
            .ok()
            .and_then(|a| a.get("features").cloned())
        {
            Some(f) if f.shape == [n, FEATURE_DIM] => f.data.iter().map(|&v| v as f32).collect(),
            _ => {
                sampling.seed = args.seed + k as u64;
                sampling.count = n;
                // Class-conditional models: labels cycle through the classes by global index.
                let target = ModelTarget {
                    model: &model,
                    schedule: &full_schedule,
                    labels: classes.map_or(Labels::None, |c| {
                        Labels::PerExample((start..start + n).map(|i| i % c).collect())
                    }),
                };
                let x =
                    ebdiff_sampler::sample(&sampling, &target, &full_schedule, &device, |_| {})?
                        .samples_vec();
                // To uint8 as if saved as PNG (EDM's convention), then to the network.
                let pixels: Vec<u8> = x.iter().map(|&v| model_pixel_to_u8(v)).collect();
                if k == 0 {
                    let per: usize = shape.iter().product();
                    let first = &x[..n.min(100) * per];
                    write_image_grid_png(&out.join("samples.png"), first, shape, 10)
                        .map_err(anyhow::Error::msg)?;
                }
                let f = fx.features_u8(&pixels, shape, &mut |_| {});
                save_features_npz(&path, &f, FEATURE_DIM)?;
                generated_here += n;
                f
            }
        };
        features.extend(shard_features);
        pb.set_position((start + n) as u64);
    }
    pb.finish_and_clear();
    let seconds = t0.elapsed().as_secs_f64();
    let evaluated = SetFeatures::from_features(features);
    let cmp = compare_sets(&reference, &evaluated, &kid)?;
    let result = json!({
        "checkpoint": args.checkpoint,
        "weights": "ema",
        "sampler": args.sampler.name(),
        "sampling": sampling.sampler,
        "steps": steps,
        "samples": args.samples,
        "seeds": format!("{}..{} (shard k of {} images uses seed {} + k)",
            args.seed, args.seed + shards as u64 - 1, args.shard_size, args.seed),
        "labels": classes.map(|c| format!("image i gets class i mod {c}")),
        "quantization": "uint8 ((x + 1) * 127.5, rounded)",
        "reference": reference_path, "reference_count": reference.count,
        "metrics": cmp,
        "generated_in_this_run": generated_here,
        "seconds_in_this_run": seconds,
        "convention": FidConvention::new(fx.provenance(), &kid),
    });
    let result_path = out.join("result.json");
    std::fs::write(&result_path, serde_json::to_string_pretty(&result)?)?;
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    println!(
        "FID {:.4} ({} generated vs {} reference); KID {}; precision {} recall {} → {}",
        cmp.fid,
        cmp.count_evaluated,
        cmp.count_reference,
        opt(cmp.kid_mean),
        opt(cmp.precision),
        opt(cmp.recall),
        result_path.display()
    );
    Ok(())
}
