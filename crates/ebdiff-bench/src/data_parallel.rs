//! `cargo xtask bench data-parallel`, launched alone or under `mpirun -np N`: time of a
//! data-parallel DSM step at a fixed global batch, split into the gradient all-reduce (host copy,
//! MPI, copy back) and the rest, and the bare MPI all-reduce time by buffer size. Run it with 1
//! and with N ranks to read the scaling efficiency: t(1) / (N · t(N)).

use crate::json_file::write_json;
use crate::timing::median;
use anyhow::{Result, anyhow, ensure};
use burn::module::Module;
use burn::optim::GradientsParams;
use ebdiff_core::rng::{stream_at, uniform_vec};
use ebdiff_core::{Collective, NamedDevice};
use ebdiff_trainer::data_parallel::all_reduce_gradients;
use ebdiff_trainer::{
    Batch, BatchSource, Control, EmaSchedule, LossWeighting, OptimizerKind, OptimizerSettings,
    TrainOptions, TrainState, dsm_loss, noise_batch, train_dsm_on,
};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// The network, global batch, repetitions and all-reduce sizes of [`data_parallel`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DataParallelOptions {
    /// Any config with a [model] table (default: configs/unet-small.toml).
    #[cfg_attr(feature = "clap", arg(long))]
    pub config: Option<PathBuf>,
    /// Global batch, split over the ranks.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DataParallelOptions::default().batch))]
    pub batch: usize,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DataParallelOptions::default().warmup))]
    pub warmup: usize,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = DataParallelOptions::default().iters))]
    pub iters: usize,
    /// Bare all-reduce sizes in f32 values (comma-separated).
    // The default as text, so that --help lists it comma-separated; xtask/tests/options.rs
    // checks it against `Default`.
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            value_delimiter = ',',
            default_value = "10000,100000,1000000,10000000"
        )
    )]
    pub sizes: Vec<usize>,
    /// Also write the results as JSON (rank 0).
    #[cfg_attr(feature = "clap", arg(long))]
    pub json: Option<PathBuf>,
}

impl Default for DataParallelOptions {
    fn default() -> Self {
        DataParallelOptions {
            config: None,
            batch: 16,
            warmup: 2,
            iters: 8,
            sizes: vec![10_000, 100_000, 1_000_000, 10_000_000],
            json: None,
        }
    }
}

/// Median time of the bare all-reduce of `values` f32s.
#[derive(Debug, Clone, Serialize)]
pub struct AllReduceTiming {
    pub values: usize,
    pub seconds: f64,
}

/// What [`data_parallel`] measured (rank 0): the JSON that `--json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct DataParallelReport {
    pub ranks: usize,
    /// The group as it describes itself (MPI library, or one process).
    pub mpi: String,
    pub backend: String,
    pub threads_per_rank: usize,
    pub model_data_shape: Vec<usize>,
    pub parameters: usize,
    pub global_batch: usize,
    pub step_seconds_median: f64,
    pub examples_per_second: f64,
    pub gradient_all_reduce_seconds_median: f64,
    pub bare_all_reduce_seconds: Vec<AllReduceTiming>,
    pub iters: usize,
    pub warmup: usize,
    pub ebdiff_version: String,
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

