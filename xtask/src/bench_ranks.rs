//! `cargo xtask bench data-parallel`, launched alone or under `mpirun -np N`: time of a
//! data-parallel DSM step at a fixed global batch, split into the gradient all-reduce (host copy,
//! MPI, copy back) and the rest, and the bare MPI all-reduce time by buffer size. Run it with 1
//! and with N ranks to read the scaling efficiency: t(1) / (N · t(N)).

use anyhow::Result;
use burn::module::Module;
use burn::optim::GradientsParams;
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_core::rng::{stream_at, uniform_vec};
use ebdiff_trainer::data_parallel::all_reduce_gradients;
use ebdiff_trainer::{
    Batch, BatchSource, Control, EmaSchedule, LossWeighting, OptimizerKind, OptimizerSettings,
    TrainOptions, TrainState, dsm_loss, noise_batch, train_dsm_on,
};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct DataParallelArgs {
    /// Any config with a [model] table (default: configs/unet-small.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Global batch, split over the ranks.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, default_value_t = 8)]
    iters: usize,
    /// Bare all-reduce sizes in f32 values (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10000,100000,1000000,10000000"
    )]
    sizes: Vec<usize>,
    /// Also write the results as JSON (rank 0).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Uniform images in [−1, 1], a pure function of the step.
struct Synthetic {
    dim: usize,
}

impl BatchSource for Synthetic {
    fn dim(&self) -> usize {
        self.dim
    }
    fn batch(&self, step: u64, size: usize) -> Batch {
        let mut rng = stream_at(0, "bench-data-parallel", step);
        Batch {
            x: uniform_vec(&mut rng, size * self.dim)
                .into_iter()
                .map(|u| 2.0 * u - 1.0)
                .collect(),
            labels: None,
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

pub fn data_parallel(args: DataParallelArgs, backend: BackendKind) -> Result<()> {
    anyhow::ensure!(args.iters >= 1, "--iters must be ≥ 1");
    let group = crate::group();
    anyhow::ensure!(
        args.batch >= group.size(),
        "--batch {} is smaller than the {} ranks",
        args.batch,
        group.size()
    );
    let (cfg, diffusion) = ebdiff_trainer::config::ModelSection::load(args.config.as_deref())
        .map(|s| (s.model, s.diffusion))?;
    let device = crate::device(backend)?.autodiff();
    let schedule = diffusion.build();
    let model = ebdiff_model::seeded_init(&device, 0, || cfg.init(schedule.len(), &device));
    let params = model.num_params();
    let optimizer = OptimizerSettings {
        kind: OptimizerKind::Adam,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.0,
    };
    let opts = TrainOptions {
        steps: args.warmup + args.iters,
        batch_size: args.batch,
        grad_accum: 1,
        lr: 1e-4,
        lr_schedule: Default::default(),
        warmup_steps: 0,
        optimizer: optimizer.clone(),
        grad_clip: None,
        ema: EmaSchedule::Decay(0.999),
        loss_weighting: LossWeighting::Uniform,
        label_dropout: 0.0,
        num_classes: None,
        seed: 0,
    };
    let source = Synthetic {
        dim: cfg.data_dim(),
    };
    let threads = rayon_threads();
    if group.is_root() {
        println!(
            "bench data-parallel: backend {backend}, {} ranks ({}), {threads} compute threads per \
             rank, {:?} model, {params} parameters, global batch {} ({} per rank)",
            group.size(),
            group.describe(),
            cfg.data_shape,
            args.batch,
            group.share(args.batch).len()
        );
    }
    // Whole steps, as the training loop runs them.
    let mut step_times = Vec::new();
    let mut last = 0.0;
    let (state, result) = train_dsm_on(
        group.as_ref(),
        TrainState::new(model, &optimizer),
        &schedule,
        &source,
        &opts,
        |r, _| {
            if r.step as usize > args.warmup {
                step_times.push(r.seconds - last);
            }
            last = r.seconds;
            Control::Continue
        },
    );
    result.map_err(|e| anyhow::anyhow!("{e}"))?;
    // The all-reduce alone, on the gradients of one step of this rank's share.
    let mine = group.share(args.batch);
    let x0 = source.batch(0, args.batch).x;
    let mut rng = stream_at(0, "bench-noise", 0);
    let batch = noise_batch(&x0, source.dim, None, &schedule, &mut rng, &device)
        .slice(mine.start, mine.end);
    let grads =
        GradientsParams::from_grads(dsm_loss(&state.model, &batch).backward(), &state.model);
    let mut reduce_times = Vec::new();
    let mut grads = Some(grads);
    for i in 0..args.warmup + args.iters {
        group.barrier();
        let t0 = Instant::now();
        let (g, _) = all_reduce_gradients(group.as_ref(), &state.model, grads.take().unwrap(), 0.0);
        if i >= args.warmup {
            reduce_times.push(t0.elapsed().as_secs_f64());
        }
        grads = Some(g);
    }
    // Bare MPI all-reduce by size.
    let mut bare = Vec::new();
    for &n in &args.sizes {
        let mut buf = vec![1.0f32; n];
        let mut t = Vec::new();
        for i in 0..args.warmup + args.iters {
            group.barrier();
            let t0 = Instant::now();
            group.all_reduce_sum_f32(&mut buf);
            if i >= args.warmup {
                t.push(t0.elapsed().as_secs_f64());
            }
        }
        bare.push((n, median(t)));
    }
    let (step, reduce) = (median(step_times), median(reduce_times));
    if !group.is_root() {
        return Ok(());
    }
    println!(
        "step {:.1} ms median ({:.1} examples/s); gradient all-reduce {:.2} ms ({:.1} % of the \
         step; {:.2} ns per parameter)",
        step * 1e3,
        args.batch as f64 / step,
        reduce * 1e3,
        100.0 * reduce / step,
        reduce * 1e9 / params as f64
    );
    println!(
        "{:>12} {:>12} {:>14}",
        "f32 values", "all-reduce ms", "GB/s (payload)"
    );
    for (n, t) in &bare {
        println!(
            "{n:>12} {:>12.3} {:>14.2}",
            t * 1e3,
            (*n as f64 * 4.0) / t / 1e9
        );
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "ranks": group.size(),
            "mpi": group.describe(),
            "backend": backend.name(),
            "threads_per_rank": threads,
            "model_data_shape": cfg.data_shape,
            "parameters": params,
            "global_batch": args.batch,
            "step_seconds_median": step,
            "examples_per_second": args.batch as f64 / step,
            "gradient_all_reduce_seconds_median": reduce,
            "bare_all_reduce_seconds": bare.iter().map(|(n, t)| serde_json::json!({"values": n, "seconds": t})).collect::<Vec<_>>(),
            "iters": args.iters,
            "warmup": args.warmup,
            "ebdiff_version": env!("CARGO_PKG_VERSION"),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
        println!("→ {}", path.display());
    }
    Ok(())
}

/// Threads of the CPU backend's pool (`RAYON_NUM_THREADS`, else the cores).
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
