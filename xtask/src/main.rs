//! `cargo xtask`: thin command-line layer over the ebdiff crates.

mod bench;
mod dashboard;
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

use clap::{Parser, Subcommand};
use ebdiff_core::BackendKind;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "ebdiff: energy-parameterized diffusion models on Burn",
    version
)]
struct Cli {
    /// Compute backend: flex (CPU), wgpu or cuda (GPU builds need `--features wgpu|cuda`).
    #[arg(long, global = true, default_value = "flex")]
    backend: BackendKind,
    #[command(subcommand)]
    command: Command,
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
    Fid(fid::FidArgs),
    /// FID reference statistics (.npz with mu, sigma, features) of a dataset or image folder.
    FidStats(fid::FidStatsArgs),
    /// Generate images with a run's EMA weights (resumable shards) and compute FID, KID and
    /// precision/recall against reference statistics.
    Eval(fid::EvalArgs),
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

fn main() {
    let cli = Cli::parse();
    // The dashboard owns the terminal; log lines would be drawn over it (train.log keeps the
    // run's events either way).
    let quiet_logs = matches!(&cli.command, Command::Train(a) if a.dashboard);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(move || -> Box<dyn std::io::Write> {
            if quiet_logs {
                Box::new(std::io::sink())
            } else {
                Box::new(std::io::stderr())
            }
        })
        .init();
    let result = match cli.command {
        Command::Train(args) => train::run(args, cli.backend),
        Command::Fetch(args) => fetch::run(args),
        Command::Fid(args) => fid::fid(args, cli.backend),
        Command::FidStats(args) => fid::fid_stats(args, cli.backend),
        Command::Eval(args) => fid::eval(args, cli.backend),
        Command::TrainClassifier(args) => train_classifier::run(args, cli.backend),
        Command::Gradcheck(args) => gradcheck::run(args, cli.backend),
        Command::Sample(args) => sample::run(args, cli.backend),
        Command::Sweep(args) => sweep::run(args, cli.backend),
        Command::Export(args) => export::run(args, cli.backend),
        Command::Report(args) => report::run(args),
        Command::Bench { which } => bench::run(which, cli.backend),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
