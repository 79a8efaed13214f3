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
    AncestralOptions, CompositionSpec, LevelDiagnostics, SamplerConfig, SamplerKind,
    SamplingConfig, TargetAsEps, sample_ancestral, sample_annealed, sample_ddim,
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

/// The models and classifiers a sampling config's composition uses, loaded on one device.
pub struct Loaded {
    pub models: BTreeMap<String, DiffusionModel>,
    pub classifiers: BTreeMap<String, NoisyClassifier>,
    pub schedule: NoiseSchedule,
    /// The models' data shape ([2] for 2-D toys, [C, H, W] for images).
    pub data_shape: Vec<usize>,
}

impl Loaded {
    /// The composition tree of `spec` over the loaded models.
    pub fn build<'a>(&'a self, spec: &CompositionSpec) -> Result<ebdiff_sampler::Composition<'a>> {
        spec.build(&self.models, &self.classifiers, &self.schedule)
            .map_err(anyhow::Error::msg)
    }
}

/// The composition of `cfg` (default: the model named "default" alone).
pub fn composition_spec(cfg: &SamplingConfig) -> CompositionSpec {
    cfg.composition.clone().unwrap_or(CompositionSpec::Model {
        model: None,
        label: None,
    })
}

/// Loads what `cfg`'s composition uses; `checkpoint`/`classifier` are the run directories of
/// the models named "default". Checks that all share one noise schedule and validates
/// `[sampler]` against it.
pub fn load_for(
    cfg: &SamplingConfig,
    checkpoint: Option<&Path>,
    classifier: Option<&Path>,
    device: &Device,
) -> Result<Loaded> {
    let spec = composition_spec(cfg);
    let mut paths: BTreeMap<String, PathBuf> = cfg
        .models
        .iter()
        .map(|(k, v)| (k.clone(), PathBuf::from(v)))
        .collect();
    if let Some(c) = checkpoint {
        paths.insert(DEFAULT_MODEL.into(), c.to_path_buf());
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
        let (model, s, run_cfg) = load_run(dir, device)?;
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
    if let Some(c) = classifier {
        classifier_dirs.insert(DEFAULT_MODEL.into(), c.to_path_buf());
    }
    let mut classifiers = BTreeMap::new();
    for name in spec.classifier_names() {
        let Some(dir) = classifier_dirs.get(&name) else {
            bail!(
                "the composition uses classifier `{name}` but no directory is given for it (add it to [classifiers] or pass --classifier)"
            );
        };
        let (clf, s) = load_classifier(dir, device)?;
        if s != schedule {
            bail!(
                "classifier `{name}` was trained with another noise schedule than the models; train it with the models' [diffusion]"
            );
        }
        classifiers.insert(name, clf);
    }
    Ok(Loaded {
        models,
        classifiers,
        schedule,
        data_shape,
    })
}

/// Samples drawn by [`draw`]: flat `[count, dim]` values and what the sampler reports.
pub struct Drawn {
    pub samples: Vec<f32>,
    /// Target evaluations per chain.
    pub nfe: usize,
    /// Per-level diagnostics of the MCMC samplers (empty for ancestral/DDIM).
    pub levels: Vec<LevelDiagnostics>,
}

/// Draws `cfg.count` samples of `target` with `cfg.sampler` and seed `cfg.seed`.
/// `on_level(done, total)` reports progress.
pub fn draw(
    cfg: &SamplingConfig,
    target: &ebdiff_sampler::Composition<'_>,
    schedule: &NoiseSchedule,
    device: &Device,
    mut on_level: impl FnMut(usize, usize, Option<f64>),
) -> Result<Drawn> {
    let n = cfg.count;
    let (samples, nfe, levels) = match cfg.sampler.kind {
        SamplerKind::Ancestral | SamplerKind::Ddim => {
            let sched = match cfg.sampler.respace {
                Some(k) => schedule
                    .respaced(&schedule.evenly_spaced_levels(k))
                    .map_err(anyhow::Error::msg)?,
                None => schedule.clone(),
            };
            let eps = TargetAsEps { target, schedule };
            let total = sched.len();
            let mut done = 0;
            let mut tick = |_: ebdiff_sampler::LevelInfo| {
                done += 1;
                on_level(done, total, None);
            };
            let x = if cfg.sampler.kind == SamplerKind::Ancestral {
                let opts = AncestralOptions {
                    variance: cfg.sampler.variance,
                    clip_x0: cfg.sampler.clip_x0,
                    seed: cfg.seed,
                };
                sample_ancestral(&eps, &sched, n, None, &opts, device, &mut tick)
            } else {
                sample_ddim(
                    &eps,
                    &sched,
                    n,
                    None,
                    cfg.sampler.ddim_eta,
                    cfg.sampler.clip_x0,
                    cfg.seed,
                    device,
                    &mut tick,
                )
            };
            (x, sched.len(), Vec::new())
        }
        _ => {
            let opts = cfg
                .sampler
                .annealed_options(schedule.len(), cfg.seed)
                .expect("MCMC sampler");
            let total = schedule.len();
            let run = sample_annealed(target, schedule, n, &opts, device, |d| {
                on_level(total - d.level, total, d.acceptance)
            });
            (run.samples, run.nfe, run.levels)
        }
    };
    let samples: Vec<f32> = samples
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 samples");
    Ok(Drawn {
        samples,
        nfe,
        levels,
    })
}

/// A scatter plot (2-D; `reference` in grey under the samples in red) or an image grid of at
/// most the first `max_images` samples.
pub fn write_samples_png(
    path: &Path,
    samples: &[f32],
    count: usize,
    data_shape: &[usize],
    reference: Option<&[f32]>,
    size: u32,
    max_images: usize,
) -> Result<()> {
    let dim = samples.len() / count.max(1);
    if dim == 2 {
        let mut series = Vec::new();
        if let Some(r) = reference {
            series.push(ScatterSeries {
                points: r,
                color: [190, 190, 190],
            });
        }
        series.push(ScatterSeries {
            points: samples,
            color: [200, 40, 40],
        });
        write_scatter_png(path, &series, 1.2, size).map_err(anyhow::Error::msg)
    } else if let Ok(shape) = <[usize; 3]>::try_from(data_shape.to_vec()) {
        let shown = count.min(max_images);
        let cols = (shown as f64).sqrt().ceil() as usize;
        write_image_grid_png(path, &samples[..shown * dim], shape, cols).map_err(anyhow::Error::msg)
    } else {
        Ok(())
    }
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
    let loaded = load_for(
        &cfg,
        args.checkpoint.as_deref(),
        args.classifier.as_deref(),
        &device,
    )?;
    let target = loaded.build(&composition_spec(&cfg))?;
    let out = args.out.clone().unwrap_or_else(|| {
        args.checkpoint
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs"))
            .join(format!("samples-{}", cfg.sampler.kind.name()))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(out.join("sampling.toml"), toml::to_string_pretty(&cfg)?)?;

    let n = cfg.count;
    let bar = ProgressBar::new(loaded.schedule.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} level {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap(),
    );
    let start = Instant::now();
    let drawn = draw(
        &cfg,
        &target,
        &loaded.schedule,
        &device,
        |done, total, acc| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            if let Some(a) = acc {
                bar.set_message(format!("acceptance {a:.2}"));
            }
        },
    )?;
    bar.finish();
    let seconds = start.elapsed().as_secs_f64();
    let flat = &drawn.samples;
    let dim = flat.len() / n;
    write_npy(&out.join("samples.npy"), flat, &[n, dim])?;
    write_samples_png(
        &out.join("samples.png"),
        flat,
        n,
        &loaded.data_shape,
        None,
        512,
        100,
    )?;
    let diagnostics = if drawn.levels.is_empty() {
        serde_json::json!({ "nfe": drawn.nfe })
    } else {
        serde_json::json!({ "nfe": drawn.nfe, "levels": drawn.levels })
    };
    let summary = serde_json::json!({
        "sampler": cfg.sampler.kind.name(),
        "count": n,
        "seed": cfg.seed,
        "data_shape": loaded.data_shape,
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
