//! `cargo xtask gradcheck`: the arguments of [`ebdiff_model::gradcheck::check_model`]. Exits
//! non-zero when a tolerance is exceeded, a check is vacuous, or a layer with parameters is not
//! reached by the layer visitor.

use anyhow::Result;
use clap::Args;
use ebdiff_core::{BackendKind, NamedDevice, Precision};
use ebdiff_model::gradcheck::{GradcheckOptions, check_model};
use std::path::PathBuf;

#[derive(Args)]
pub struct GradcheckArgs {
    /// Any config with a [model] table (default: the small UNet of configs/unet-small.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    checks: GradcheckOptions,
}

/// `dtype` is the global `--dtype`: f32, or f64 for tight finite differences.
pub fn run(args: GradcheckArgs, backend: BackendKind, dtype: Precision) -> Result<()> {
    let section = ebdiff_trainer::config::ModelSection::load(args.config.as_deref())?;
    let on = NamedDevice {
        backend,
        precision: dtype,
        device: crate::device(backend)?,
    };
    let timesteps = section.diffusion.timesteps();
    check_model(
        &section.model,
        timesteps,
        &args.checks,
        &on,
        &mut std::io::stdout(),
    )?;
    Ok(())
}
