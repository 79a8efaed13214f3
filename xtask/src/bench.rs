//! `cargo xtask bench`: the options of the [`ebdiff_bench`] benchmarks.

use anyhow::Result;
use clap::Subcommand;
use ebdiff_bench::profile::{ProfileChild, ProfileStepsOptions, profile_steps};
use ebdiff_bench::{DataParallelOptions, EvalOptions, FidFeaturesOptions, TrainStepOptions};
use ebdiff_core::BackendKind;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time one DSM optimizer step (forward, VJP for energies, backward, Adam).
    TrainStep(TrainStepOptions),
    /// Time one sampling-time evaluation, energy and ∇ₓE (no autodiff), per batch size.
    Eval(EvalOptions),
    /// Time a data-parallel training step and its gradient all-reduce (alone or under
    /// `mpirun -np N`), and the bare MPI all-reduce by size.
    DataParallel(DataParallelOptions),
    /// Images/s of the FID network (Inception-v3 features), ours and PyTorch's reference.
    FidFeatures(FidFeaturesOptions),
    /// The child that `train-step --profile` samples.
    #[command(hide = true)]
    ProfileSteps(ProfileStepsOptions),
}

pub fn run(cmd: BenchCommand, backend: BackendKind) -> Result<()> {
    let out = &mut std::io::stdout();
    match cmd {
        BenchCommand::TrainStep(mut opts) => {
            // --profile records this binary running `bench profile-steps`.
            opts.profile_child = Some(ProfileChild {
                program: std::env::current_exe()?,
                args: ["--backend", "flex", "bench", "profile-steps"]
                    .map(String::from)
                    .to_vec(),
            });
            ebdiff_bench::train_step(&opts, &crate::named_device(backend)?, out)?;
        }
        BenchCommand::Eval(opts) => {
            ebdiff_bench::eval(&opts, &crate::named_device(backend)?, out)?;
        }
        BenchCommand::DataParallel(opts) => {
            let group = crate::group();
            ebdiff_bench::data_parallel(
                &opts,
                &crate::named_device(backend)?,
                group.as_ref(),
                out,
            )?;
        }
        BenchCommand::FidFeatures(opts) => {
            ebdiff_bench::fid_features(&opts, &crate::named_device(backend)?, out)?;
        }
        BenchCommand::ProfileSteps(opts) => {
            profile_steps(&opts, &backend.device().map_err(anyhow::Error::msg)?)?;
        }
    }
    Ok(())
}