/// `cargo xtask bench data-parallel`: every rank of `group` calls it with the same options;
/// each times whole data-parallel steps of its share of the global batch as the training loop
/// runs them, the gradient all-reduce alone, and the bare all-reduce by size. Rank 0 writes the
/// table to `out` (and `opts.json`) and returns the numbers; the other ranks return `None`.
///
/// ```no_run
/// use ebdiff_bench::{DataParallelOptions, data_parallel};
/// use ebdiff_core::{NamedDevice, Solo};
///
/// let opts = DataParallelOptions {
///     sizes: vec![1_000_000],
///     ..DataParallelOptions::default()
/// };
/// let report = data_parallel(&opts, &NamedDevice::cpu(), &Solo, &mut std::io::stdout())?;
/// let one = report.expect("one process is rank 0");
/// println!("{:.1} examples/s", one.examples_per_second);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn data_parallel(
    opts: &DataParallelOptions,
    on: &NamedDevice,
    group: &dyn Collective,
    out: &mut dyn Write,
) -> Result<Option<DataParallelReport>> {
    ensure!(opts.iters >= 1, "--iters must be ≥ 1");
    ensure!(
        opts.batch >= group.size(),
        "--batch {} is smaller than the {} ranks",
        opts.batch,
        group.size()
    );
    let (cfg, diffusion) = ebdiff_trainer::config::ModelSection::load(opts.config.as_deref())
        .map(|s| (s.model, s.diffusion))?;
    let device = on.device.clone().autodiff();
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
    let train = TrainOptions {
        steps: opts.warmup + opts.iters,
        batch_size: opts.batch,
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
        writeln!(
            out,
            "bench data-parallel: backend {}, {} ranks ({}), {threads} compute threads per \
             rank, {:?} model, {params} parameters, global batch {} ({} per rank)",
            on.backend,
            group.size(),
            group.describe(),
            cfg.data_shape,
            opts.batch,
            group.share(opts.batch).len()
        )?;
    }
    // Whole steps, as the training loop runs them.
    let mut step_times = Vec::new();
    let mut last = 0.0;
    let (state, result) = train_dsm_on(
        group,
        TrainState::new(model, &optimizer),
        &schedule,
        &source,
        &train,
        |r, _| {
            if r.step as usize > opts.warmup {
                step_times.push(r.seconds - last);
            }
            last = r.seconds;
            Control::Continue
        },
    );
    result.map_err(|e| anyhow!("{e}"))?;
    // The all-reduce alone, on the gradients of one step of this rank's share.
    let mine = group.share(opts.batch);
    let x0 = source.batch(0, opts.batch).x;
    let mut rng = stream_at(0, "bench-noise", 0);
    let batch = noise_batch(&x0, source.dim, None, &schedule, &mut rng, &device)
        .slice(mine.start, mine.end);
    let grads =
        GradientsParams::from_grads(dsm_loss(&state.model, &batch).backward(), &state.model);
    let mut reduce_times = Vec::new();
    let mut grads = Some(grads);
    for i in 0..opts.warmup + opts.iters {
        group.barrier();
        let t0 = Instant::now();
        let (g, _) = all_reduce_gradients(group, &state.model, grads.take().unwrap(), 0.0);
        if i >= opts.warmup {
            reduce_times.push(t0.elapsed().as_secs_f64());
        }
        grads = Some(g);
    }
    // Bare MPI all-reduce by size.
    let mut bare = Vec::new();
    for &n in &opts.sizes {
        let mut buf = vec![1.0f32; n];
        let mut t = Vec::new();
        for i in 0..opts.warmup + opts.iters {
            group.barrier();
            let t0 = Instant::now();
            group.all_reduce_sum_f32(&mut buf);
            if i >= opts.warmup {
                t.push(t0.elapsed().as_secs_f64());
            }
        }
        bare.push(AllReduceTiming {
            values: n,
            seconds: median(t),
        });
    }
    let (step, reduce) = (median(step_times), median(reduce_times));
    if !group.is_root() {
        return Ok(None);
    }
    writeln!(
        out,
        "step {:.1} ms median ({:.1} examples/s); gradient all-reduce {:.2} ms ({:.1} % of the \
         step; {:.2} ns per parameter)",
        step * 1e3,
        opts.batch as f64 / step,
        reduce * 1e3,
        100.0 * reduce / step,
        reduce * 1e9 / params as f64
    )?;
    writeln!(
        out,
        "{:>12} {:>12} {:>14}",
        "f32 values", "all-reduce ms", "GB/s (payload)"
    )?;
    for b in &bare {
        writeln!(
            out,
            "{:>12} {:>12.3} {:>14.2}",
            b.values,
            b.seconds * 1e3,
            (b.values as f64 * 4.0) / b.seconds / 1e9
        )?;
    }
    let report = DataParallelReport {
        ranks: group.size(),
        mpi: group.describe(),
        backend: on.backend.name().to_string(),
        threads_per_rank: threads,
        model_data_shape: cfg.data_shape.clone(),
        parameters: params,
        global_batch: opts.batch,
        step_seconds_median: step,
        examples_per_second: opts.batch as f64 / step,
        gradient_all_reduce_seconds_median: reduce,
        bare_all_reduce_seconds: bare,
        iters: opts.iters,
        warmup: opts.warmup,
        ebdiff_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    if let Some(path) = &opts.json {
        write_json(path, &report)?;
        writeln!(out, "→ {}", path.display())?;
    }
    Ok(Some(report))
}

/// Threads of the CPU backend's pool (`RAYON_NUM_THREADS`, else the cores).
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
