//! `cargo xtask sample`: sample a run, or a composition of several, with any sampler.

use crate::progress::{level_bar, show_level};
use anyhow::Result;
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_sampler::{SamplerConfig, SamplerKind, SamplingConfig};
use ebdiff_sweep::output::{SampleFormat, prepare_dir, sample_shards_to_dir, write_samples_png};
use std::path::PathBuf;

#[derive(Args)]
pub struct SampleArgs {
    /// Run directory of the model to sample (holds config.toml and ema.safetensors); it is the model
    /// named "default" in compositions.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Output directory of `cargo xtask train-classifier`: the classifier named "default" in
    /// compositions (`{ op = "classifier", label = 3 }`).
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Sampler (overrides [sampler].kind): ancestral, ddim, ula, mala, uhmc, hmc.
    #[arg(long)]
    sampler: Option<SamplerKind>,
    /// Sampling TOML: sampler hyper-parameters, [models] and [composition].
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    count: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory (default: <checkpoint>/samples-<sampler>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overwrite an output directory that already holds samples.
    #[arg(long)]
    force: bool,
    /// Draw the samples in shards of this many, shard k with seed + k (each shard is its own
    /// batch, an SMC shard its own population). Default: one shard, or on N ranks
    /// ⌈count / N⌉ so that every rank draws one; the same value on 1 rank gives the same file.
    #[arg(long)]
    shard_size: Option<usize>,
}

pub fn run(args: SampleArgs, backend: BackendKind) -> Result<()> {
    let mut cfg: SamplingConfig = match &args.config {
        Some(p) => ebdiff_core::load_toml(p)?,
        None => SamplingConfig::new(
            SamplerConfig::new(args.sampler.unwrap_or(SamplerKind::Ancestral)),
            2000,
            0,
        ),
    };
    if let Some(k) = args.sampler {
        cfg.sampler.kind = k;
    }
    if let Some(n) = args.count {
        cfg.count = n;
    }
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    let out = args.out.clone().unwrap_or_else(|| {
        args.checkpoint
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs"))
            .join(format!("samples-{}", cfg.sampler.kind.name()))
    });
    let device = crate::device(backend)?;
    let group = crate::group();
    let root = group.is_root();
    let shard_size = args
        .shard_size
        .unwrap_or(cfg.count.div_ceil(group.size()).max(1));
    let components = ebdiff_trainer::load_components(
        &cfg,
        args.checkpoint.as_deref(),
        args.classifier.as_deref(),
        &device,
    )?;
    let target = components
        .build(&cfg.composition_spec())
        .map_err(anyhow::Error::msg)?;
    // Rank 0 checks and prepares the directory; every rank learns the outcome.
    let prepared = if root {
        prepare_dir(&out, args.force).and_then(|_| {
            std::fs::write(out.join("sampling.toml"), toml::to_string_pretty(&cfg)?)?;
            Ok(())
        })
    } else {
        Ok(())
    };
    if let Some((rank, message)) = ebdiff_core::collective::first_failure(
        group.as_ref(),
        prepared.as_ref().err().map(|e| format!("{e:#}")),
    ) {
        anyhow::bail!(
            "{}{message}",
            if rank > 0 {
                format!("rank {rank}: ")
            } else {
                String::new()
            }
        );
    }
    let bar = if root {
        level_bar(components.schedule.len())
    } else {
        indicatif::ProgressBar::hidden()
    };
    let written = sample_shards_to_dir(
        group.as_ref(),
        &cfg,
        shard_size,
        &components,
        &target,
        &device,
        &out,
        SampleFormat::F32,
        |p| show_level(&bar, p),
    )?;
    bar.finish();
    let Some(written) = written else {
        return Ok(());
    };
    write_samples_png(
        &out.join("samples.png"),
        &written.samples,
        written.count,
        &components.data_shape,
        None,
        512,
        100,
    )?;
    println!(
        "{} samples in {:.1} s → {}",
        written.count,
        written.seconds,
        out.display()
    );
    Ok(())
}
