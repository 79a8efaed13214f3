//! `bench train-step --profile`: where the energy step's time goes on the CPU.
//!
//! The step runs in a child process (`bench profile-steps`, one rayon thread so every sample is
//! work, not a parked worker) under `perf record`. The child marks, on the monotonic clock perf
//! also stamps samples with, when each phase of every timed step began and ended, after a device
//! sync. A sample's *phase* is the window its time falls in (exact, whatever the call stack); its
//! *operation* is read from its call stack (the Burn op or autodiff node that called the kernel);
//! its *kernel* is the leaf symbol. Op kinds follow `scripts/bench/torch_bench.py --profile`, so
//! the two profiles sit side by side. `EBDIFF_PROFILE_KEEP=FILE` keeps perf's decoded samples
//! (`perf script` text, stacks leaf first) for a closer look.

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_core::rng::{stream, uniform_vec};
use ebdiff_model::{DiffusionModel, Parameterization, ParameterizationKind};
use ebdiff_trainer::noise_batch;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The phases of one energy step, in order (the names torch_bench.py's record_function uses).
pub const PHASES: [&str; 5] = [
    "noise batch",
    "energy forward",
    "∇ₓE (VJP)",
    "loss + backward",
    "optimizer",
];

/// The profiled child of `bench train-step --profile` (not for direct use).
#[derive(Args)]
pub struct ProfileStepsArgs {
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    batch: usize,
    #[arg(long)]
    steps: usize,
    /// Where the phase windows go (JSON).
    #[arg(long)]
    marks: PathBuf,
}

/// What the child writes: per timed step, per phase, [start, end) in CLOCK_MONOTONIC ns.
#[derive(Serialize, Deserialize)]
struct Marks {
    windows: Vec<(usize, u64, u64)>,
    step_seconds: Vec<f64>,
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One warm-up energy step, then `steps` steps with every phase ended by a device sync and
/// marked. The steps run *on* a one-thread rayon pool: flex's parallel loops then run inline on
/// the calling thread, so a kernel's sample carries the op and layer that called it (called from
/// outside a pool, the work is handed to a worker whose stack starts at `thread_start`).
pub fn profile_steps(args: ProfileStepsArgs, backend: BackendKind) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .stack_size(256 << 20)
        .build()
        .context("cannot start the profiling thread")?
        .install(|| marked_steps(args, backend))
}

fn marked_steps(args: ProfileStepsArgs, backend: BackendKind) -> Result<()> {
    let section = ebdiff_trainer::config::ModelSection::load(args.config.as_deref())?;
    let mut cfg = section.model;
    cfg.parameterization = ParameterizationKind::Energy;
    let timesteps = section.diffusion.timesteps();
    let device = backend.device().map_err(anyhow::Error::msg)?.autodiff();
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
    for step in 0..1 + args.steps.max(1) {
        let x0: Vec<f32> = uniform_vec(&mut rng, args.batch * dim)
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
    std::fs::write(&args.marks, serde_json::to_string(&marks)?)
        .with_context(|| format!("cannot write {}", args.marks.display()))
}

/// Records `steps` energy steps of the child under perf and returns the table and the median
/// step time of the child (one thread).
pub fn profile_energy_steps(
    exe: &Path,
    backend: &str,
    config: Option<&Path>,
    batch: usize,
    steps: usize,
) -> Result<(Profile, f64)> {
    anyhow::ensure!(
        backend == "flex",
        "--profile samples CPU call stacks: it profiles the flex backend only (got --backend {backend})"
    );
    let perf_ok = Command::new("perf")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    anyhow::ensure!(
        perf_ok,
        "--profile needs Linux `perf` on PATH (Debian/Ubuntu: `apt-get install linux-perf` or \
         `linux-tools-$(uname -r)`)"
    );
    let dir = tempfile_dir()?;
    let data = dir.join("perf.data");
    let marks_path = dir.join("marks.json");
    let mut cmd = Command::new("perf");
    cmd.args(["record", "-q", "-k", "mono", "-F", "499", "--call-graph"])
        .arg(format!("dwarf,{STACK_BYTES}"))
        .arg("-o")
        .arg(&data)
        .arg("--")
        .arg(exe)
        .args(["--backend", backend, "bench", "profile-steps"])
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
    anyhow::ensure!(
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
    let mut step = marks.step_seconds.clone();
    step.sort_by(f64::total_cmp);
    Ok((profile, step[step.len() / 2]))
}

/// Bytes of user stack copied per sample; the deepest Burn stacks (autodiff backward → flex
/// conv → gemm) need more than perf's 8 KiB default.
const STACK_BYTES: usize = 65528;

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ebdiff-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The op kinds of `torch_bench.py --profile`, in its order, so the tables line up.
pub const KINDS: [&str; 7] = [
    "conv forward",
    "conv backward / weight grads",
    "norms (GroupNorm/LayerNorm)",
    "attention / matmul",
    "elementwise & reductions",
    "optimizer",
    "other",
];

/// Sample counts of the profiled steps by phase, op, kind, layer and leaf kernel.
#[derive(Serialize, Default)]
pub struct Profile {
    /// Samples inside the timed steps' phase windows.
    pub samples: usize,
    /// Phase (`PHASES`) → samples.
    pub phases: BTreeMap<String, usize>,
    /// Op (finer than a kind: which conv, whose gradient) → samples.
    pub ops: BTreeMap<String, usize>,
    /// Kind (`KINDS`) → samples.
    pub kinds: BTreeMap<String, usize>,
    /// Model layer (forward and ∇ₓE phases only; backward samples carry no layer) → samples.
    pub layers: BTreeMap<String, usize>,
    /// Leaf kernel family → samples.
    pub kernels: BTreeMap<String, usize>,
}

fn classify(text: &str, marks: &Marks) -> Profile {
    let mut p = Profile::default();
    for sample in parse_samples(text) {
        let Some(phase) = phase_at(marks, sample.time_ns) else {
            continue;
        };
        p.samples += 1;
        let op = op_of(phase, &sample.frames);
        *p.phases.entry(PHASES[phase].into()).or_default() += 1;
        *p.kinds.entry(kind_of(op).into()).or_default() += 1;
        *p.ops.entry(op.into()).or_default() += 1;
        if let Some(layer) = layer_of(&sample.frames) {
            *p.layers.entry(layer).or_default() += 1;
        }
        *p.kernels
            .entry(kernel_of(&sample.frames).into())
            .or_default() += 1;
    }
    p
}

/// The op a sample works for, read from its stack (any frame, leaf first).
fn op_of(phase: usize, frames: &[String]) -> &'static str {
    let has = |needle: &str| frames.iter().any(|f| f.contains(needle));
    // Burn's default conv backward helpers (burn-backend modules/conv.rs) name the gradient.
    if PHASES[phase] == "optimizer" || has("burn_optim::") {
        "optimizer (Adam)"
    } else if has("conv2d_weight_backward") || has("conv_transpose2d_weight_backward") {
        "conv weight gradients"
    } else if has("conv2d_bias_backward") || has("conv_transpose2d_bias_backward") {
        "conv bias gradients"
    } else if has("conv2d_x_backward") || has("conv_transpose2d_x_backward") {
        "conv input gradients (backward)"
    } else if has(">::conv_transpose2d") || has(">::conv2d") {
        match PHASES[phase] {
            "energy forward" => "conv forward",
            "∇ₓE (VJP)" => "conv VJP (∇ₓ, in the graph)",
            _ => "conv, other",
        }
    } else if has("ebdiff_model::layers::norm::") && PHASES[phase] != "loss + backward" {
        "norms (forward and VJP)"
    } else if has("burn_flex::ops::matmul") {
        "matmul (attention, linear)"
    } else if has("burn_flex::ops::") {
        "elementwise & reductions"
    } else if has("burn_autodiff::") {
        "autodiff bookkeeping"
    } else {
        "other"
    }
}

fn kind_of(op: &str) -> &'static str {
    match op {
        "conv forward" => KINDS[0],
        o if o.starts_with("conv") => KINDS[1],
        o if o.starts_with("norms") => KINDS[2],
        o if o.starts_with("matmul") => KINDS[3],
        "elementwise & reductions" => KINDS[4],
        o if o.starts_with("optimizer") => KINDS[5],
        _ => KINDS[6],
    }
}

/// `ebdiff_model::layers::conv::…` → `conv`, from the innermost model-layer frame.
fn layer_of(frames: &[String]) -> Option<String> {
    frames.iter().find_map(|f| {
        let rest = &f[f.find("ebdiff_model::layers::")? + "ebdiff_model::layers::".len()..];
        Some(rest.split("::").next()?.to_string())
    })
}

/// The family of the leaf symbol: what the CPU was executing.
fn kernel_of(frames: &[String]) -> &'static str {
    // Closures that rayon calls (flex's parallel loops, inlined) are named by the frame that
    // made them; gemm's thread-local buffers likewise.
    let generic = |f: &&String| {
        ["core::ops::function", "rayon", "std::thread::local"]
            .iter()
            .any(|g| f.contains(g))
    };
    let leaf = frames
        .iter()
        .find(|f| !generic(f))
        .or(frames.first())
        .map(String::as_str)
        .unwrap_or("");
    let any = |needles: &[&str]| needles.iter().any(|n| leaf.contains(n));
    if any(&["gemm_f32", "gemm_common", "gemm::"]) {
        "gemm (matrix multiply)"
    } else if any(&["burn_flex::ops::conv"]) {
        "direct conv loops (im2col, col2im)"
    } else if any(&[
        "memcpy",
        "memmove",
        "copy_2d_tiled",
        "StridedIter",
        "Clone>::clone",
    ]) {
        "copies & layout changes"
    } else if any(&[
        "malloc",
        "free",
        "memset",
        "page",
        "clear_page",
        "mem_cgroup",
        "memcg",
        "mm_",
    ]) {
        "allocation, zeroing & page faults"
    } else if any(&[
        "burn_flex::",
        "macerator",
        "expf",
        "asuint",
        "FnMut<A> for &F",
        "zip",
    ]) {
        "elementwise & reduction loops"
    } else if any(&["rayon", "futex", "sched", "LocalKey"]) {
        "threads & scheduling"
    } else if any(&[
        "burn_autodiff",
        "hashbrown",
        "Arc<",
        "btree",
        "burn_tensor",
        "burn_dispatch",
    ]) {
        "autodiff graph & dispatch"
    } else {
        "other"
    }
}

