//! `cargo xtask train`: train into a run directory (checkpoints, metrics, snapshots), resumable
//! with `--resume`, stopped cleanly by Ctrl-C; 2-D runs are then scored against the exact target.

use anyhow::{Context, Result};
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_eval::{LogDensityReport, ScatterSeries, write_scatter_png};
use ebdiff_trainer::{
    ExperimentConfig, RunOptions, StepReport, TrainState, evaluate_toy2d, toy2d_source, train_run,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

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
}

pub fn run(args: TrainArgs, backend: BackendKind) -> Result<()> {
    let cfg = ExperimentConfig::load(&args.config)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.run.name));
    let report = train_to_dir(&cfg, &out, backend, args.resume)?;
    if let Some(report) = report {
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
    Ok(())
}

/// Ctrl-C sets the returned flag (the loop then checkpoints and stops); a second Ctrl-C exits.
pub fn stop_on_ctrl_c() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

fn progress_bar(total: u64, done: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap(),
    );
    bar.set_position(done);
    bar.reset_eta();
    bar
}

/// Trains `cfg` into the run directory `out`; for 2-D data also samples the EMA model and
/// scores it (samples.png, summary.json, and `ema.bpk`/`model.bpk` copies at the top level for
/// `cargo xtask sample`). Returns the 2-D score.
pub fn train_to_dir(
    cfg: &ExperimentConfig,
    out: &Path,
    backend: BackendKind,
    resume: bool,
) -> Result<Option<LogDensityReport>> {
    let device = backend.device().map_err(anyhow::Error::msg)?;
    tracing::info!(run = %cfg.run.name, backend = %backend, out = %out.display(), "training");
    let stop = stop_on_ctrl_c()?;
    let bar = progress_bar(cfg.train.steps as u64, 0);
    let log_every = cfg.train.log_every.max(1) as u64;
    let batch = cfg.train.batch_size as f64;
    let mut window = (0.0, 0usize);
    let mut started: Option<(u64, f64)> = None;
    let on_step = |r: &StepReport| {
        let s0 = *started.get_or_insert((r.step - 1, 0.0));
        window = (window.0 + r.loss, window.1 + 1);
        if r.step % log_every == 0 {
            let rate = (r.step - s0.0) as f64 * batch / (r.seconds - s0.1).max(1e-9);
            bar.set_message(format!(
                "loss {:.4}  lr {:.1e}  |g| {:.2}  {rate:.0} ex/s",
                window.0 / window.1 as f64,
                r.lr,
                r.grad_norm
            ));
            window = (0.0, 0);
        }
        bar.set_position(r.step);
    };
    let source = toy2d_source(cfg);
    let snapshot = |state: &TrainState| {
        let n = cfg.sample.grid.max(256).min(cfg.sample.count);
        let samples =
            ebdiff_trainer::draw_samples(cfg, &state.ema.model, n, None, cfg.run.seed, &device);
        let path = out
            .join("samples")
            .join(format!("step-{:08}.png", state.step));
        if let Err(e) = write_scatter_png(
            &path,
            &[ScatterSeries {
                points: &samples,
                color: [200, 40, 40],
            }],
            1.0,
            384,
        ) {
            tracing::warn!("{e}");
        }
    };
    let opts = RunOptions {
        out: out.to_path_buf(),
        resume,
        stop,
    };
    let outcome = train_run(cfg, &source, &device, &opts, on_step, snapshot)?;
    bar.finish();
    if outcome.interrupted {
        println!(
            "stopped at step {}; checkpoint {}. Continue with --resume.",
            outcome.state.step,
            outcome.checkpoint.display()
        );
        return Ok(None);
    }
    let eval = evaluate_toy2d(cfg, &outcome.state.ema.model, &device);
    write_scatter_png(
        &out.join("samples.png"),
        &[
            ScatterSeries {
                points: &eval.exact,
                color: [190, 190, 190],
            },
            ScatterSeries {
                points: &eval.samples,
                color: [200, 40, 40],
            },
        ],
        1.0,
        512,
    )
    .map_err(anyhow::Error::msg)?;
    // Top-level weight files: what `cargo xtask sample --checkpoint RUN` loads.
    for name in ["ema.bpk", "model.bpk"] {
        std::fs::copy(outcome.checkpoint.join(name), out.join(name))
            .with_context(|| format!("copying {name} to {}", out.display()))?;
    }
    let summary = serde_json::json!({
        "samples": eval.samples.len() / 2,
        "mean_log_density_model": eval.report.model,
        "mean_log_density_exact": eval.report.exact,
        "gap_nats": eval.report.gap(),
        "final_loss": outcome.losses.last(),
        "steps": outcome.state.step,
        "checkpoint": outcome.checkpoint,
        "sampler": format!("ancestral ({:?} variance), EMA weights", cfg.sample.variance),
    });
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    Ok(Some(eval.report))
}
