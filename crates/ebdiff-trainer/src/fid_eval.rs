//! `cargo xtask eval` as a library call: FID, KID and precision/recall of images sampled from a
//! run's EMA weights in resumable shards ([`ebdiff_eval::pipeline::evaluate_generator_on`]),
//! against reference statistics, by default those of the run's own training data.

use crate::data::DataConfig;
use crate::experiment::sampling_config;
use crate::run_dir::RunDir;
use anyhow::{Result, anyhow, bail};
use burn::tensor::Device;
use ebdiff_core::Collective;
use ebdiff_eval::fid::FidRecord;
use ebdiff_eval::fid_commands::FeatureOptions;
use ebdiff_eval::pipeline::{self, OnProgress, Reference, ShardPlan};
use ebdiff_sampler::{Labels, ModelTarget, SamplerKind};
use serde_json::json;
use std::fmt;
use std::path::PathBuf;

/// What `cargo xtask eval` generates and compares.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct FidEvalOptions {
    /// Run directory (config.toml + ema.safetensors).
    #[cfg_attr(feature = "clap", arg(long))]
    pub checkpoint: PathBuf,
    /// Images to generate (EDM / score_sde convention: 50 000).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = FidEvalOptions::new("").samples))]
    pub samples: usize,
    /// Sampler of the run's model (ancestral, ddim, or an MCMC kernel on energy models).
    #[cfg_attr(feature = "clap", arg(long, default_value = "ancestral"))]
    pub sampler: SamplerKind,
    /// Reverse steps (respaced evenly; default: the run's [sample].steps, else all levels).
    #[cfg_attr(feature = "clap", arg(long))]
    pub steps: Option<usize>,
    /// First seed; shard k uses seed + k.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// Images per shard (one file each; finished shards are kept and skipped on re-runs).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = FidEvalOptions::new("").shard_size))]
    pub shard_size: usize,
    /// Reference statistics (.npz). Default: the run's [data] train split, computed once and
    /// cached in <checkpoint>/eval/reference-<limit|all>.npz.
    #[cfg_attr(feature = "clap", arg(long = "ref"))]
    pub reference: Option<PathBuf>,
    /// Use only the first N reference images when computing the default reference.
    #[cfg_attr(feature = "clap", arg(long))]
    pub reference_limit: Option<usize>,
    /// Output directory (default <checkpoint>/eval/<sampler>-<steps>-n<samples>-seed<seed>).
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    #[cfg_attr(feature = "clap", command(flatten))]
    pub features: FeatureOptions,
}

impl FidEvalOptions {
    /// 50 000 ancestral samples from seed 0 in shards of 1000, against the run's training data.
    pub fn new(checkpoint: impl Into<PathBuf>) -> Self {
        FidEvalOptions {
            checkpoint: checkpoint.into(),
            samples: 50_000,
            sampler: SamplerKind::Ancestral,
            steps: None,
            seed: 0,
            shard_size: 1000,
            reference: None,
            reference_limit: None,
            out: None,
            features: FeatureOptions::default(),
        }
    }
}

/// The comparison as written to `result.json`, displayed as `cargo xtask eval` prints it.
#[derive(Debug, Clone)]
pub struct FidEvalReport {
    pub record: FidRecord,
    /// `<out>/result.json`.
    pub result: PathBuf,
}

impl fmt::Display for FidEvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmp = &self.record.metrics;
        let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
        writeln!(
            f,
            "FID {:.4} ({} generated vs {} reference); KID {}; precision {} recall {} → {}",
            cmp.fid,
            cmp.count_evaluated,
            cmp.count_reference,
            opt(cmp.kid_mean),
            opt(cmp.precision),
            opt(cmp.recall),
            self.result.display()
        )
    }
}

/// `cargo xtask eval`: samples `opts.samples` images from the run's EMA weights in shards of
/// `opts.shard_size` (shard k with seed + k; class-conditional models get class i mod C for
/// image i), on every rank of `group` (rank r generates shards r, r + N, …), and compares them
/// with the reference. Finished shards are kept, so an interrupted evaluation resumes. Rank 0
/// writes `result.json` and returns the report; the other ranks return `None`.
///
/// ```no_run
/// use ebdiff_trainer::fid_eval::{FidEvalOptions, evaluate_run};
///
/// let mut opts = FidEvalOptions::new("runs/cifar10");
/// opts.samples = 10_000;
/// let solo = ebdiff_core::Solo;
/// let report = evaluate_run(&opts, &burn::tensor::Device::flex(), &solo, &mut |_| {})?;
/// print!("{}", report.expect("one process is rank 0"));
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn evaluate_run(
    opts: &FidEvalOptions,
    device: &Device,
    group: &dyn Collective,
    progress: OnProgress,
) -> Result<Option<FidEvalReport>> {
    let run = RunDir::open(&opts.checkpoint)?.load(device)?;
    let (model, full_schedule, cfg) = (run.model, run.schedule, run.config);
    let shape: [usize; 3] = cfg
        .model
        .data_shape
        .clone()
        .try_into()
        .map_err(|_| anyhow!("{}: FID needs an image model", opts.checkpoint.display()))?;
    let fx = opts.features.extractor(device.clone())?;
    let kid = opts.features.kid();

    let reference = match &opts.reference {
        Some(p) => Reference::Stats(p.clone()),
        None => {
            let DataConfig::Image(data) = &cfg.data else {
                bail!("the run's [data] is not an image dataset; pass --ref");
            };
            let limit = opts.reference_limit.map_or("all".into(), |n| n.to_string());
            Reference::Data {
                data,
                shape,
                limit: opts.reference_limit,
                cache: opts.checkpoint.join(format!("eval/reference-{limit}.npz")),
                owner: opts.checkpoint.display().to_string(),
            }
        }
    };

    let steps = opts
        .steps
        .or(cfg.sample.steps)
        .unwrap_or(full_schedule.len())
        .min(full_schedule.len());
    let mut sampling = sampling_config(&cfg, opts.shard_size.max(1), opts.seed);
    sampling.sampler.kind = opts.sampler;
    sampling.sampler.respace = Some(steps);
    let out = opts.out.clone().unwrap_or_else(|| {
        opts.checkpoint.join(
            format!(
                "eval/{}-{steps}-n{}-seed{}",
                opts.sampler.name(),
                opts.samples,
                opts.seed
            )
            .to_lowercase(),
        )
    });
    let classes = cfg.model.num_classes;
    let generator = json!({
        "checkpoint": opts.checkpoint,
        "weights": "ema",
        "sampler": opts.sampler.name(),
        "sampling": sampling.sampler,
        "steps": steps,
        "labels": classes.map(|c| format!("image i gets class i mod {c}")),
    });
    let serde_json::Value::Object(generator) = generator else {
        unreachable!("json! of an object literal")
    };
    let plan = ShardPlan {
        dir: out,
        samples: opts.samples,
        shard_size: opts.shard_size,
        seed: opts.seed,
        shape,
    };
    let evaluated = pipeline::evaluate_generator_on(
        group,
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
            let run = ebdiff_sampler::sample(&sampling, &target, &full_schedule, device, |_| {})
                .map_err(|e| e.to_string())?;
            Ok(run.samples_vec())
        },
        progress,
    )?;
    Ok(evaluated.map(|(record, result)| FidEvalReport { record, result }))
}
