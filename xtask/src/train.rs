//! `cargo xtask train`: train, sample with the EMA weights, score against the exact target.

use anyhow::{Context, Result};
use burn::module::Module;
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_eval::{LogDensityReport, ScatterSeries, write_scatter_png};
use ebdiff_trainer::{ExperimentConfig, run_toy2d};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct TrainArgs {
    /// Experiment TOML (see configs/).
    #[arg(long)]
    config: PathBuf,
    /// Run directory (default: runs/<run.name>).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: TrainArgs, backend: BackendKind) -> Result<()> {
    let cfg = ExperimentConfig::load(&args.config)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.run.name));
    let report = train_to_dir(&cfg, &out, backend)?;
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
    Ok(())
}

/// Trains `cfg` into the run directory `out` (config copy, metrics.jsonl, samples.png,
/// summary.json, ema.bpk, model.bpk) and returns the sample score.
pub fn train_to_dir(
    cfg: &ExperimentConfig,
    out: &Path,
    backend: BackendKind,
) -> Result<LogDensityReport> {
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create run directory {}", out.display()))?;
    std::fs::write(out.join("config.toml"), toml::to_string_pretty(&cfg)?)?;
    let device = backend.device().map_err(anyhow::Error::msg)?;
    tracing::info!(run = %cfg.run.name, backend = %backend, out = %out.display(), "training");
    let steps = cfg.train.steps;
    let batch_size = cfg.train.batch_size;
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap(),
    );
    let mut metrics = std::io::BufWriter::new(std::fs::File::create(out.join("metrics.jsonl"))?);
    let log_every = cfg.train.log_every.max(1);
    let mut window = Vec::new();
    let result = run_toy2d(cfg, &device, |r| {
        window.push(r.loss);
        if (r.step + 1) % log_every == 0 || r.step + 1 == steps {
            let mean = window.iter().sum::<f64>() / window.len() as f64;
            window.clear();
            let rate = (r.step + 1) as f64 * batch_size as f64 / r.seconds;
            bar.set_message(format!("loss {mean:.4}  lr {:.1e}  {rate:.0} ex/s", r.lr));
            let _ = writeln!(
                metrics,
                "{}",
                serde_json::json!({"step": r.step + 1, "loss": mean, "lr": r.lr, "seconds": r.seconds})
            );
        }
        bar.inc(1);
    });
    bar.finish();
    metrics.flush()?;
    let (samples, exact, report) = (&result.samples, &result.exact, result.report);
    let n = samples.len() / 2;
    let plot = out.join("samples.png");
    write_scatter_png(
        &plot,
        &[
            ScatterSeries {
                points: exact,
                color: [190, 190, 190],
            },
            ScatterSeries {
                points: samples,
                color: [200, 40, 40],
            },
        ],
        1.0,
        512,
    )
    .map_err(anyhow::Error::msg)?;
    // Weights: the EMA (what sampling uses) and the live model, as Burn burnpack files.
    result
        .outcome
        .ema
        .model
        .clone()
        .save_file(out.join("ema.bpk"))
        .map_err(|e| anyhow::anyhow!("saving ema.bpk: {e:?}"))?;
    result
        .outcome
        .model
        .valid()
        .save_file(out.join("model.bpk"))
        .map_err(|e| anyhow::anyhow!("saving model.bpk: {e:?}"))?;
    let summary = serde_json::json!({
        "samples": n,
        "mean_log_density_model": report.model,
        "mean_log_density_exact": report.exact,
        "gap_nats": report.gap(),
        "final_loss": result.outcome.losses.last(),
        "sampler": format!("ancestral ({:?} variance), EMA weights", cfg.sample.variance),
    });
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    Ok(report)
}