struct Sample {
    time_ns: u64,
    /// Symbols, leaf first.
    frames: Vec<String>,
}

/// `perf script -F tid,time,ip,sym --ns`: a header line `TID SECONDS.NANOS:` then one line per
/// frame (`ADDR SYMBOL+OFF`), then a blank line.
fn parse_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut current: Option<Sample> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            out.extend(current.take());
            continue;
        }
        if !line.starts_with(char::is_whitespace) || trimmed.ends_with(':') && current.is_none() {
            out.extend(current.take());
            let time = trimmed
                .split_whitespace()
                .nth(1)
                .and_then(|t| t.trim_end_matches(':').split_once('.'))
                .and_then(|(s, ns)| {
                    Some(s.parse::<u64>().ok()? * 1_000_000_000 + ns.parse::<u64>().ok()?)
                });
            current = time.map(|time_ns| Sample {
                time_ns,
                frames: Vec::new(),
            });
            continue;
        }
        if let Some(s) = current.as_mut() {
            let sym = trimmed
                .split_once(' ')
                .map(|(_, s)| s)
                .unwrap_or("[unknown]");
            let sym = sym.rsplit_once("+0x").map(|(s, _)| s).unwrap_or(sym);
            s.frames.push(sym.to_string());
        }
    }
    out.extend(current);
    out
}

