//! `cargo xtask bench train-step`: optimizer-step time of the score vs the energy
//! parameterization of the same network (warm-up, then median of N), the FLOPs of each step
//! counted from the architecture, and on request PyTorch's step beside it and a profile.

use crate::json_file::write_json;
use crate::profile::{ProfileChild, ProfileReport, ensure_profiled_backend, profile_energy_steps};
use crate::timing::{median, peak_rss_mib};
use crate::torch::run_torch_bench;
use anyhow::{Result, anyhow, bail, ensure};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor};
use ebdiff_core::NamedDevice;
use ebdiff_core::rng::{stream, uniform_vec};
use ebdiff_model::{Conditioning, ModelConfig, ParameterizationKind};
use ebdiff_trainer::config::ModelSection;
use ebdiff_trainer::{dsm_loss, noise_batch};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The network, batch and repetitions of [`train_step`], and what to add to it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TrainStepOptions {
    /// Any config with a [model] table (default: configs/unet-small.toml).
    #[cfg_attr(feature = "clap", arg(long))]
    pub config: Option<PathBuf>,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = TrainStepOptions::default().batch))]
    pub batch: usize,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = TrainStepOptions::default().warmup))]
    pub warmup: usize,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = TrainStepOptions::default().iters))]
    pub iters: usize,
    /// Also run the PyTorch reference of the same network (scripts/bench/torch_bench.py,
    /// through the PyTorch twin in scripts/torch/) with this Python, in the same run, and print
    /// both and the throughput ratio.
    #[cfg_attr(feature = "clap", arg(long, value_name = "PYTHON"))]
    pub compare_torch: Option<PathBuf>,
    /// Write the numbers (ours, and PyTorch's with --compare-torch) as JSON.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub json: Option<PathBuf>,
    /// Also profile the energy step on one thread by op kind, phase, layer and kernel (Linux
    /// `perf`; see crates/ebdiff-bench/src/profile.rs), next to PyTorch's own profile with
    /// --compare-torch.
    #[cfg_attr(feature = "clap", arg(long))]
    pub profile: bool,
    /// Energy steps sampled by --profile (after one warm-up step).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = TrainStepOptions::default().profile_steps))]
    pub profile_steps: usize,
    /// The device's peak TFLOP/s at this --dtype, to print the achieved fraction of it
    /// (e.g. an H100 SXM: 989 for bf16/f16 dense, 494 for TF32, 67 for f32 without tensor cores).
    #[cfg_attr(feature = "clap", arg(long, value_name = "TFLOPS"))]
    pub peak_tflops: Option<f64>,
    /// The process that `profile` records (not a flag: the binary sets it to itself).
    #[cfg_attr(feature = "clap", arg(skip))]
    pub profile_child: Option<ProfileChild>,
}

impl Default for TrainStepOptions {
    fn default() -> Self {
        TrainStepOptions {
            config: None,
            batch: 16,
            warmup: 2,
            iters: 5,
            compare_torch: None,
            json: None,
            profile: false,
            profile_steps: 3,
            peak_tflops: None,
            profile_child: None,
        }
    }
}

/// One parameterization's step.
#[derive(Debug, Clone, Serialize)]
pub struct StepNumbers {
    pub median_s: f64,
    pub min_s: f64,
    pub images_per_s: f64,
    /// FLOPs of one step at the benchmark's batch, counted from the architecture.
    pub flops_per_step: f64,
    pub tflops_per_s: f64,
}

/// Our side of the benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct TrainStepNumbers {
    pub backend: String,
    pub dtype: String,
    pub params: usize,
    pub batch: usize,
    pub data_shape: Vec<usize>,
    pub score: StepNumbers,
    pub energy: StepNumbers,
    /// Energy over score median step time.
    pub ratio: f64,
    pub peak_tflops: Option<f64>,
}

/// Everything [`train_step`] measured: the JSON that `--json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct TrainStepReport {
    pub ebdiff: TrainStepNumbers,
    /// `torch_bench.py train-step`'s JSON, with `compare_torch`.
    pub torch: Option<serde_json::Value>,
    /// With `profile`.
    pub ebdiff_profile: Option<ProfileReport>,
}

/// Arithmetic of one training step, counted from the architecture (`ebdiff_model::flops`):
/// FLOPs of the products in the score model's forward pass (F) and in the energy model's
/// forward pass plus ∇ₓE VJP (F + F_vjp), per batch, and the steps' three times those.
struct StepFlops {
    score_pass: u64,
    energy_pass: u64,
}

impl StepFlops {
    /// Counted at batch 1 (the count is linear in the batch) on the plain device.
    fn count(
        score: &ModelConfig,
        energy: &ModelConfig,
        timesteps: usize,
        batch: usize,
        device: &Device,
    ) -> StepFlops {
        use ebdiff_model::flops::count;
        let cond = Conditioning::new(Tensor::<1, Int>::full([1], 0, device));
        let x = Tensor::<2>::zeros([1, score.data_dim()], device);
        let score_pass = count(|| score.init(timesteps, device).eps(x.clone(), &cond)).1;
        let energy_pass = count(|| energy.init(timesteps, device).energy_and_eps(x, &cond)).1;
        let b = batch as u64;
        StepFlops {
            score_pass: b * score_pass,
            energy_pass: b * energy_pass,
        }
    }
}

