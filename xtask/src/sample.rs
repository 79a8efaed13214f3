//! `cargo xtask sample`: sample a checkpoint, or a composition of several, with any sampler.
//! Writes samples (.npy, and a scatter PNG for 2-D data) and a JSON of diagnostics.

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use clap::Args;
use ebdiff_core::{BackendKind, NoiseSchedule};
use ebdiff_eval::{ScatterSeries, write_image_grid_png, write_scatter_png};
use ebdiff_model::{DiffusionModel, NoisyClassifier};
use ebdiff_sampler::config::DEFAULT_MODEL;
use ebdiff_sampler::{
    AncestralOptions, CompositionSpec, SamplerConfig, SamplerKind, SamplingConfig, TargetAsEps,
    sample_ancestral, sample_annealed, sample_ddim,
};
use ebdiff_trainer::ExperimentConfig;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct SampleArgs {
    /// Run directory of the model to sample (holds config.toml and ema.bpk); it is the model
    /// named "default" in compositions.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Output directory of `cargo xtask train-classifier`: the classifier named "default" in
    /// compositions (`{ op = "classifier", label = 3 }`).
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Sampler (overrides [sampler].kind): ancestral, ddim, ula, mala, uhmc, hmc.
    #[arg(long)]
    sampler: Option<SamplerKind>,
    /// Sampling TOML: sampler hyper-parameters, [models] and [composition].
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    count: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory (default: <checkpoint>/samples-<sampler>).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Loads a run directory's EMA weights on `device` with the run's own config.
pub fn load_run(
    dir: &Path,
    device: &Device,
) -> Result<(DiffusionModel, NoiseSchedule, ExperimentConfig)> {
    let cfg_path = dir.join("config.toml");
    if !cfg_path.exists() {
        bail!(
            "{} is not a run directory: {} is missing (train one with `cargo xtask train`)",
            dir.display(),
            cfg_path.display()
        );
    }
    let cfg = ExperimentConfig::load(&cfg_path)?;
    let schedule = cfg.diffusion.build();
    let weights = dir.join("ema.bpk");
    let model = cfg
        .model
        .init(schedule.len(), device)
        .try_load_file(&weights)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load {}: {e:?} (corrupt file, or weights of a different model config)",
                weights.display()
            )
        })?;
    Ok((model, schedule, cfg))
}

/// Loads a `cargo xtask train-classifier` output directory (config.toml + classifier.bpk).
pub fn load_classifier(dir: &Path, device: &Device) -> Result<(NoisyClassifier, NoiseSchedule)> {
    let cfg_path = dir.join("config.toml");
    let cfg = ExperimentConfig::load(&cfg_path).with_context(|| {
        format!(
            "{} is not a classifier directory (train one with `cargo xtask train-classifier`)",
            dir.display()
        )
    })?;
    let section = cfg
        .classifier
        .with_context(|| format!("{} has no [classifier] section", cfg_path.display()))?;
    let shape: [usize; 3] = cfg.model.data_shape.clone().try_into().expect("validated");
    let classes = cfg.model.num_classes.expect("validated");
    let weights = dir.join("classifier.bpk");
    let clf = section
        .network
        .init(shape, classes, device)
        .try_load_file(&weights)
        .map_err(|e| anyhow::anyhow!("cannot load {}: {e:?}", weights.display()))?;
    Ok((clf, cfg.diffusion.build()))
}

