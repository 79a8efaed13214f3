//! `cargo xtask bench eval`: time of one sampling-time evaluation of the model, energy and ∇ₓE
//! for energy models, ε for score models (no autodiff), per batch size; on request PyTorch's
//! energy + ∇ₓE (autograd) beside it.

use crate::timing::median;
use crate::torch::run_torch_bench;
use crate::train_step::TORCH_PACKAGES;
use anyhow::Result;
use burn::tensor::{Int, Tensor};
use ebdiff_core::NamedDevice;
use ebdiff_core::rng::{randn, stream};
use ebdiff_model::Conditioning;
use ebdiff_trainer::config::ModelSection;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// The network, batch sizes and repetitions of [`eval`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct EvalOptions {
    /// Any config with a [model] table (default: configs/unet-small.toml).
    #[cfg_attr(feature = "clap", arg(long))]
    pub config: Option<PathBuf>,
    /// Batch sizes (comma-separated).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_delimiter = ',', default_values_t = EvalOptions::default().batch)
    )]
    pub batch: Vec<usize>,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = EvalOptions::default().warmup))]
    pub warmup: usize,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = EvalOptions::default().iters))]
    pub iters: usize,
    /// Also run the PyTorch twin's energy + ∇ₓE (autograd) with this Python, in the same run.
    #[cfg_attr(feature = "clap", arg(long, value_name = "PYTHON"))]
    pub compare_torch: Option<PathBuf>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            config: None,
            batch: vec![16],
            warmup: 2,
            iters: 10,
            compare_torch: None,
        }
    }
}

/// Median time of one evaluation at one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct EvalTiming {
    pub batch: usize,
    pub median_s: f64,
}

impl EvalTiming {
    pub fn examples_per_s(&self) -> f64 {
        self.batch as f64 / self.median_s
    }
}

/// What [`eval`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// One per batch size, in the order given.
    pub ebdiff: Vec<EvalTiming>,
    /// `torch_bench.py eval`'s JSON, with `compare_torch`.
    pub torch: Option<serde_json::Value>,
}

/// `cargo xtask bench eval`: times `opts.iters` evaluations (after `opts.warmup`) of the config's
/// model at every batch size on `on`, writes the table to `out` and returns the times.
///
/// ```no_run
/// use ebdiff_bench::{EvalOptions, eval};
/// use ebdiff_core::NamedDevice;
///
/// let opts = EvalOptions {
///     batch: vec![1, 100, 1000],
///     ..EvalOptions::default()
/// };
/// let report = eval(&opts, &NamedDevice::cpu(), &mut std::io::sink())?;
/// for t in &report.ebdiff {
///     println!("batch {}: {:.0} examples/s", t.batch, t.examples_per_s());
/// }
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn eval(opts: &EvalOptions, on: &NamedDevice, out: &mut dyn Write) -> Result<EvalReport> {
    anyhow::ensure!(
        opts.iters >= 1 && opts.batch.iter().all(|&b| b >= 1),
        "--iters and every --batch must be ≥ 1"
    );
    let (cfg, schedule) =
        ModelSection::load(opts.config.as_deref()).map(|s| (s.model, s.diffusion))?;
    let device = &on.device;
    let model = cfg.init(schedule.timesteps(), device);
    let dim = cfg.data_dim();
    let mut rng = stream(0, "bench-eval");
    writeln!(
        out,
        "bench eval: backend {}, {:?} model, data shape {:?}",
        on.backend, model.parameterization, cfg.data_shape
    )?;
    writeln!(
        out,
        "{:>8} {:>12} {:>14}",
        "batch", "median ms", "examples/s"
    )?;
    let mut ours = Vec::new();
    for &b in &opts.batch {
        let x = randn(&mut rng, [b, dim], device);
        let cond = Conditioning::new(Tensor::<1, Int>::full([b], 10, device));
        let mut times = Vec::new();
        for i in 0..opts.warmup + opts.iters {
            let start = Instant::now();
            let eps = if model.is_energy() {
                model.energy_and_eps(x.clone(), &cond).1
            } else {
                model.eps(x.clone(), &cond)
            };
            let _ = eps.sum().into_scalar::<f32>();
            if i >= opts.warmup {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        let timing = EvalTiming {
            batch: b,
            median_s: median(times),
        };
        writeln!(
            out,
            "{b:>8} {:>12.2} {:>14.0}",
            timing.median_s * 1e3,
            timing.examples_per_s()
        )?;
        ours.push(timing);
    }
    let torch = match &opts.compare_torch {
        Some(python) => {
            let torch = torch_eval(python, opts)?;
            write_torch_comparison(&torch, &ours, out)?;
            Some(torch)
        }
        None => None,
    };
    Ok(EvalReport {
        ebdiff: ours,
        torch,
    })
}

/// Runs `scripts/bench/torch_bench.py eval` with the same config, batches and repetitions.
fn torch_eval(python: &std::path::Path, opts: &EvalOptions) -> Result<serde_json::Value> {
    let batches: Vec<String> = opts.batch.iter().map(|b| b.to_string()).collect();
    let config = opts
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("configs/unet-small.toml"));
    run_torch_bench(
        python,
        "eval",
        &[
            ("--config", config.display().to_string()),
            ("--batch", batches.join(",")),
            ("--warmup", opts.warmup.to_string()),
            ("--iters", opts.iters.to_string()),
        ],
        TORCH_PACKAGES,
    )
}

fn write_torch_comparison(
    torch: &serde_json::Value,
    ours: &[EvalTiming],
    out: &mut dyn Write,
) -> Result<()> {
    writeln!(
        out,
        "\nside by side, energy + ∇ₓE (PyTorch {} eager, autograd, {} threads):",
        torch["torch_version"].as_str().unwrap_or("?"),
        torch["threads"]
    )?;
    writeln!(
        out,
        "{:>8} {:>14} {:>14} {:>26}",
        "batch", "ebdiff ex/s", "PyTorch ex/s", "ebdiff/PyTorch throughput"
    )?;
    let theirs = torch["batches"].as_array().cloned().unwrap_or_default();
    for (t, theirs) in ours.iter().zip(theirs) {
        let theirs_s = theirs["median_ms"].as_f64().unwrap_or(f64::NAN) / 1e3;
        writeln!(
            out,
            "{:>8} {:>14.0} {:>14.0} {:>25.2}×",
            t.batch,
            t.examples_per_s(),
            t.batch as f64 / theirs_s,
            theirs_s / t.median_s
        )?;
    }
    Ok(())
}