struct Timing {
    median: f64,
    min: f64,
    peak_rss: Option<f64>,
}

fn time_steps(
    cfg: &ModelConfig,
    timesteps: usize,
    opts: &TrainStepOptions,
    device: &Device,
) -> Result<Timing> {
    let device = device.clone().autodiff();
    let schedule = ebdiff_core::ScheduleConfig::linear(timesteps).build();
    let mut model = cfg.init(timesteps, &device);
    let mut optim = AdamConfig::new().init();
    let dim = cfg.data_dim();
    let mut rng = stream(0, "bench");
    let mut times = Vec::new();
    for i in 0..opts.warmup + opts.iters {
        let x0: Vec<f32> = uniform_vec(&mut rng, opts.batch * dim)
            .into_iter()
            .map(|u| 2.0 * u - 1.0)
            .collect();
        let start = Instant::now();
        let batch = noise_batch(&x0, dim, None, &schedule, &mut rng, &device);
        let loss = dsm_loss(&model, &batch);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model, grads);
        device
            .sync()
            .map_err(|e| anyhow!("device sync failed: {e:?}"))?;
        if i >= opts.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let _ = model.num_params();
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(Timing {
        median: median(times),
        min,
        peak_rss: peak_rss_mib(),
    })
}

fn numbers(t: &Timing, batch: usize, pass_flops: u64) -> StepNumbers {
    let flops = ebdiff_model::flops::training_step(pass_flops) as f64;
    StepNumbers {
        median_s: t.median,
        min_s: t.min,
        images_per_s: batch as f64 / t.median,
        flops_per_step: flops,
        tflops_per_s: flops / t.median / 1e12,
    }
}

/// `cargo xtask bench train-step`: times `opts.iters` DSM steps (after `opts.warmup`) of the
/// config's network as a score model and as an energy model on `on`, writes the table to `out`
/// (and `opts.json` when given) and returns the numbers.
///
/// ```no_run
/// use ebdiff_bench::{TrainStepOptions, train_step};
/// use ebdiff_core::NamedDevice;
///
/// let opts = TrainStepOptions {
///     config: Some("configs/toy2d.toml".into()),
///     batch: 64,
///     ..TrainStepOptions::default()
/// };
/// let report = train_step(&opts, &NamedDevice::cpu(), &mut std::io::stdout())?;
/// println!("the energy step costs {:.2}× the score step", report.ebdiff.ratio);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn train_step(
    opts: &TrainStepOptions,
    on: &NamedDevice,
    out: &mut dyn Write,
) -> Result<TrainStepReport> {
    ensure!(
        opts.iters >= 1 && opts.batch >= 1,
        "--iters and --batch must be ≥ 1"
    );
    ensure!(
        opts.peak_tflops.is_none_or(|p| p > 0.0),
        "--peak-tflops must be a positive number of TFLOP/s (the device's peak at this --dtype)"
    );
    let profile_child = match (opts.profile, &opts.profile_child) {
        (false, _) => None,
        (true, Some(child)) => {
            ensure_profiled_backend(on.backend)?;
            Some(child)
        }
        (true, None) => bail!(
            "--profile records a child process running `profile::profile_steps`: set \
             TrainStepOptions::profile_child to the command that runs it"
        ),
    };
    let (cfg, schedule) =
        ModelSection::load(opts.config.as_deref()).map(|s| (s.model, s.diffusion))?;
    let timesteps = schedule.timesteps();
    let params = cfg.init(timesteps, &on.device).num_params();
    let (backend, dtype) = (on.backend, on.precision);
    writeln!(
        out,
        "bench train-step: backend {backend}, dtype {dtype}, batch {}, data shape {:?}, {} parameters, warm-up {}, median of {}",
        opts.batch, cfg.data_shape, params, opts.warmup, opts.iters
    )?;
    let mut score_cfg = cfg.clone();
    score_cfg.parameterization = ParameterizationKind::Eps;
    let mut energy_cfg = cfg.clone();
    energy_cfg.parameterization = ParameterizationKind::Energy;
    let score = time_steps(&score_cfg, timesteps, opts, &on.device)?;
    let energy = time_steps(&energy_cfg, timesteps, opts, &on.device)?;
    let flops = StepFlops::count(&score_cfg, &energy_cfg, timesteps, opts.batch, &on.device);
    let ours = TrainStepNumbers {
        backend: backend.to_string(),
        dtype: dtype.to_string(),
        params,
        batch: opts.batch,
        data_shape: cfg.data_shape.clone(),
        score: numbers(&score, opts.batch, flops.score_pass),
        energy: numbers(&energy, opts.batch, flops.energy_pass),
        ratio: energy.median / score.median,
        peak_tflops: opts.peak_tflops,
    };
    let fmt_rss = |r: Option<f64>| {
        r.map(|v| format!("{v:.0} MiB"))
            .unwrap_or_else(|| "n/a".into())
    };
    writeln!(
        out,
        "{:<22} {:>10} {:>10} {:>12} {:>11} {:>10} {:>16}",
        "parameterization",
        "median s",
        "min s",
        "images/s",
        "GFLOP/step",
        "TFLOP/s",
        "peak RSS so far"
    )?;
    for (name, t, n) in [
        ("score (eps)", &score, &ours.score),
        (
            &*format!("energy ({:?})", cfg.energy_form),
            &energy,
            &ours.energy,
        ),
    ] {
        writeln!(
            out,
            "{:<22} {:>10.4} {:>10.4} {:>12.1} {:>11.2} {:>10.4} {:>16}",
            name,
            n.median_s,
            n.min_s,
            n.images_per_s,
            n.flops_per_step / 1e9,
            n.tflops_per_s,
            fmt_rss(t.peak_rss)
        )?;
    }
    writeln!(
        out,
        "(FLOPs counted from the architecture: the products of convolutions, linear maps and \
         attention, a multiply-add being 2; a step is 3× the forward pass, 3× forward + ∇ₓE VJP \
         for the energy)"
    )?;
    if let Some(peak) = opts.peak_tflops {
        writeln!(
            out,
            "fraction of the {peak} TFLOP/s peak: score {:.1} %, energy {:.1} %",
            100.0 * ours.score.tflops_per_s / peak,
            100.0 * ours.energy.tflops_per_s / peak
        )?;
    }
    writeln!(out, "energy/score step-time ratio: {:.2}", ours.ratio)?;
    let torch = match &opts.compare_torch {
        Some(python) => Some(torch_train_step(python, opts)?),
        None => None,
    };
    if let Some(torch) = &torch {
        write_torch_comparison(torch, &ours, out)?;
    }
    let profile = if let Some(child) = profile_child {
        let report = profile_energy_steps(
            child,
            backend,
            opts.config.as_deref(),
            opts.batch,
            opts.profile_steps,
        )?;
        let torch_profile = torch
            .as_ref()
            .and_then(|t| t.get("profile"))
            .filter(|v| !v.is_null());
        report.write_table(torch_profile, out)?;
        Some(report)
    } else {
        None
    };
    let report = TrainStepReport {
        ebdiff: ours,
        torch,
        ebdiff_profile: profile,
    };
    if let Some(path) = &opts.json {
        write_json(path, &report)?;
        writeln!(out, "wrote {}", path.display())?;
    }
    Ok(report)
}

