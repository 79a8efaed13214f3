//! `bench train-step --profile`: where the energy step's time goes on the CPU.
//!
//! The step runs in a child process ([`profile_steps`], one rayon thread so every sample is
//! work, not a parked worker) under `perf record`. The child marks, on the monotonic clock perf
//! also stamps samples with, when each phase of every timed step began and ended, after a device
//! sync. A sample's *phase* is the window its time falls in (exact, whatever the call stack); its
//! *operation* is read from its call stack (the Burn op or autodiff node that called the kernel);
//! its *kernel* is the leaf symbol ([`classify`]). Op kinds follow
//! `scripts/bench/torch_bench.py --profile`, so the two profiles sit side by side.
//! `EBDIFF_PROFILE_KEEP=FILE` keeps perf's decoded samples (`perf script` text, stacks leaf
//! first) for a closer look.

mod classify;

pub use classify::{KINDS, Marks, PHASES, Profile, classify};

use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use ebdiff_core::BackendKind;
use ebdiff_core::rng::{stream, uniform_vec};
use ebdiff_model::{DiffusionModel, Parameterization, ParameterizationKind};
use ebdiff_trainer::config::ModelSection;
use ebdiff_trainer::noise_batch;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The profiled child's options (its flags, which [`profile_energy_steps`] passes).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ProfileStepsOptions {
    #[cfg_attr(feature = "clap", arg(long))]
    pub config: Option<PathBuf>,
    #[cfg_attr(feature = "clap", arg(long))]
    pub batch: usize,
    #[cfg_attr(feature = "clap", arg(long))]
    pub steps: usize,
    /// Where the phase windows go (JSON).
    #[cfg_attr(feature = "clap", arg(long))]
    pub marks: PathBuf,
}

/// How to start the child that [`profile_energy_steps`] records: `program args…` must call
/// [`profile_steps`] on the flex device with the [`ProfileStepsOptions`] parsed from the flags
/// appended to it (`cargo xtask`'s child is `xtask --backend flex bench profile-steps`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileChild {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// A profile of the energy step: the JSON of `bench train-step --profile --json`.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    pub profile: Profile,
    /// The child's median step time (one thread).
    pub step_seconds_one_thread: f64,
    pub steps: usize,
}

/// CLOCK_MONOTONIC in ns: the clock of `perf record -k mono`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The child: one warm-up energy step, then `opts.steps` steps with every phase ended by a device
/// sync and marked into `opts.marks`. The steps run *on* a one-thread rayon pool: flex's parallel
/// loops then run inline on the calling thread, so a kernel's sample carries the op and layer
/// that called it (called from outside a pool, the work is handed to a worker whose stack starts
/// at `thread_start`).
pub fn profile_steps(opts: &ProfileStepsOptions, device: &Device) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .stack_size(256 << 20)
        .build()
        .context("cannot start the profiling thread")?
        .install(|| marked_steps(opts, device))
}

fn marked_steps(opts: &ProfileStepsOptions, device: &Device) -> Result<()> {
    let section = ModelSection::load(opts.config.as_deref())?;
    let mut cfg = section.model;
    cfg.parameterization = ParameterizationKind::Energy;
    let timesteps = section.diffusion.timesteps();
    let device = device.clone().autodiff();
    let schedule = ebdiff_core::ScheduleConfig::linear(timesteps).build();
    let mut model: DiffusionModel = cfg.init(timesteps, &device);
    let Parameterization::Energy(form) = model.parameterization else {
        bail!("the profiled model is not an energy model");
    };
    let mut optim = AdamConfig::new().init();
    let dim = cfg.data_dim();
    let mut rng = stream(0, "bench");
    let mut marks = Marks {
        windows: Vec::new(),
        step_seconds: Vec::new(),
    };
    let sync = || {
        device
            .sync()
            .map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))
    };
    for step in 0..1 + opts.steps.max(1) {
        let x0: Vec<f32> = uniform_vec(&mut rng, opts.batch * dim)
            .into_iter()
            .map(|u| 2.0 * u - 1.0)
            .collect();
        let started = Instant::now();
        let mut times = vec![monotonic_ns()];
        let batch = noise_batch(&x0, dim, None, &schedule, &mut rng, &device);
        sync()?;
        times.push(monotonic_ns());
        let (g, cache) = model
            .backbone
            .forward_cached(batch.x_t.clone(), &batch.cond);
        sync()?;
        times.push(monotonic_ns());
        let eps = DiffusionModel::head_grad(form, batch.x_t.clone(), g, &cache);
        sync()?;
        times.push(monotonic_ns());
        let loss = (eps - batch.eps.clone()).square().mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        drop(cache);
        sync()?;
        times.push(monotonic_ns());
        model = optim.step(1e-4, model, grads);
        sync()?;
        times.push(monotonic_ns());
        if step > 0 {
            marks.step_seconds.push(started.elapsed().as_secs_f64());
            for (phase, w) in times.windows(2).enumerate() {
                marks.windows.push((phase, w[0], w[1]));
            }
        }
    }
    let _ = model.num_params();
    std::fs::write(&opts.marks, serde_json::to_string(&marks)?)
        .with_context(|| format!("cannot write {}", opts.marks.display()))
}

