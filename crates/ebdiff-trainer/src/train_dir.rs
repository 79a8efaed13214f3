//! `cargo xtask train` as a library call: train an experiment config into a run directory with
//! sample snapshots (scatter plots for 2-D toys, image grids with fixed seeds), then finish the
//! run: top-level `ema.safetensors`/`model.safetensors` (what sampling loads), `samples.png` and `summary.json`;
//! 2-D runs are scored against their exact target.

use crate::config::ExperimentConfig;
use crate::data::{DataConfig, ImageSource};
use crate::error::RunError;
use crate::experiment::{draw_samples, evaluate_toy2d, toy2d_source};
use crate::run::{RunOptions, RunOutcome, train_run};
use crate::state::TrainState;
use crate::train::StepReport;
use burn::tensor::Device;
use ebdiff_eval::{LogDensityReport, ScatterSeries, write_image_grid_png, write_scatter_png};
use ebdiff_model::DiffusionModel;
use std::path::Path;
use std::sync::Arc;

/// How a [`train_to_dir`] call ended.
pub struct Trained {
    pub outcome: RunOutcome,
    /// 2-D runs: mean log-density of the model's samples vs exact samples (not when interrupted).
    pub toy2d: Option<LogDensityReport>,
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |e| RunError::Io(p.to_path_buf(), e)
}

/// Trains `cfg` into `opts.out` (resuming when `opts.resume`). `on_step` sees every step (progress
/// bars). When the run finishes (not when interrupted) the top-level files are written.
pub fn train_to_dir(
    cfg: &ExperimentConfig,
    device: &Device,
    opts: &RunOptions,
    on_step: impl FnMut(&StepReport),
) -> Result<Trained, RunError> {
    let out = &opts.out;
    let snapshot_path = |state: &TrainState| {
        out.join("samples")
            .join(format!("step-{:08}.png", state.step))
    };
    match &cfg.data {
        DataConfig::Toy2d(_) => {
            let snapshot = |state: &TrainState| {
                let n = cfg.sample.grid.max(256).min(cfg.sample.count);
                let written = draw_samples(
                    cfg,
                    &state.ema.model_on(device),
                    n,
                    None,
                    cfg.run.seed,
                    device,
                )
                .and_then(|points| {
                    let series = [ScatterSeries {
                        points: &points,
                        color: [200, 40, 40],
                    }];
                    write_scatter_png(&snapshot_path(state), &series, 1.0, 384)
                        .map_err(RunError::Sampling)
                });
                if let Err(e) = written {
                    tracing::warn!("sample snapshot: {e}");
                }
            };
            let outcome = train_run(cfg, &toy2d_source(cfg), device, opts, on_step, snapshot)?;
            // Rank 0 alone evaluates and writes the run's top-level files.
            if outcome.interrupted || !opts.group.is_root() {
                return Ok(Trained {
                    outcome,
                    toy2d: None,
                });
            }
            let eval = evaluate_toy2d(cfg, &outcome.state.ema.model_on(device), device)?;
            let series = [
                ScatterSeries {
                    points: &eval.exact,
                    color: [190, 190, 190],
                },
                ScatterSeries {
                    points: &eval.samples,
                    color: [200, 40, 40],
                },
            ];
            write_scatter_png(&out.join("samples.png"), &series, 1.0, 512)
                .map_err(RunError::Sampling)?;
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
            Ok(Trained {
                outcome,
                toy2d: Some(eval.report),
            })
        }
        DataConfig::Image(data) => {
            let shape: [usize; 3] = cfg.model.data_shape.clone().try_into().expect("validated");
            let dataset = data
                .build(shape, true)
                .map_err(|e| RunError::Data(e.to_string()))?;
            if let Some(k) = cfg.model.num_classes
                && k != dataset.num_classes
            {
                return Err(RunError::Data(format!(
                    "model.num_classes = {k}, but the [data] set has {} classes: set \
                     model.num_classes = {} (or remove it for an unconditional model)",
                    dataset.num_classes, dataset.num_classes
                )));
            }
            tracing::info!(
                images = dataset.len(),
                classes = dataset.num_classes,
                "data {:?}",
                dataset.shape()
            );
            let conditional = cfg.model.num_classes.is_some();
            let source = ImageSource::new(
                Arc::new(dataset),
                data,
                cfg.train.batch_size,
                cfg.run.seed,
                conditional,
            )
            .map_err(|e| RunError::Data(e.to_string()))?;
            let snapshot = |state: &TrainState| {
                if let Err(e) = write_grid(
                    cfg,
                    &state.ema.model_on(device),
                    &snapshot_path(state),
                    device,
                ) {
                    tracing::warn!("sample grid: {e}");
                }
            };
            let outcome = train_run(cfg, &source, device, opts, on_step, snapshot)?;
            if outcome.interrupted || !opts.group.is_root() {
                return Ok(Trained {
                    outcome,
                    toy2d: None,
                });
            }
            let grid = snapshot_path(&outcome.state);
            let top = out.join("samples.png");
            std::fs::copy(&grid, &top).map_err(io(&grid))?;
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
            Ok(Trained {
                outcome,
                toy2d: None,
            })
        }
    }
}