fn write_torch_comparison(
    torch: &serde_json::Value,
    ours: &TrainStepNumbers,
    out: &mut dyn Write,
) -> Result<()> {
    let t = |k: &str| torch[k]["median_s"].as_f64().unwrap_or(f64::NAN);
    writeln!(
        out,
        "\nside by side (PyTorch {} eager, {} threads, {} parameters):",
        torch["torch_version"].as_str().unwrap_or("?"),
        torch["threads"],
        torch["params"]
    )?;
    writeln!(
        out,
        "{:<12} {:>12} {:>12} {:>26}",
        "step", "ebdiff s", "PyTorch s", "ebdiff/PyTorch throughput"
    )?;
    for (name, ours_s, theirs_s) in [
        ("score", ours.score.median_s, t("score")),
        ("energy", ours.energy.median_s, t("energy")),
    ] {
        writeln!(
            out,
            "{name:<12} {ours_s:>12.4} {theirs_s:>12.4} {:>25.2}×",
            theirs_s / ours_s
        )?;
    }
    writeln!(
        out,
        "energy/score: ebdiff {:.2}, PyTorch {:.2}",
        ours.ratio,
        t("energy") / t("score")
    )?;
    Ok(())
}

/// Runs `scripts/bench/torch_bench.py train-step` with the same config, batch, warm-up and
/// iterations, and returns its JSON.
fn torch_train_step(python: &Path, opts: &TrainStepOptions) -> Result<serde_json::Value> {
    let config = opts
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("configs/unet-small.toml"));
    let mut options = vec![
        ("--config", config.display().to_string()),
        ("--batch", opts.batch.to_string()),
        ("--warmup", opts.warmup.to_string()),
        ("--iters", opts.iters.to_string()),
    ];
    if opts.profile {
        // PyTorch's own profile of the same step, grouped by the same op kinds.
        options.push(("--profile", String::new()));
        options.push(("--profile-steps", opts.profile_steps.to_string()));
    }
    run_torch_bench(python, "train-step", &options, TORCH_PACKAGES)
}

/// What `torch_bench.py train-step` and `eval` import.
pub(crate) const TORCH_PACKAGES: &str = "torch safetensors numpy";