/// Writes a little-endian f32 .npy file of shape `shape`.
pub fn write_npy(path: &Path, data: &[f32], shape: &[usize]) -> Result<()> {
    let dims = shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}{}), }}",
        if shape.len() == 1 { "," } else { "" }
    );
    // Magic (6) + version (2) + header length (2) + header must be a multiple of 64.
    let pad = 64 - (10 + header.len() + 1) % 64;
    header.push_str(&" ".repeat(pad % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in data {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(args: SampleArgs, backend: BackendKind) -> Result<()> {
    let mut cfg: SamplingConfig = match &args.config {
        Some(p) => ebdiff_core::load_toml(p)?,
        None => SamplingConfig {
            count: 2000,
            seed: 0,
            sampler: SamplerConfig::new(args.sampler.unwrap_or(SamplerKind::Ancestral)),
            models: BTreeMap::new(),
            classifiers: BTreeMap::new(),
            composition: None,
        },
    };
    if let Some(k) = args.sampler {
        cfg.sampler.kind = k;
    }
    if let Some(n) = args.count {
        cfg.count = n;
    }
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    let device = backend.device().map_err(anyhow::Error::msg)?;
    let spec = cfg.composition.clone().unwrap_or(CompositionSpec::Model {
        model: None,
        label: None,
    });
    let mut paths: BTreeMap<String, PathBuf> = cfg
        .models
        .iter()
        .map(|(k, v)| (k.clone(), PathBuf::from(v)))
        .collect();
    if let Some(c) = &args.checkpoint {
        paths.insert(DEFAULT_MODEL.into(), c.clone());
    }
    let mut models = BTreeMap::new();
    let mut schedule: Option<(NoiseSchedule, String)> = None;
    let mut data_shape = Vec::new();
    for name in spec.model_names() {
        let Some(dir) = paths.get(&name) else {
            bail!(
                "the composition uses model `{name}` but no run directory is given for it (add it to [models] or pass --checkpoint)"
            );
        };
        let (model, s, run_cfg) = load_run(dir, &device)?;
        match &schedule {
            Some((s0, first)) if s0 != &s => bail!(
                "models `{first}` and `{name}` use different noise schedules; compose models trained with the same [diffusion]"
            ),
            Some(_) => {}
            None => schedule = Some((s, name.clone())),
        }
        data_shape = run_cfg.model.data_shape.clone();
        models.insert(name, model);
    }
    let (schedule, _) =
        schedule.context("nothing to sample: no model given (use --checkpoint or [models])")?;
    cfg.sampler
        .validate(schedule.len())
        .map_err(|(k, m)| anyhow::anyhow!("at `sampler.{k}`: {m}"))?;
    let mut classifier_dirs: BTreeMap<String, PathBuf> = cfg
        .classifiers
        .iter()
        .map(|(k, v)| (k.clone(), PathBuf::from(v)))
        .collect();
    if let Some(c) = &args.classifier {
        classifier_dirs.insert(DEFAULT_MODEL.into(), c.clone());
    }
    let mut classifiers = BTreeMap::new();
    for name in spec.classifier_names() {
        let Some(dir) = classifier_dirs.get(&name) else {
            bail!(
                "the composition uses classifier `{name}` but no directory is given for it (add it to [classifiers] or pass --classifier)"
            );
        };
        let (clf, s) = load_classifier(dir, &device)?;
        if s != schedule {
            bail!(
                "classifier `{name}` was trained with another noise schedule than the models; train it with the models' [diffusion]"
            );
        }
        classifiers.insert(name, clf);
    }
    let target = spec
        .build(&models, &classifiers, &schedule)
        .map_err(anyhow::Error::msg)?;
    let out = args.out.clone().unwrap_or_else(|| {
        args.checkpoint
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs"))
            .join(format!("samples-{}", cfg.sampler.kind.name()))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(out.join("sampling.toml"), toml::to_string_pretty(&cfg)?)?;

    let n = cfg.count;
    let bar = ProgressBar::new(schedule.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} level {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap(),
    );
    let start = Instant::now();
    let (samples, diagnostics) = match cfg.sampler.kind {
        SamplerKind::Ancestral | SamplerKind::Ddim => {
            let sched = match cfg.sampler.respace {
                Some(k) => schedule
                    .respaced(&schedule.evenly_spaced_levels(k))
                    .map_err(anyhow::Error::msg)?,
                None => schedule.clone(),
            };
            let eps = TargetAsEps {
                target: &target,
                schedule: &schedule,
            };
            let x = if cfg.sampler.kind == SamplerKind::Ancestral {
                let opts = AncestralOptions {
                    variance: cfg.sampler.variance,
                    clip_x0: cfg.sampler.clip_x0,
                    seed: cfg.seed,
                };
                sample_ancestral(&eps, &sched, n, None, &opts, &device, |_| bar.inc(1))
            } else {
                sample_ddim(
                    &eps,
                    &sched,
                    n,
                    None,
                    cfg.sampler.ddim_eta,
                    cfg.sampler.clip_x0,
                    cfg.seed,
                    &device,
                    |_| bar.inc(1),
                )
            };
            (x, serde_json::json!({ "nfe": sched.len() }))
        }
        _ => {
            let opts = cfg
                .sampler
                .annealed_options(schedule.len(), cfg.seed)
                .expect("MCMC sampler");
            let (x, diag) = sample_annealed(&target, &schedule, n, &opts, &device, |d| {
                if let Some(a) = d.acceptance {
                    bar.set_message(format!("acceptance {a:.2}"));
                }
                bar.set_position((schedule.len() - d.level) as u64);
            });
            let nfe = diag.last().map(|d| d.nfe).unwrap_or(0);
            (x, serde_json::json!({ "nfe": nfe, "levels": diag }))
        }
    };
    bar.finish();
    let seconds = start.elapsed().as_secs_f64();
    let flat: Vec<f32> = samples
        .clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 samples");
    let dim = flat.len() / n;
    write_npy(&out.join("samples.npy"), &flat, &[n, dim])?;
    if dim == 2 {
        write_scatter_png(
            &out.join("samples.png"),
            &[ScatterSeries {
                points: &flat,
                color: [200, 40, 40],
            }],
            1.2,
            512,
        )
        .map_err(anyhow::Error::msg)?;
    } else if let Ok(shape) = <[usize; 3]>::try_from(data_shape.clone()) {
        // Images: one grid of (at most) the first 100 samples.
        let shown = n.min(100);
        let cols = (shown as f64).sqrt().ceil() as usize;
        write_image_grid_png(&out.join("samples.png"), &flat[..shown * dim], shape, cols)
            .map_err(anyhow::Error::msg)?;
    }
    let summary = serde_json::json!({
        "sampler": cfg.sampler.kind.name(),
        "count": n,
        "seed": cfg.seed,
        "data_shape": data_shape,
        "seconds": seconds,
        "diagnostics": diagnostics,
    });
    std::fs::write(
        out.join("diagnostics.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    println!("{} samples in {:.1} s → {}", n, seconds, out.display());
    Ok(())
}
