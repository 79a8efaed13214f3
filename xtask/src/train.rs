//! `cargo xtask train`: train into a run directory (checkpoints, metrics, snapshots), resumable
//! with `--resume`, stopped cleanly by Ctrl-C; 2-D runs are then scored against the exact target.

use crate::progress::{bar, stop_on_ctrl_c};
use anyhow::{Result, bail};
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_trainer::dashboard::Dashboard;
use ebdiff_trainer::{ExperimentConfig, RunOptions, StepReport, train_to_dir};
use indicatif::ProgressBar;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    /// Experiment TOML (see configs/).
    #[arg(long)]
    config: PathBuf,
    /// Run directory (default: runs/<run.name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from the newest checkpoint in the run directory.
    #[arg(long)]
    resume: bool,
    /// Start from these weights (safetensors named by module path, e.g. written by
    /// scripts/torch/) instead of a random initialization; sets `train.init_from`.
    #[arg(long, value_name = "MODEL.safetensors")]
    init_from: Option<PathBuf>,
    /// burn-train's terminal dashboard (live plots, progress, ETA; `q` or Ctrl-C stops with a
    /// checkpoint) instead of the progress bar; its metric files go to RUN/burn-train/.
    #[arg(long, conflicts_with = "quiet")]
    pub dashboard: bool,
    /// No progress display (scripts, CI); the summary lines are still printed.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: TrainArgs, backend: BackendKind) -> Result<()> {
    let mut cfg = ExperimentConfig::load(&args.config)?;
    if let Some(path) = args.init_from {
        cfg.train.init_from = Some(path);
    }
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.run.name));
    let device = crate::device(backend)?;
    let group = crate::group();
    tracing::info!(run = %cfg.run.name, backend = %backend, out = %out.display(), ranks = %group.describe(), "training");
    let stop = stop_on_ctrl_c()?;
    let opts = RunOptions {
        out: out.clone(),
        resume: args.resume,
        stop: stop.clone(),
        group: group.clone(),
    };
    if !group.is_root() {
        // Rank 0 shows progress and writes the run; the others only compute.
        train_to_dir(&cfg, &device, &opts, |_| {})?;
        return Ok(());
    }
    let trained = if args.dashboard {
        if !std::io::stdout().is_terminal() {
            bail!(
                "--dashboard needs a terminal, and stdout is not one: use the default progress bar, or --quiet"
            );
        }
        let mut dashboard = Dashboard::open(&out, cfg.train.steps, cfg.train.batch_size, stop);
        let trained = train_to_dir(&cfg, &device, &opts, |r| dashboard.step(r));
        dashboard.close();
        trained?
    } else if args.quiet {
        train_to_dir(&cfg, &device, &opts, |_| {})?
    } else {
        let bar = step_bar(&cfg);
        let trained = train_to_dir(&cfg, &device, &opts, step_reporter(&cfg, &bar))?;
        bar.finish();
        trained
    };
    if trained.outcome.interrupted {
        if let Err(e) = ebdiff_trainer::report::write_run_report(&out) {
            tracing::warn!("run report not written: {e:#}");
        }
        println!(
            "stopped at step {}; checkpoint {}. Continue with --resume.",
            trained.outcome.state.step,
            trained.outcome.checkpoint.display()
        );
        return Ok(());
    }
    match trained.toy2d {
        Some(report) => {
            println!(
                "mean log-density under the target: model {:.4}, exact samples {:.4}, gap {:.4} nats",
                report.model,
                report.exact,
                report.gap()
            );
            println!(
                "samples: {}   (grey: exact, red: model)",
                out.join("samples.png").display()
            );
        }
        None => println!("samples: {}", out.join("samples.png").display()),
    }
    Ok(())
}

/// A bar over the run's steps.
pub fn step_bar(cfg: &ExperimentConfig) -> ProgressBar {
    bar(
        cfg.train.steps,
        "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
    )
}

/// Shows loss, lr, gradient norm and examples/s (averaged over `train.log_every` steps) on `bar`.
pub fn step_reporter<'a>(
    cfg: &ExperimentConfig,
    bar: &'a ProgressBar,
) -> impl FnMut(&StepReport) + 'a {
    let log_every = cfg.train.log_every.max(1) as u64;
    let batch = cfg.train.batch_size as f64;
    let mut window = (0.0, 0usize);
    let mut started: Option<(u64, f64)> = None;
    move |r: &StepReport| {
        let s0 = *started.get_or_insert_with(|| {
            // A resumed run starts mid-way: the ETA counts from here, not from step 0.
            bar.set_position(r.step - 1);
            bar.reset_eta();
            (r.step - 1, 0.0)
        });
        window = (window.0 + r.loss, window.1 + 1);
        if r.step.is_multiple_of(log_every) || r.step == s0.0 + 1 {
            let rate = (r.step - s0.0) as f64 * batch / (r.seconds - s0.1).max(1e-9);
            bar.set_message(format!(
                "loss {:.4}  lr {:.1e}  |g| {:.2}  {rate:.1} ex/s",
                window.0 / window.1 as f64,
                r.lr,
                r.grad_norm
            ));
            window = (0.0, 0);
        }
        bar.set_position(r.step);
    }
}
