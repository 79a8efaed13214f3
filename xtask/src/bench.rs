//! `cargo xtask bench train-step`: optimizer-step time of the score vs the energy
//! parameterization of the same network (warm-up, then median of N).

use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use clap::{Args, Subcommand};
use ebdiff_core::BackendKind;
use ebdiff_core::rng::{stream, uniform_vec};
use ebdiff_model::{ModelConfig, ParameterizationKind};
use ebdiff_trainer::{dsm_loss, noise_batch};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time one DSM optimizer step (forward, VJP for energies, backward, Adam).
    TrainStep(TrainStepArgs),
    /// Time one sampling-time evaluation, energy and ∇ₓE (no autodiff), per batch size.
    Eval(EvalArgs),
    /// Time a data-parallel training step and its gradient all-reduce (alone or under
    /// `mpirun -np N`), and the bare MPI all-reduce by size.
    DataParallel(crate::bench_ranks::DataParallelArgs),
    /// Images/s of the FID network (Inception-v3 features), ours and PyTorch's reference.
    FidFeatures(crate::bench_fid::FidFeaturesArgs),
    /// The child that `train-step --profile` samples.
    #[command(hide = true)]
    ProfileSteps(crate::bench_profile::ProfileStepsArgs),
}

#[derive(Args)]
pub struct EvalArgs {
    /// Any config with a [model] table (default: configs/unet-small.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Batch sizes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "16")]
    batch: Vec<usize>,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Also run the PyTorch twin's energy + ∇ₓE (autograd) with this Python, in the same run.
    #[arg(long, value_name = "PYTHON")]
    compare_torch: Option<PathBuf>,
}

fn eval(args: EvalArgs, backend: BackendKind) -> Result<()> {
    let (cfg, schedule) = ebdiff_trainer::config::ModelSection::load(args.config.as_deref())
        .map(|s| (s.model, s.diffusion))?;
    let device = crate::device(backend)?;
    let model = cfg.init(schedule.timesteps(), &device);
    let dim = cfg.data_dim();
    let mut rng = stream(0, "bench-eval");
    println!(
        "bench eval: backend {backend}, {:?} model, data shape {:?}",
        model.parameterization, cfg.data_shape
    );
    println!("{:>8} {:>12} {:>14}", "batch", "median ms", "examples/s");
    let mut ours = Vec::new();
    for &b in &args.batch {
        let x = ebdiff_core::rng::randn(&mut rng, [b, dim], &device);
        let cond = ebdiff_model::Conditioning::new(
            burn::tensor::Tensor::<1, burn::tensor::Int>::full([b], 10, &device),
        );
        let mut times = Vec::new();
        for i in 0..args.warmup + args.iters {
            let start = Instant::now();
            let eps = if model.is_energy() {
                model.energy_and_eps(x.clone(), &cond).1
            } else {
                model.eps(x.clone(), &cond)
            };
            let _ = eps.sum().into_scalar::<f32>();
            if i >= args.warmup {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = times[times.len() / 2];
        println!("{b:>8} {:>12.2} {:>14.0}", med * 1e3, b as f64 / med);
        ours.push((b, med));
    }
    if let Some(python) = &args.compare_torch {
        let batches: Vec<String> = args.batch.iter().map(|b| b.to_string()).collect();
        let config = args
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("configs/unet-small.toml"));
        let torch = run_torch_bench(
            python,
            "eval",
            &config,
            &[
                ("--batch", batches.join(",")),
                ("--warmup", args.warmup.to_string()),
                ("--iters", args.iters.to_string()),
            ],
        )?;
        println!(
            "\nside by side, energy + ∇ₓE (PyTorch {} eager, autograd, {} threads):",
            torch["torch_version"].as_str().unwrap_or("?"),
            torch["threads"]
        );
        println!(
            "{:>8} {:>14} {:>14} {:>26}",
            "batch", "ebdiff ex/s", "PyTorch ex/s", "ebdiff/PyTorch throughput"
        );
        let theirs = torch["batches"].as_array().cloned().unwrap_or_default();
        for ((b, med), t) in ours.iter().zip(theirs) {
            let t_s = t["median_ms"].as_f64().unwrap_or(f64::NAN) / 1e3;
            println!(
                "{b:>8} {:>14.0} {:>14.0} {:>25.2}×",
                *b as f64 / med,
                *b as f64 / t_s,
                t_s / med
            );
        }
    }
    Ok(())
}

#[derive(Args, Clone)]
pub struct TrainStepArgs {
    /// Any config with a [model] table (default: configs/unet-small.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Also run the PyTorch reference of the same network (scripts/bench/torch_bench.py,
    /// through the PyTorch twin in scripts/torch/) with this Python, in the same run, and print
    /// both and the throughput ratio.
    #[arg(long, value_name = "PYTHON")]
    compare_torch: Option<PathBuf>,
    /// Write the numbers (ours, and PyTorch's with --compare-torch) as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also profile the energy step on one thread by op kind, phase, layer and kernel (Linux
    /// `perf`; see bench_profile.rs), next to PyTorch's own profile with --compare-torch.
    #[arg(long)]
    profile: bool,
    /// Energy steps sampled by --profile (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    profile_steps: usize,
    /// The device's peak TFLOP/s at this --dtype, to print the achieved fraction of it
    /// (e.g. an H100 SXM: 989 for bf16/f16 dense, 494 for TF32, 67 for f32 without tensor cores).
    #[arg(long, value_name = "TFLOPS")]
    peak_tflops: Option<f64>,
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
        backend: BackendKind,
    ) -> Result<StepFlops> {
        use ebdiff_model::flops::count;
        let device = crate::device(backend)?;
        let cond = ebdiff_model::Conditioning::new(
            burn::tensor::Tensor::<1, burn::tensor::Int>::full([1], 0, &device),
        );
        let x = burn::tensor::Tensor::<2>::zeros([1, score.data_dim()], &device);
        let score_pass = count(|| score.init(timesteps, &device).eps(x.clone(), &cond)).1;
        let energy_pass = count(|| energy.init(timesteps, &device).energy_and_eps(x, &cond)).1;
        let b = batch as u64;
        Ok(StepFlops {
            score_pass: b * score_pass,
            energy_pass: b * energy_pass,
        })
    }
}

