//! `cargo xtask sample`: sample a run, or a composition of several, with any sampler.

use crate::progress::{level_bar, show_level};
use anyhow::Result;
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_sampler::{SamplerConfig, SamplerKind, SamplingConfig};
use ebdiff_sweep::output::{prepare_dir, sample_to_dir, write_samples_png};
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
    let device = backend.device().map_err(anyhow::Error::msg)?;
    let components = ebdiff_trainer::load_components(
        &cfg,
        args.checkpoint.as_deref(),
        args.classifier.as_deref(),
        &device,
    )?;
    let target = components
        .build(&cfg.composition_spec())
        .map_err(anyhow::Error::msg)?;
    prepare_dir(&out, args.force)?;
    std::fs::write(out.join("sampling.toml"), toml::to_string_pretty(&cfg)?)?;
    let bar = level_bar(components.schedule.len());
    let written = sample_to_dir(&cfg, &components, &target, &device, &out, |p| {
        show_level(&bar, p)
    })?;
    bar.finish();
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
