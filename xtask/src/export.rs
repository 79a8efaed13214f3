//! `cargo xtask export`: a run's EMA model (or a random one of any config) for other frameworks:
//! config.toml, model.safetensors and probe.safetensors (E and ∇ₓE at fixed inputs), the files
//! `scripts/torch/compare.py` checks the PyTorch twin against.

use anyhow::{Context, Result, bail};
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_core::rng::stream;
use ebdiff_trainer::{ExperimentConfig, RunDir};
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// Run directory to export (its EMA weights; `.bpk` runs are converted).
    run: Option<PathBuf>,
    /// Instead of a run: a model of this experiment config with random weights (every
    /// parameter perturbed, so zero-initialized layers take part), for checking a
    /// re-implementation of any architecture without training.
    #[arg(long, conflicts_with = "run")]
    config: Option<PathBuf>,
    /// Seed of the random weights (with --config).
    #[arg(long, default_value_t = 0)]
    init_seed: u64,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Probe inputs.
    #[arg(long, default_value_t = 16)]
    count: usize,
    /// Seed of the probe inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: ExportArgs, backend: BackendKind) -> Result<()> {
    let device = backend.device().map_err(anyhow::Error::msg)?;
    let (cfg, model) = match (&args.run, &args.config) {
        (Some(run), None) => {
            let loaded = RunDir::open(run)?.load(&device)?;
            (loaded.config, loaded.model)
        }
        (None, Some(config)) => {
            let cfg = ExperimentConfig::load(config)?;
            let t = cfg.diffusion.build().len();
            let model =
                ebdiff_model::seeded_init(&device, args.init_seed, || cfg.model.init(t, &device));
            let mut rng = stream(args.init_seed, "export-perturb");
            let model = ebdiff_model::gradcheck::perturb_parameters(model, 0.05, &mut rng);
            (cfg, model)
        }
        _ => bail!("give a run directory, or --config CFG for a randomly initialized model"),
    };
    ebdiff_trainer::export::export_model(&cfg, &model, &args.out, args.count, args.seed, &device)
        .with_context(|| format!("exporting to {}", args.out.display()))?;
    println!(
        "wrote {}/{{config.toml, model.safetensors, probe.safetensors}}",
        args.out.display()
    );
    Ok(())
}