pub fn run(cmd: BenchCommand, backend: BackendKind) -> Result<()> {
    match cmd {
        BenchCommand::TrainStep(args) => train_step(args, backend),
        BenchCommand::Eval(args) => eval(args, backend),
        BenchCommand::DataParallel(args) => crate::bench_ranks::data_parallel(args, backend),
        BenchCommand::FidFeatures(args) => crate::bench_fid::fid_features(args, backend),
        BenchCommand::ProfileSteps(args) => crate::bench_profile::profile_steps(args, backend),
    }
}

/// Peak resident set size of this process so far (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct Timing {
    median: f64,
    min: f64,
    peak_rss: Option<f64>,
}

fn time_steps(
    cfg: &ModelConfig,
    timesteps: usize,
    args: &TrainStepArgs,
    backend: BackendKind,
) -> Result<Timing> {
    let device = crate::device(backend)?.autodiff();
    let schedule = ebdiff_core::ScheduleConfig::linear(timesteps).build();
    let mut model = cfg.init(timesteps, &device);
    let mut optim = AdamConfig::new().init();
    let dim = cfg.data_dim();
    let mut rng = stream(0, "bench");
    let mut times = Vec::new();
    for i in 0..args.warmup + args.iters {
        let x0: Vec<f32> = uniform_vec(&mut rng, args.batch * dim)
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
            .map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))?;
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let _ = model.num_params();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(Timing {
        median: times[times.len() / 2],
        min: times[0],
        peak_rss: peak_rss_mib(),
    })
}

