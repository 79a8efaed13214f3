//! `cargo xtask train`: train into a run directory (checkpoints, metrics, snapshots), resumable
//! with `--resume`, stopped cleanly by Ctrl-C; 2-D runs are then scored against the exact target.

use anyhow::{Context, Result};
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_eval::{LogDensityReport, ScatterSeries, write_image_grid_png, write_scatter_png};
use ebdiff_trainer::config::DataConfig;
use ebdiff_trainer::data::ImageSource;
use ebdiff_trainer::{
    BatchSource, ExperimentConfig, RunOptions, RunOutcome, StepReport, TrainState, draw_samples,
    evaluate_toy2d, toy2d_source, train_run,
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

/// Trains `cfg` into the run directory `out`. 2-D runs are then sampled and scored against the
/// exact target (samples.png, summary.json); image runs end with a sample grid (samples.png).
/// `ema.bpk`/`model.bpk` are copied to the top level for `cargo xtask sample`. Returns the 2-D
/// score.
pub fn train_to_dir(
    cfg: &ExperimentConfig,
    out: &Path,
    backend: BackendKind,
    resume: bool,
) -> Result<Option<LogDensityReport>> {
    let device = backend.device().map_err(anyhow::Error::msg)?;
    tracing::info!(run = %cfg.run.name, backend = %backend, out = %out.display(), "training");
    let opts = RunOptions {
        out: out.to_path_buf(),
        resume,
        stop: stop_on_ctrl_c()?,
    };
    match &cfg.data {
        DataConfig::Toy2d(_) => {
            let snapshot = |state: &TrainState| {
                let n = cfg.sample.grid.max(256).min(cfg.sample.count);
                let samples = draw_samples(cfg, &state.ema.model, n, None, cfg.run.seed, &device);
                let path = out
                    .join("samples")
                    .join(format!("step-{:08}.png", state.step));
                let series = [ScatterSeries {
                    points: &samples,
                    color: [200, 40, 40],
                }];
                if let Err(e) = write_scatter_png(&path, &series, 1.0, 384) {
                    tracing::warn!("{e}");
                }
            };
            let Some(outcome) =
                run_with_progress(cfg, &toy2d_source(cfg), &device, &opts, snapshot)?
            else {
                return Ok(None);
            };
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
            finish(
                cfg,
                out,
                &outcome,
                serde_json::json!({
                    "samples": eval.samples.len() / 2,
                    "mean_log_density_model": eval.report.model,
                    "mean_log_density_exact": eval.report.exact,
                    "gap_nats": eval.report.gap(),
                    "sampler": format!("ancestral ({:?} variance), EMA weights", cfg.sample.variance),
                }),
            )?;
            Ok(Some(eval.report))
        }
        DataConfig::Image(data) => {
            let shape: [usize; 3] = cfg.model.data_shape.clone().try_into().expect("validated");
            let dataset = data.build(shape, true)?;
            if let Some(k) = cfg.model.num_classes
                && k != dataset.num_classes
            {
                anyhow::bail!(
                    "model.num_classes = {k}, but the [data] set has {} classes: set \
                     model.num_classes = {} (or remove it for an unconditional model)",
                    dataset.num_classes,
                    dataset.num_classes
                );
            }
            println!(
                "data: {} images of {:?}, {} classes",
                dataset.len(),
                dataset.shape(),
                dataset.num_classes
            );
            let conditional = cfg.model.num_classes.is_some();
            let source = ImageSource::new(
                Arc::new(dataset),
                data,
                cfg.train.batch_size,
                cfg.run.seed,
                conditional,
            )?;
            let snapshot = |state: &TrainState| {
                let path = out
                    .join("samples")
                    .join(format!("step-{:08}.png", state.step));
                if let Err(e) = write_grid(cfg, &state.ema.model, &path, &device) {
                    tracing::warn!("{e}");
                }
            };
            let Some(outcome) = run_with_progress(cfg, &source, &device, &opts, snapshot)? else {
                return Ok(None);
            };
            let grid = out
                .join("samples")
                .join(format!("step-{:08}.png", outcome.state.step));
            std::fs::copy(&grid, out.join("samples.png"))
                .with_context(|| format!("copying {}", grid.display()))?;
            finish(
                cfg,
                out,
                &outcome,
                serde_json::json!({
                    "grid": grid,
                    "sampler": format!(
                        "ancestral ({:?} variance, {} levels), EMA weights",
                        cfg.sample.variance,
                        cfg.sample.steps.unwrap_or(cfg.diffusion.timesteps())
                    ),
                }),
            )?;
            println!("samples: {}", out.join("samples.png").display());
            Ok(None)
        }
    }
}

/// A grid of `sample.grid` EMA samples with fixed seeds; class-conditional models get class
/// `i mod num_classes` for image i, so each column of a 10-wide grid is one class.
fn write_grid(
    cfg: &ExperimentConfig,
    model: &ebdiff_model::DiffusionModel,
    path: &Path,
    device: &burn::tensor::Device,
) -> Result<()> {
    let n = cfg.sample.grid;
    let labels = cfg
        .model
        .num_classes
        .map(|k| (0..n).map(|i| (i % k) as u32).collect());
    let cols = match cfg.model.num_classes {
        Some(k) => k,
        None => (n as f64).sqrt().ceil() as usize,
    };
    let x = draw_samples(cfg, model, n, labels, cfg.run.seed, device);
    let shape: [usize; 3] = cfg.model.data_shape.clone().try_into().expect("validated");
    write_image_grid_png(path, &x, shape, cols).map_err(anyhow::Error::msg)
}

/// `train_run` with a progress bar (step, loss, lr, gradient norm, examples/s, ETA). Returns
/// `None` when stopped by Ctrl-C (after telling the user how to continue).
fn run_with_progress(
    cfg: &ExperimentConfig,
    source: &impl BatchSource,
    device: &burn::tensor::Device,
    opts: &RunOptions,
    snapshot: impl FnMut(&TrainState),
) -> Result<Option<RunOutcome>> {
    let bar = ProgressBar::new(cfg.train.steps as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
    )?);
    let log_every = cfg.train.log_every.max(1) as u64;
    let batch = cfg.train.batch_size as f64;
    let mut window = (0.0, 0usize);
    let mut started: Option<(u64, f64)> = None;
    let on_step = |r: &StepReport| {
        let s0 = *started.get_or_insert_with(|| {
            // A resumed run starts mid-way: the ETA counts from here, not from step 0.
            bar.set_position(r.step - 1);
            bar.reset_eta();
            (r.step - 1, 0.0)
        });
        window = (window.0 + r.loss, window.1 + 1);
        if r.step % log_every == 0 || r.step == s0.0 + 1 {
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
    };
    let outcome = train_run(cfg, source, device, opts, on_step, snapshot)?;
    bar.finish();
    if outcome.interrupted {
        println!(
            "stopped at step {}; checkpoint {}. Continue with --resume.",
            outcome.state.step,
            outcome.checkpoint.display()
        );
        return Ok(None);
    }
    Ok(Some(outcome))
}

/// Top-level weight copies (what `cargo xtask sample --checkpoint RUN` loads) and summary.json.
fn finish(
    cfg: &ExperimentConfig,
    out: &Path,
    outcome: &RunOutcome,
    mut summary: serde_json::Value,
) -> Result<()> {
    for name in ["ema.bpk", "model.bpk"] {
        std::fs::copy(outcome.checkpoint.join(name), out.join(name))
            .with_context(|| format!("copying {name} to {}", out.display()))?;
    }
    let tail = &outcome.losses[outcome
        .losses
        .len()
        .saturating_sub(cfg.train.log_every.max(1))..];
    summary["final_loss"] = serde_json::json!(tail.iter().sum::<f64>() / tail.len().max(1) as f64);
    summary["steps"] = serde_json::json!(outcome.state.step);
    summary["checkpoint"] = serde_json::json!(outcome.checkpoint);
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    Ok(())
}