/// Records `steps` energy steps of `child` under perf and returns the profile with the median
/// step time of the child (one thread).
pub fn profile_energy_steps(
    child: &ProfileChild,
    backend: BackendKind,
    config: Option<&Path>,
    batch: usize,
    steps: usize,
) -> Result<ProfileReport> {
    ensure_profiled_backend(backend)?;
    let perf_ok = Command::new("perf")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ensure!(
        perf_ok,
        "--profile needs Linux `perf` on PATH (Debian/Ubuntu: `apt-get install linux-perf` or \
         `linux-tools-$(uname -r)`)"
    );
    let dir = std::env::temp_dir().join(format!("ebdiff-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let data = dir.join("perf.data");
    let marks_path = dir.join("marks.json");
    let mut cmd = Command::new("perf");
    cmd.args(["record", "-q", "-k", "mono", "-F", "499", "--call-graph"])
        .arg(format!("dwarf,{STACK_BYTES}"))
        .arg("-o")
        .arg(&data)
        .arg("--")
        .arg(&child.program)
        .args(&child.args)
        .args(["--batch", &batch.to_string(), "--steps", &steps.to_string()])
        .arg("--marks")
        .arg(&marks_path)
        .env("RAYON_NUM_THREADS", "1");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    eprintln!("profiling {steps} energy steps under perf (one thread; this takes a while)...");
    let out = cmd.output().context("cannot start perf")?;
    if !out.status.success() || !marks_path.exists() {
        bail!(
            "perf record failed ({}): {}\nIf it says perf_event_paranoid, run as root or \
             `sysctl kernel.perf_event_paranoid=1`.",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let marks: Marks = serde_json::from_str(&std::fs::read_to_string(&marks_path)?)?;
    let script = Command::new("perf")
        .args(["script", "-F", "tid,time,ip,sym", "--ns", "-i"])
        .arg(&data)
        .output()
        .context("cannot run perf script")?;
    ensure!(
        script.status.success(),
        "perf script failed: {}",
        String::from_utf8_lossy(&script.stderr).trim()
    );
    let text = String::from_utf8_lossy(&script.stdout);
    if let Ok(keep) = std::env::var("EBDIFF_PROFILE_KEEP") {
        std::fs::write(&keep, text.as_bytes())?;
    }
    let profile = classify(&text, &marks);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ProfileReport {
        profile,
        step_seconds_one_thread: crate::timing::median(marks.step_seconds),
        steps,
    })
}

/// The profile samples CPU call stacks: only the flex backend has them.
pub fn ensure_profiled_backend(backend: BackendKind) -> Result<()> {
    ensure!(
        backend == BackendKind::Flex,
        "--profile samples CPU call stacks: it profiles the flex backend only (got --backend {backend})"
    );
    Ok(())
}

/// Bytes of user stack copied per sample; the deepest Burn stacks (autodiff backward → flex
/// conv → gemm) need more than perf's 8 KiB default.
const STACK_BYTES: usize = 65528;

impl ProfileReport {
    /// Writes ms per step (share of the samples × the child's step time) by kind, with
    /// PyTorch's profile of the same step beside it when given, then by op, phase, layer and
    /// kernel.
    pub fn write_table(
        &self,
        torch: Option<&serde_json::Value>,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let (p, step_seconds) = (&self.profile, self.step_seconds_one_thread);
        let ms = |n: usize| 1e3 * step_seconds * n as f64 / p.samples.max(1) as f64;
        let pct = |n: usize| 100.0 * n as f64 / p.samples.max(1) as f64;
        writeln!(
            out,
            "\nprofile of {} energy steps: flex on one thread, {:.3} s/step, {} perf samples \
             (ms/step = share of samples × step time)",
            self.steps, step_seconds, p.samples
        )?;
        let torch_kinds = torch.and_then(|t| t.get("kinds_ms_per_step"));
        if torch.is_some() {
            writeln!(
                out,
                "{:<32} {:>9} {:>7} {:>12} {:>7} {:>9}",
                "kind", "ebdiff ms", "share", "PyTorch ms", "share", "ratio"
            )?;
        } else {
            writeln!(out, "{:<32} {:>9} {:>7}", "kind", "ebdiff ms", "share")?;
        }
        let torch_total: f64 = torch_kinds
            .and_then(|k| k.as_object())
            .map(|o| o.values().filter_map(|v| v.as_f64()).sum())
            .unwrap_or(0.0);
        for kind in KINDS {
            let n = p.kinds.get(kind).copied().unwrap_or(0);
            let theirs = torch_kinds
                .and_then(|k| k.get(kind))
                .and_then(|v| v.as_f64());
            match theirs {
                Some(t) => writeln!(
                    out,
                    "{kind:<32} {:>9.1} {:>6.1}% {:>12.1} {:>6.1}% {:>8.2}×",
                    ms(n),
                    pct(n),
                    t,
                    100.0 * t / torch_total.max(1e-9),
                    ms(n) / t.max(1e-9)
                )?,
                None => writeln!(out, "{kind:<32} {:>9.1} {:>6.1}%", ms(n), pct(n))?,
            }
        }
        if let Some(t) = torch {
            writeln!(
                out,
                "{:<32} {:>9.1} {:>7} {:>12.1} {:>7} {:>8.2}×   (PyTorch: torch.profiler self CPU \
                 time, {} thread(s))",
                "total",
                1e3 * step_seconds,
                "",
                torch_total,
                "",
                1e3 * step_seconds / torch_total.max(1e-9),
                t.get("threads").cloned().unwrap_or_default()
            )?;
        }
        for (title, map) in [
            ("op (ours, finer)", &p.ops),
            ("phase", &p.phases),
            ("layer (forward and ∇ₓE phases)", &p.layers),
            ("kernel (leaf symbol)", &p.kernels),
        ] {
            writeln!(out, "\n{title:<40} {:>9} {:>7}", "ms/step", "share")?;
            let mut rows: Vec<_> = map.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1));
            for (name, &n) in rows {
                writeln!(out, "{name:<40} {:>9.1} {:>6.1}%", ms(n), pct(n))?;
            }
        }
        Ok(())
    }
}
