//! `cargo xtask`: thin command-line layer over the ebdiff crates.

mod bench;
mod export;
mod fetch;
mod fid;
mod gradcheck;
mod progress;
mod report;
mod sample;
mod sweep;
mod train;
mod train_classifier;

use burn::tensor::Device;
use clap::{Parser, Subcommand};
use ebdiff_core::{BackendKind, Collective};
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "ebdiff: energy-parameterized diffusion models on Burn",
    version
)]
struct Cli {
    /// Compute backend: flex (CPU), wgpu, vulkan or cuda (GPU builds need `--features wgpu|vulkan|cuda`).
    #[arg(long, global = true, default_value = "flex")]
    backend: BackendKind,
    /// GPU index for this process (default: the local rank under mpirun/srun, so that each rank
    /// of a node takes its own GPU; else the default device). Ignored by flex.
    #[arg(long, global = true)]
    device_index: Option<usize>,
    /// Float type: f32; flex32 (f32 storage, f16 matmul/conv inputs: tensor cores on vulkan),
    /// f16 or bf16 (GPUs; the DSM loss and the EMA stay in f32) for train, sample and bench;
    /// f64 for gradcheck's tight finite differences.
    #[arg(long, global = true, default_value = "f32")]
    dtype: ebdiff_core::Precision,
    /// Kernel of the stride-1 convolutions' input VJP: the transposed convolution, or the same
    /// sums as a plain convolution with the flipped weight (the forward-conv kernels, which on
    /// GPUs have the tensor-core paths Burn's transposed convolution lacks). Same values.
    #[arg(long, global = true, value_enum, default_value_t = ConvVjp::Transposed)]
    conv_vjp: ConvVjp,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ConvVjp {
    Transposed,
    FlippedConv,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model from a TOML experiment file into a run directory (checkpoints, metrics,
    /// sample grids); `--resume` continues a run exactly.
    Train(train::TrainArgs),
    /// Train the noise-conditioned classifier of a config's `[classifier]` section (for
    /// classifier guidance).
    TrainClassifier(train_classifier::TrainClassifierArgs),
    /// Check every layer's explicit VJP against autodiff and the DSM parameter gradients
    /// against finite differences, for any model config.
    Gradcheck(gradcheck::GradcheckArgs),
    /// Download into datasets/ (checksummed): mnist, cifar10, inception (the FID network),
    /// foolbox-cifar10 (20 real CIFAR-10 test images).
    Fetch(fetch::FetchArgs),
    /// FID (and KID, precision/recall) between two image folders or .npz statistics files.
    Fid(ebdiff_eval::fid_commands::FidOptions),
    /// FID reference statistics (.npz with mu, sigma, features) of a dataset or image folder.
    FidStats(ebdiff_eval::fid_commands::FidStatsOptions),
    /// Generate images with a run's EMA weights (resumable shards) and compute FID, KID and
    /// precision/recall against reference statistics.
    Eval(ebdiff_trainer::fid_eval::FidEvalOptions),
    /// Sample a trained model or a composition of models with any sampler.
    Sample(sample::SampleArgs),
    /// Run a sampler sweep (grid/list over sampling-config keys), resumably, and its report.
    Sweep(sweep::SweepArgs),
    /// Export a run's EMA model (or a random one of a config) for other frameworks:
    /// config.toml, model.safetensors and probe.safetensors (E and ∇ₓE at fixed inputs).
    Export(export::ExportArgs),
    /// A run's HTML report: training curves, samples of every saved step, resumptions,
    /// evaluation results, config (RUN/report/index.html; also written when training ends).
    Report(report::ReportArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        which: bench::BenchCommand,
    },
}

/// The ranks this process computes with: set once in `main` (alone, or the MPI world).
static GROUP: Mutex<Option<Arc<dyn Collective>>> = Mutex::new(None);
static DEVICE_INDEX: OnceLock<Option<usize>> = OnceLock::new();
static DTYPE: OnceLock<ebdiff_core::Precision> = OnceLock::new();

/// This process's group (see `ebdiff_dist::init`).
pub fn group() -> Arc<dyn Collective> {
    GROUP
        .lock()
        .expect("not poisoned")
        .clone()
        .expect("set in main")
}

/// The float type of `--dtype`.
pub fn dtype() -> ebdiff_core::Precision {
    DTYPE.get().copied().unwrap_or_default()
}

/// The device of this process: `--device-index`, else the local rank under a launcher, with
/// its floats at `--dtype`.
pub fn device(backend: BackendKind) -> anyhow::Result<Device> {
    let index = *DEVICE_INDEX.get().expect("set in main");
    let dtype = dtype();
    backend
        .device_with(index, dtype)
        .map_err(anyhow::Error::msg)
}

/// [`device`] with the names reports print beside their numbers.
pub fn named_device(backend: BackendKind) -> anyhow::Result<ebdiff_core::NamedDevice> {
    Ok(ebdiff_core::NamedDevice {
        backend,
        precision: dtype(),
        device: device(backend)?,
    })
}

/// Commands whose device honours `--dtype`. The others compute in f32 on purpose: FID features
/// must stay comparable with the reference pipelines, exports and classifiers are f32
/// artefacts.
fn honours_dtype(c: &Command) -> bool {
    matches!(
        c,
        Command::Train(_)
            | Command::Sample(_)
            | Command::Gradcheck(_)
            | Command::Bench {
                which: bench::BenchCommand::TrainStep(_)
                    | bench::BenchCommand::Eval(_)
                    | bench::BenchCommand::DataParallel(_)
            }
    )
}

/// Commands that run on several ranks; the others refuse to, so that N copies never do the
/// same work into the same files.
fn runs_on_ranks(c: &Command) -> bool {
    matches!(
        c,
        Command::Train(_)
            | Command::Eval(_)
            | Command::FidStats(_)
            | Command::Sample(_)
            | Command::Sweep(_)
            | Command::Bench {
                which: bench::BenchCommand::DataParallel(_)
            }
    )
}

fn main() {
    ebdiff_core::backend::tune_cpu_allocator();
    let cli = Cli::parse();
    if cli.backend == BackendKind::Flex
        && let Some(n) = ebdiff_dist::launch::cpu_threads_per_rank()
    {
        // SAFETY: no other thread exists yet (MPI and the compute pool start below).
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
    let group = match ebdiff_dist::init() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    *GROUP.lock().expect("not poisoned") = Some(group.clone());
    let _ = DEVICE_INDEX.set(ebdiff_dist::launch::device_index(cli.device_index));
    let _ = DTYPE.set(cli.dtype);
    ebdiff_model::layers::conv::set_vjp_kernel(match cli.conv_vjp {
        ConvVjp::Transposed => ebdiff_model::layers::conv::ConvVjpKernel::Transposed,
        ConvVjp::FlippedConv => ebdiff_model::layers::conv::ConvVjpKernel::FlippedConv,
    });
    if cli.dtype != ebdiff_core::Precision::F32 && !honours_dtype(&cli.command) {
        eprintln!(
            "error: --dtype {} applies to train, sample, gradcheck and bench; this command \
             computes in f32 (FID features comparable with the reference pipelines, exports, \
             classifiers). To score low-precision samples, `sample --dtype {}` and then `fid` \
             the folder.",
            cli.dtype, cli.dtype
        );
        std::process::exit(2);
    }
    // The dashboard owns the terminal; log lines would be drawn over it (train.log keeps the
    // run's events either way).
    let quiet_logs = matches!(&cli.command, Command::Train(a) if a.dashboard);
    // Rank 0 speaks for the job; the others report warnings and errors only.
    let level = if group.is_root() { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(move || -> Box<dyn std::io::Write> {
            if quiet_logs {
                Box::new(std::io::sink())
            } else {
                Box::new(std::io::stderr())
            }
        })
        .init();
    if group.size() > 1 && !runs_on_ranks(&cli.command) {
        if group.is_root() {
            eprintln!(
                "error: this command runs on one process; launch it without mpirun/srun (on \
                 several ranks: train, eval, fid-stats, sample, sweep, bench data-parallel)"
            );
        }
        std::process::exit(2);
    }
    let result = match cli.command {
        Command::Train(args) => train::run(args, cli.backend),
        Command::Fetch(args) => fetch::run(args),
        Command::Fid(args) => fid::fid(args, cli.backend),
        Command::FidStats(args) => fid::fid_stats(args, cli.backend),
        Command::Eval(args) => fid::eval(args, cli.backend),
        Command::TrainClassifier(args) => train_classifier::run(args, cli.backend),
        Command::Gradcheck(args) => gradcheck::run(args, cli.backend, cli.dtype),
        Command::Sample(args) => sample::run(args, cli.backend),
        Command::Sweep(args) => sweep::run(args, cli.backend),
        Command::Export(args) => export::run(args, cli.backend),
        Command::Report(args) => report::run(args),
        Command::Bench { which } => bench::run(which, cli.backend),
    };
    if let Err(err) = result {
        if group.size() > 1 {
            eprintln!("error (rank {}): {err:#}", group.rank());
        } else {
            eprintln!("error: {err:#}");
        }
        // Without MPI_Finalize: the launcher then ends the other ranks with this exit code.
        std::process::exit(1);
    }
    // The last reference: dropping it finalizes MPI (a rank that exits without finalizing is
    // reported as failed by the launcher).
    GROUP.lock().expect("not poisoned").take();
    drop(group);
}
