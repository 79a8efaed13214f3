//! FID commands over the eval crate's pipelines ([`ebdiff_eval::pipeline`]):
//! - `cargo xtask fid A B`: FID (and KID, precision/recall) between two image folders or `.npz`
//!   statistics files;
//! - `cargo xtask fid-stats --data cifar10-train`: reference statistics of a dataset or folder;
//! - `cargo xtask eval --checkpoint RUN`: generate with the EMA weights in resumable shards and
//!   compare with reference statistics.
//!
//! Here: arguments, the sampler closure, progress bars and printing. Every result JSON records
//! the convention (weights hash, resize, N, sampler, seeds).

use anyhow::{Result, bail};
use burn::tensor::Device;
use clap::{Args, ValueEnum};
use ebdiff_core::BackendKind;
use ebdiff_data::image::ImageDataConfig;
use ebdiff_eval::KidConfig;
use ebdiff_eval::fid::{DEFAULT_BATCH, FeatureExtractor};
use ebdiff_eval::inception::DEFAULT_WEIGHTS_DIR;
use ebdiff_eval::pipeline::{self, Progress, Reference, ShardPlan};
use ebdiff_sampler::{Labels, ModelTarget, SamplerKind};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct FeatureOptions {
    /// Folder of converted FID weights (`cargo xtask fetch inception`).
    #[arg(long, default_value = DEFAULT_WEIGHTS_DIR)]
    weights: PathBuf,
    /// Images per forward pass of the FID network.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// KID subsets and subset size (defaults: clean-fid's and torch-fidelity's).
    #[arg(long, default_value_t = KidConfig::default().subsets)]
    kid_subsets: usize,
    #[arg(long, default_value_t = KidConfig::default().subset_size)]
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
            ..KidConfig::default()
        }
    }
}

/// One progress bar per stage of a pipeline, replaced when the stage changes and cleared when
/// it completes.
#[derive(Default)]
struct Bars {
    current: Option<(String, ProgressBar)>,
    /// Ranks other than 0 draw nothing (rank 0's bar shows its own share).
    hidden: bool,
}

impl Bars {
    fn for_rank(group: &dyn ebdiff_core::Collective) -> Self {
        Bars {
            current: None,
            hidden: !group.is_root(),
        }
    }

    fn show(&mut self, p: Progress) {
        if self.hidden {
            return;
        }
        if self
            .current
            .as_ref()
            .is_none_or(|(stage, _)| stage != p.stage)
        {
            self.finish();
            let bar = ProgressBar::new(p.total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} images ({per_sec}, eta {eta})",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_message(p.stage.to_string());
            self.current = Some((p.stage.to_string(), bar));
        }
        let (_, bar) = self.current.as_ref().expect("set above");
        bar.set_position(p.done as u64);
        if p.done >= p.total {
            self.finish();
        }
    }