fn phase_at(marks: &Marks, t: u64) -> Option<usize> {
    marks
        .windows
        .iter()
        .find(|(_, a, b)| *a <= t && t < *b)
        .map(|(phase, _, _)| *phase)
}

/// Prints ms per step (share of the samples × the child's step time) by kind, with PyTorch's
/// profile of the same step beside it when given, then by op, phase, layer and kernel.
pub fn print(p: &Profile, step_seconds: f64, steps: usize, torch: Option<&serde_json::Value>) {
    let ms = |n: usize| 1e3 * step_seconds * n as f64 / p.samples.max(1) as f64;
    let pct = |n: usize| 100.0 * n as f64 / p.samples.max(1) as f64;
    println!(
        "\nprofile of {steps} energy steps: flex on one thread, {:.3} s/step, {} perf samples \
         (ms/step = share of samples × step time)",
        step_seconds, p.samples
    );
    let torch_kinds = torch.and_then(|t| t.get("kinds_ms_per_step"));
    if torch.is_some() {
        println!(
            "{:<32} {:>9} {:>7} {:>12} {:>7} {:>9}",
            "kind", "ebdiff ms", "share", "PyTorch ms", "share", "ratio"
        );
    } else {
        println!("{:<32} {:>9} {:>7}", "kind", "ebdiff ms", "share");
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
            Some(t) => println!(
                "{kind:<32} {:>9.1} {:>6.1}% {:>12.1} {:>6.1}% {:>8.2}×",
                ms(n),
                pct(n),
                t,
                100.0 * t / torch_total.max(1e-9),
                ms(n) / t.max(1e-9)
            ),
            None => println!("{kind:<32} {:>9.1} {:>6.1}%", ms(n), pct(n)),
        }
    }
    if let Some(t) = torch {
        println!(
            "{:<32} {:>9.1} {:>7} {:>12.1} {:>7} {:>8.2}×   (PyTorch: torch.profiler self CPU time, \
             {} thread(s))",
            "total",
            1e3 * step_seconds,
            "",
            torch_total,
            "",
            1e3 * step_seconds / torch_total.max(1e-9),
            t.get("threads").cloned().unwrap_or_default()
        );
    }
    for (title, map) in [
        ("op (ours, finer)", &p.ops),
        ("phase", &p.phases),
        ("layer (forward and ∇ₓE phases)", &p.layers),
        ("kernel (leaf symbol)", &p.kernels),
    ] {
        println!("\n{title:<40} {:>9} {:>7}", "ms/step", "share");
        let mut rows: Vec<_> = map.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1));
        for (name, &n) in rows {
            println!("{name:<40} {:>9.1} {:>6.1}%", ms(n), pct(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two samples as `perf script -F tid,time,ip,sym --ns` prints them (frames abridged from a
    /// real run): a weight gradient in the backward, a conv VJP from the model.
    const SCRIPT: &str = "\
24795 56363.000000100: 
\t         16fbad3 gemm_f32::microkernel::fma::f32::x2x6+0x13
\t         1167f2f core::ops::function::impls::<impl core::ops::function::FnMut<A> for &F>::call_mut
\t         11adf89 burn_flex::ops::conv::gemm_f32
\t         11c0037 burn_flex::ops::module::<impl burn_backend::backend::ops::modules::base::ModuleOps<burn_flex::backend::Flex> for burn_flex::backend::Flex>::conv2d
\t         11c0040 burn_backend::backend::ops::modules::conv::conv2d_weight_backward
\t         10ec60b <burn_autodiff::ops::module::<impl burn_backend::backend::ops::modules::base::ModuleOps<burn_autodiff::backend::Autodiff<B,C>> for burn_autodiff::backend::Autodiff<B,C>>::conv2d::Conv2DWithBias as burn_autodiff::ops::backward::Backward<B,3_usize>>::backward

24795 56363.000000200: 
\t         15e4766 burn_flex::ops::conv_transpose::conv_transpose3d_impl::{{closure}}
\t         11c0037 burn_flex::ops::module::<impl burn_backend::backend::ops::modules::base::ModuleOps<burn_flex::backend::Flex> for burn_flex::backend::Flex>::conv_transpose2d
\t         10a5aef burn_tensor::tensor::module::conv_transpose2d
\t          edf0f1 <ebdiff_model::layers::conv::Conv2d as ebdiff_model::vjp::Vjp<burn_tensor::tensor::api::base::Tensor<4_usize>>>::vjp
\t          eab3dc ebdiff_model::model::DiffusionModel::head_grad

24795 56363.000000300: 
\t         16fbad3 __memset_avx512_unaligned_erms
";

    #[test]
    fn samples_are_parsed_with_their_time_and_frames_leaf_first() {
        let s = parse_samples(SCRIPT);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].time_ns, 56_363_000_000_100);
        assert_eq!(s[0].frames[0], "gemm_f32::microkernel::fma::f32::x2x6");
        assert_eq!(s[1].frames.len(), 5);
        assert_eq!(s[2].frames, ["__memset_avx512_unaligned_erms"]);
    }

    #[test]
    fn phase_comes_from_the_time_op_kind_and_layer_from_the_stack() {
        let marks = Marks {
            // Sample 1 in "loss + backward", sample 2 in "∇ₓE (VJP)", sample 3 outside.
            windows: vec![
                (3, 56_363_000_000_050, 56_363_000_000_150),
                (2, 56_363_000_000_150, 56_363_000_000_250),
            ],
            step_seconds: vec![1.0],
        };
        let p = classify(SCRIPT, &marks);
        assert_eq!(p.samples, 2);
        assert_eq!(p.phases["loss + backward"], 1);
        assert_eq!(p.phases["∇ₓE (VJP)"], 1);
        assert_eq!(p.ops["conv weight gradients"], 1);
        assert_eq!(p.ops["conv VJP (∇ₓ, in the graph)"], 1);
        assert_eq!(p.kinds["conv backward / weight grads"], 2);
        assert_eq!(p.layers["conv"], 1);
        // The rayon closure is named by the frame that made it: gemm.
        assert_eq!(p.kernels["gemm (matrix multiply)"], 1);
        assert_eq!(p.kernels["direct conv loops (im2col, col2im)"], 1);
    }

    #[test]
    fn the_same_conv_is_forward_or_vjp_by_phase_and_kinds_match_torch_bench() {
        let conv =
            vec!["burn_flex::ops::module::<impl ModuleOps<Flex> for Flex>::conv2d".to_string()];
        assert_eq!(op_of(1, &conv), "conv forward");
        assert_eq!(kind_of(op_of(1, &conv)), KINDS[0]);
        assert_eq!(kind_of(op_of(2, &conv)), KINDS[1]);
        let adam = vec!["burn_optim::optim::adam::AdaptiveMomentum::transform".to_string()];
        assert_eq!(kind_of(op_of(3, &adam)), "optimizer");
        let norm = vec![
            "burn_flex::ops::binary::binary_op".to_string(),
            "ebdiff_model::layers::norm::GroupNorm::forward".to_string(),
        ];
        assert_eq!(kind_of(op_of(1, &norm)), KINDS[2]);
        // In the backward no model frame is on the stack: the norm's ops are elementwise there.
        assert_eq!(kind_of(op_of(3, &norm)), KINDS[4]);
    }
}
