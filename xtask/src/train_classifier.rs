//! `cargo xtask train-classifier --config FILE`: the noise-conditioned classifier p(y | x_t, t) of
//! the file's `[classifier]` section, on its data and noise schedule, for classifier guidance.

use crate::progress::bar;
use anyhow::Result;
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_trainer::{ExperimentConfig, train_classifier_to_dir};
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainClassifierArgs {
    /// Experiment TOML with a `[classifier]` section (e.g. configs/shapes.toml).
    #[arg(long)]
    config: PathBuf,
    /// Output directory (default: runs/<run.name>-classifier).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: TrainClassifierArgs, backend: BackendKind) -> Result<()> {
    let cfg = ExperimentConfig::load(&args.config)?;
    let steps = cfg.classifier.as_ref().map_or(0, |c| c.steps);
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-classifier", cfg.run.name)));
    let device = backend.device().map_err(anyhow::Error::msg)?;
    let bar = bar(
        steps,
        "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
    );
    let summary = train_classifier_to_dir(&cfg, &out, &device, |s| {
        if s.step % 25 == 0 {
            bar.set_message(format!(
                "loss {:.4}  batch accuracy {:.3}",
                s.loss, s.accuracy
            ));
        }
        bar.set_position(s.step as u64);
    })?;
    bar.finish();
    for (level, a) in &summary.held_out_accuracy {
        println!("held-out accuracy at level {level:>4}: {a:.3}");
    }
    println!(
        "classifier: {}",
        out.join("classifier.safetensors").display()
    );
    Ok(())
}
