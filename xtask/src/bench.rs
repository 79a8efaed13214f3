//! `cargo xtask bench train-step`: optimizer-step time of the score vs the energy
//! parameterization of the same network (warm-up, then median of N).

use anyhow::Result;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use clap::{Args, Subcommand};
use ebdiff_core::BackendKind;
use ebdiff_core::rng::{stream, uniform_vec};
use ebdiff_model::{ModelConfig, ParameterizationKind};
use ebdiff_trainer::{dsm_loss, noise_batch};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time one DSM optimizer step (forward, VJP for energies, backward, Adam).
    TrainStep(TrainStepArgs),
    /// Time one sampling-time evaluation, energy and ∇ₓE (no autodiff), per batch size.
    Eval(EvalArgs),
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
}

fn eval(args: EvalArgs, backend: BackendKind) -> Result<()> {
    let (cfg, schedule) = ebdiff_trainer::config::ModelSection::load(args.config.as_deref())
        .map(|s| (s.model, s.diffusion))?;
    let device = backend.device().map_err(anyhow::Error::msg)?;
    let model = cfg.init(schedule.timesteps(), &device);
    let dim = cfg.data_dim();
    let mut rng = stream(0, "bench-eval");
    println!(
        "bench eval: backend {backend}, {:?} model, data shape {:?}",
        model.parameterization, cfg.data_shape
    );
    println!("{:>8} {:>12} {:>14}", "batch", "median ms", "examples/s");
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
    }
    Ok(())
}

#[derive(Args)]
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
}

pub fn run(cmd: BenchCommand, backend: BackendKind) -> Result<()> {
    match cmd {
        BenchCommand::TrainStep(args) => train_step(args, backend),
        BenchCommand::Eval(args) => eval(args, backend),
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
    let device = backend.device().map_err(anyhow::Error::msg)?.autodiff();
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
    let (cfg, schedule) = ebdiff_trainer::config::ModelSection::load(args.config.as_deref())
        .map(|s| (s.model, s.diffusion))?;
    let timesteps = schedule.timesteps();
    let params = cfg
        .init(timesteps, &backend.device().map_err(anyhow::Error::msg)?)
        .num_params();
    println!(
        "bench train-step: backend {backend}, batch {}, data shape {:?}, {} parameters, warm-up {}, median of {}",
        args.batch, cfg.data_shape, params, args.warmup, args.iters
    );
    let mut score_cfg = cfg.clone();
    score_cfg.parameterization = ParameterizationKind::Eps;
    let mut energy_cfg = cfg.clone();
    energy_cfg.parameterization = ParameterizationKind::Energy;
    let score = time_steps(&score_cfg, timesteps, &args, backend)?;
    let energy = time_steps(&energy_cfg, timesteps, &args, backend)?;
    let fmt_rss = |r: Option<f64>| {
        r.map(|v| format!("{v:.0} MiB"))
            .unwrap_or_else(|| "n/a".into())
    };
    println!(
        "{:<22} {:>10} {:>10} {:>12} {:>16}",
        "parameterization", "median s", "min s", "images/s", "peak RSS so far"
    );
    for (name, t) in [
        ("score (eps)", &score),
        (&*format!("energy ({:?})", cfg.energy_form), &energy),
    ] {
        println!(
            "{:<22} {:>10.4} {:>10.4} {:>12.1} {:>16}",
            name,
            t.median,
            t.min,
            args.batch as f64 / t.median,
            fmt_rss(t.peak_rss)
        );
    }
    println!(
        "energy/score step-time ratio: {:.2}",
        energy.median / score.median
    );
    Ok(())
}