    fn finish(&mut self) {
        if let Some((_, bar)) = self.current.take() {
            bar.finish_and_clear();
        }
    }
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
    let kid = args.features.kid();
    let device = crate::device(backend)?;
    let fx = args.features.extractor(device)?;
    let mut bars = Bars::default();
    let record = pipeline::compare_paths(
        &args.reference,
        &args.evaluated,
        args.limit,
        &fx,
        &kid,
        &mut |p| bars.show(p),
    )?;
    let cmp = &record.metrics;
    println!("FID {:.9}", cmp.fid);
    if let Some(k) = cmp.kid_summary(&kid) {
        println!("KID {k}");
    }
    if let (Some(p), Some(r)) = (cmp.precision, cmp.recall) {
        println!("precision {p:.4}  recall {r:.4}");
    }
    let rates = record.files.as_ref().map(|f| f.images_per_second);
    for (path, rate) in [&args.reference, &args.evaluated]
        .into_iter()
        .zip(rates.unwrap_or_default())
    {
        if let Some(r) = rate {
            println!("{}: {r:.2} images/s", path.display());
        }
    }
    if let Some(out) = &args.out {
        pipeline::write_record(out, &record)?;
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
    let device = crate::device(backend)?;
    let group = crate::group();
    let fx = args.features.extractor(device)?;
    let t0 = Instant::now();
    let mut bars = Bars::for_rank(group.as_ref());
    // On several ranks each passes its part of the images; rank 0 gets them all and writes.
    let (set, source) = match (args.data, &args.folder) {
        (Some(d), _) => {
            let (cfg, shape) = d.config();
            let name = format!("{d:?}");
            let set = pipeline::dataset_set_on(
                group.as_ref(),
                &cfg,
                shape,
                args.limit,
                &fx,
                &name,
                &mut |p| bars.show(p),
            )?;
            (set, name)
        }
        (None, Some(folder)) => (
            pipeline::load_set_on(group.as_ref(), folder, &fx, args.limit, &mut |p| {
                bars.show(p)
            })?
            .0,
            folder.display().to_string(),
        ),
        (None, None) => bail!("pass --data DATASET or --folder DIR"),
    };
    let Some(set) = set else {
        return Ok(());
    };
    pipeline::write_reference(&args.out, &set, &source, &fx, &args.features.kid())?;
    println!(
        "{} images of {source} → {} ({:.0} s)",
        set.count,
        args.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Args)]
pub struct EvalArgs {
    /// Run directory (config.toml + ema.safetensors).
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
    let device = crate::device(backend)?;
    let group = crate::group();
    let run = ebdiff_trainer::RunDir::open(&args.checkpoint)?.load(&device)?;
    let (model, full_schedule, cfg) = (run.model, run.schedule, run.config);
    let shape: [usize; 3] =
        cfg.model.data_shape.clone().try_into().map_err(|_| {
            anyhow::anyhow!("{}: FID needs an image model", args.checkpoint.display())
        })?;
    let fx = args.features.extractor(device.clone())?;
    let kid = args.features.kid();

    let reference = match &args.reference {
        Some(p) => Reference::Stats(p.clone()),
        None => {
            let ebdiff_trainer::data::DataConfig::Image(data) = &cfg.data else {
                bail!("the run's [data] is not an image dataset; pass --ref");
            };
            let limit = args.reference_limit.map_or("all".into(), |n| n.to_string());
            Reference::Data {
                data,
                shape,
                limit: args.reference_limit,
                cache: args.checkpoint.join(format!("eval/reference-{limit}.npz")),
                owner: args.checkpoint.display().to_string(),
            }
        }
    };

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
    let classes = cfg.model.num_classes;
    let generator = json!({
        "checkpoint": args.checkpoint,
        "weights": "ema",
        "sampler": args.sampler.name(),
        "sampling": sampling.sampler,
        "steps": steps,
        "labels": classes.map(|c| format!("image i gets class i mod {c}")),
    });
    let serde_json::Value::Object(generator) = generator else {
        unreachable!("json! of an object literal")
    };
    let plan = ShardPlan {
        dir: out,
        samples: args.samples,
        shard_size: args.shard_size,
        seed: args.seed,
        shape,
    };
    let mut bars = Bars::for_rank(group.as_ref());
    // On several ranks rank r generates shards r, r + N, …; rank 0 compares and writes.
    let evaluated = pipeline::evaluate_generator_on(
        group.as_ref(),
        &plan,
        reference,
        &fx,
        &kid,
        generator,
        |_shard, start, count, seed| {
            sampling.seed = seed;
            sampling.count = count;
            // Class-conditional models: labels cycle through the classes by global index.
            let target = ModelTarget {
                model: &model,
                schedule: &full_schedule,
                labels: classes.map_or(Labels::None, |c| {
                    Labels::PerExample((start..start + count).map(|i| i % c).collect())
                }),
            };
            let run = ebdiff_sampler::sample(&sampling, &target, &full_schedule, &device, |_| {})
                .map_err(|e| e.to_string())?;
            Ok(run.samples_vec())
        },
        &mut |p| bars.show(p),
    )?;
    let Some((record, result_path)) = evaluated else {
        return Ok(());
    };
    let cmp = &record.metrics;
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