fn train_step(args: TrainStepArgs, backend: BackendKind) -> Result<()> {
    anyhow::ensure!(
        args.iters >= 1 && args.batch >= 1,
        "--iters and --batch must be ≥ 1"
    );
    anyhow::ensure!(
        args.peak_tflops.is_none_or(|p| p > 0.0),
        "--peak-tflops must be a positive number of TFLOP/s (the device's peak at this --dtype)"
    );
    let (cfg, schedule) = ebdiff_trainer::config::ModelSection::load(args.config.as_deref())
        .map(|s| (s.model, s.diffusion))?;
    let timesteps = schedule.timesteps();
    let params = cfg.init(timesteps, &crate::device(backend)?).num_params();
    let dtype = crate::dtype();
    println!(
        "bench train-step: backend {backend}, dtype {dtype}, batch {}, data shape {:?}, {} parameters, warm-up {}, median of {}",
        args.batch, cfg.data_shape, params, args.warmup, args.iters
    );
    let mut score_cfg = cfg.clone();
    score_cfg.parameterization = ParameterizationKind::Eps;
    let mut energy_cfg = cfg.clone();
    energy_cfg.parameterization = ParameterizationKind::Energy;
    let score = time_steps(&score_cfg, timesteps, &args, backend)?;
    let energy = time_steps(&energy_cfg, timesteps, &args, backend)?;
    let flops = StepFlops::count(&score_cfg, &energy_cfg, timesteps, args.batch, backend)?;
    let step_flops = |pass: u64| ebdiff_model::flops::training_step(pass) as f64;
    let fmt_rss = |r: Option<f64>| {
        r.map(|v| format!("{v:.0} MiB"))
            .unwrap_or_else(|| "n/a".into())
    };
    println!(
        "{:<22} {:>10} {:>10} {:>12} {:>11} {:>10} {:>16}",
        "parameterization",
        "median s",
        "min s",
        "images/s",
        "GFLOP/step",
        "TFLOP/s",
        "peak RSS so far"
    );
    for (name, t, pass) in [
        ("score (eps)", &score, flops.score_pass),
        (
            &*format!("energy ({:?})", cfg.energy_form),
            &energy,
            flops.energy_pass,
        ),
    ] {
        println!(
            "{:<22} {:>10.4} {:>10.4} {:>12.1} {:>11.2} {:>10.4} {:>16}",
            name,
            t.median,
            t.min,
            args.batch as f64 / t.median,
            step_flops(pass) / 1e9,
            step_flops(pass) / t.median / 1e12,
            fmt_rss(t.peak_rss)
        );
    }
    println!(
        "(FLOPs counted from the architecture: the products of convolutions, linear maps and \
         attention, a multiply-add being 2; a step is 3× the forward pass, 3× forward + ∇ₓE VJP \
         for the energy)"
    );
    if let Some(peak) = args.peak_tflops {
        println!(
            "fraction of the {peak} TFLOP/s peak: score {:.1} %, energy {:.1} %",
            100.0 * step_flops(flops.score_pass) / score.median / 1e12 / peak,
            100.0 * step_flops(flops.energy_pass) / energy.median / 1e12 / peak
        );
    }
    println!(
        "energy/score step-time ratio: {:.2}",
        energy.median / score.median
    );
    let ours = serde_json::json!({
        "backend": backend.to_string(), "dtype": dtype.to_string(), "params": params,
        "batch": args.batch, "data_shape": cfg.data_shape,
        "score": { "median_s": score.median, "min_s": score.min,
                   "images_per_s": args.batch as f64 / score.median,
                   "flops_per_step": step_flops(flops.score_pass),
                   "tflops_per_s": step_flops(flops.score_pass) / score.median / 1e12 },
        "energy": { "median_s": energy.median, "min_s": energy.min,
                    "images_per_s": args.batch as f64 / energy.median,
                    "flops_per_step": step_flops(flops.energy_pass),
                    "tflops_per_s": step_flops(flops.energy_pass) / energy.median / 1e12 },
        "ratio": energy.median / score.median,
        "peak_tflops": args.peak_tflops,
    });
    let torch = match &args.compare_torch {
        Some(python) => Some(torch_train_step(python, &args)?),
        None => None,
    };
    if let Some(torch) = &torch {
        let t = |k: &str| torch[k]["median_s"].as_f64().unwrap_or(f64::NAN);
        println!(
            "\nside by side (PyTorch {} eager, {} threads, {} parameters):",
            torch["torch_version"].as_str().unwrap_or("?"),
            torch["threads"],
            torch["params"]
        );
        println!(
            "{:<12} {:>12} {:>12} {:>26}",
            "step", "ebdiff s", "PyTorch s", "ebdiff/PyTorch throughput"
        );
        for (name, ours_s, theirs_s) in [
            ("score", score.median, t("score")),
            ("energy", energy.median, t("energy")),
        ] {
            println!(
                "{name:<12} {ours_s:>12.4} {theirs_s:>12.4} {:>25.2}×",
                theirs_s / ours_s
            );
        }
        println!(
            "energy/score: ebdiff {:.2}, PyTorch {:.2}",
            energy.median / score.median,
            t("energy") / t("score")
        );
    }
    let profile = if args.profile {
        let exe = std::env::current_exe()?;
        let (p, step) = crate::bench_profile::profile_energy_steps(
            &exe,
            backend.name(),
            args.config.as_deref(),
            args.batch,
            args.profile_steps,
        )?;
        crate::bench_profile::print(
            &p,
            step,
            args.profile_steps,
            torch
                .as_ref()
                .and_then(|t| t.get("profile"))
                .filter(|v| !v.is_null()),
        );
        Some(
            serde_json::json!({ "profile": p, "step_seconds_one_thread": step,
                                 "steps": args.profile_steps }),
        )
    } else {
        None
    };
    if let Some(path) = &args.json {
        let all = serde_json::json!({ "ebdiff": ours, "torch": torch, "ebdiff_profile": profile });
        std::fs::write(path, serde_json::to_string_pretty(&all)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs `scripts/bench/torch_bench.py train-step` with the same config, batch, warm-up and
/// iterations, and returns its JSON.
fn torch_train_step(python: &Path, args: &TrainStepArgs) -> Result<serde_json::Value> {
    let config = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("configs/unet-small.toml"));
    let mut options = vec![
        ("--batch", args.batch.to_string()),
        ("--warmup", args.warmup.to_string()),
        ("--iters", args.iters.to_string()),
    ];
    if args.profile {
        // PyTorch's own profile of the same step, grouped by the same op kinds.
        options.push(("--profile", String::new()));
        options.push(("--profile-steps", args.profile_steps.to_string()));
    }
    run_torch_bench(python, "train-step", &config, &options)
}

/// Runs `scripts/bench/torch_bench.py COMMAND --config CONFIG OPTIONS --json TMP` and returns
/// the JSON it writes.
fn run_torch_bench(
    python: &Path,
    command: &str,
    config: &Path,
    options: &[(&str, String)],
) -> Result<serde_json::Value> {
    let out = std::env::temp_dir().join(format!("ebdiff-torch-bench-{}.json", std::process::id()));
    let mut cmd = std::process::Command::new(python);
    cmd.arg("scripts/bench/torch_bench.py")
        .arg(command)
        .arg("--config")
        .arg(config);
    for (flag, value) in options {
        cmd.arg(flag);
        if !value.is_empty() {
            cmd.arg(value);
        }
    }
    let status = cmd
        .arg("--json")
        .arg(&out)
        .status()
        .with_context(|| {
            format!(
                "cannot run {} (install: python3 -m venv .venv && .venv/bin/pip install torch safetensors numpy)",
                python.display()
            )
        })?;
    anyhow::ensure!(status.success(), "the PyTorch benchmark failed ({status})");
    let text = std::fs::read_to_string(&out)
        .with_context(|| format!("the PyTorch benchmark wrote no {}", out.display()))?;
    std::fs::remove_file(&out).ok();
    Ok(serde_json::from_str(&text)?)
}
