//! `cargo xtask train-classifier --config FILE`: the noise-conditioned classifier p(y | x_t, t) of
//! the file's `[classifier]` section, on its data and noise schedule, for classifier guidance.

use anyhow::{Context, Result, bail};
use burn::module::Module;
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_trainer::ExperimentConfig;
use ebdiff_trainer::classifier::{classifier_accuracy, train_classifier};
use ebdiff_trainer::config::DataConfig;
use ebdiff_trainer::data::ImageSource;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

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
    let Some(section) = cfg.classifier.clone() else {
        bail!(
            "{} has no [classifier] section (see configs/shapes.toml for one)",
            args.config.display()
        );
    };
    let DataConfig::Image(data) = &cfg.data else {
        bail!("the classifier needs image data");
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-classifier", cfg.run.name)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("config.toml"), cfg.to_toml())?;
    let device = backend.device().map_err(anyhow::Error::msg)?;
    let shape: [usize; 3] = cfg.model.data_shape.clone().try_into().expect("validated");
    let dataset = data.build(shape, true)?;
    let classes = dataset.num_classes;
    let source = ImageSource::new(
        Arc::new(dataset),
        data,
        section.batch_size,
        cfg.run.seed,
        true,
    )?;
    let schedule = cfg.diffusion.build();
    let bar = ProgressBar::new(section.steps as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
    )?);
    let mut metrics = std::io::BufWriter::new(std::fs::File::create(out.join("metrics.jsonl"))?);
    let mut window = (0.0, 0.0, 0usize);
    let clf = train_classifier(
        &section,
        shape,
        classes,
        &schedule,
        &source,
        cfg.run.seed,
        &device,
        |s| {
            window = (window.0 + s.loss, window.1 + s.accuracy, window.2 + 1);
            if s.step % 25 == 0 || s.step == section.steps {
                let n = window.2 as f64;
                bar.set_message(format!(
                    "loss {:.4}  batch accuracy {:.3}",
                    window.0 / n,
                    window.1 / n
                ));
                let _ = writeln!(
                    metrics,
                    "{}",
                    serde_json::json!({"step": s.step, "loss": window.0 / n, "accuracy": window.1 / n})
                );
                window = (0.0, 0.0, 0);
            }
            bar.set_position(s.step as u64);
        },
    );
    bar.finish();
    metrics.flush()?;
    clf.clone()
        .save_file(out.join("classifier.bpk"))
        .map_err(|e| anyhow::anyhow!("saving classifier.bpk: {e:?}"))?;
    let t = schedule.len();
    let mut accuracy = serde_json::Map::new();
    for level in [0, t / 10, t / 2, 9 * t / 10] {
        let a = classifier_accuracy(
            &clf,
            &schedule,
            &source,
            level,
            section.batch_size,
            8,
            &device,
        );
        println!("held-out accuracy at level {level:>4}: {a:.3}");
        accuracy.insert(format!("level_{level}"), serde_json::json!(a));
    }
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "classes": classes, "steps": section.steps, "held_out_accuracy": accuracy,
        }))?,
    )?;
    println!("classifier: {}", out.join("classifier.bpk").display());
    Ok(())
}