/// A grid of `sample.grid` EMA samples with fixed seeds; class-conditional models get class
/// `i mod num_classes` for image i, so each column of a grid as wide as the classes is one class.
pub fn write_grid(
    cfg: &ExperimentConfig,
    model: &DiffusionModel,
    path: &Path,
    device: &Device,
) -> Result<(), RunError> {
    let n = cfg.sample.grid;
    let labels = cfg
        .model
        .num_classes
        .map(|k| (0..n).map(|i| i % k).collect());
    let cols = match cfg.model.num_classes {
        Some(k) => k,
        None => (n as f64).sqrt().ceil() as usize,
    };
    let x = draw_samples(cfg, model, n, labels, cfg.run.seed, device)?;
    let shape: [usize; 3] = cfg.model.data_shape.clone().try_into().expect("validated");
    write_image_grid_png(path, &x, shape, cols).map_err(RunError::Sampling)
}

/// Top-level weight copies (what sampling loads) and summary.json.
fn finish(
    cfg: &ExperimentConfig,
    out: &Path,
    outcome: &RunOutcome,
    mut summary: serde_json::Value,
) -> Result<(), RunError> {
    for stem in ["ema", "model"] {
        // A checkpoint of format 1 (resumed from an old run) holds .bpk files; copy what it has.
        let from = ebdiff_core::module_weights::weights_file(&outcome.checkpoint, stem)
            .unwrap_or_else(|| outcome.checkpoint.join(format!("{stem}.safetensors")));
        let name = from.file_name().expect("a file name");
        std::fs::copy(&from, out.join(name)).map_err(io(&from))?;
        // A stale copy in the other format would shadow or confuse; keep only the newest.
        for old in [format!("{stem}.bpk"), format!("{stem}.safetensors")] {
            if old.as_str() != name && out.join(&old).exists() {
                std::fs::remove_file(out.join(&old)).map_err(io(&out.join(&old)))?;
            }
        }
    }
    let tail = &outcome.losses[outcome
        .losses
        .len()
        .saturating_sub(cfg.train.log_every.max(1))..];
    summary["final_loss"] = serde_json::json!(tail.iter().sum::<f64>() / tail.len().max(1) as f64);
    summary["steps"] = serde_json::json!(outcome.state.step);
    summary["checkpoint"] = serde_json::json!(outcome.checkpoint);
    let path = out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary).expect("json"))
        .map_err(io(&path))?;
    // The report is a view of the files written above: failing to draw it loses nothing.
    match crate::report::write_run_report(out) {
        Ok(p) => tracing::info!("report: {}", p.display()),
        Err(e) => tracing::warn!("run report not written: {e:#}"),
    }
    Ok(())
}
