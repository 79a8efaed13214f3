//! A training run on disk: the run directory, checkpoints, resumption, metrics and snapshots.
//!
//! runs/NAME/
//!   config.toml          the experiment as run (every key, defaults filled in)
//!   run.json             git revision, start time, resumptions
//!   metrics.jsonl        one line per `log_every` steps: step, loss, lr, grad norm, ex/s
//!   checkpoints/step-N/  model, EMA, optimizer, state (see `checkpoint.rs`)
//!   samples/step-N.png   sample grids (images) or scatter plots (2-D) with fixed seeds
//!   failure.json         only if a step went non-finite: which step and tensor
//!   train.log            human-readable events: starts, resumptions, checkpoints, the end
//!
//! On several ranks (`RunOptions::group`) every rank trains and rank 0 alone writes; the run
//! directory must be visible to every rank (a shared filesystem) for `--resume`.

use crate::checkpoint::{
    CheckpointError, CheckpointMeta, config_differences, latest_checkpoint, list_checkpoints,
    load_checkpoint, read_state, write_checkpoint,
};
use crate::config::ExperimentConfig;
use crate::data_parallel::{agree, check_replicas};
use crate::ema::Ema;
use crate::error::RunError;
use crate::state::TrainState;
use crate::train::{BatchSource, Control, StepReport, TrainOptions, train_dsm_on};
use burn::tensor::Device;
use ebdiff_core::Collective;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Settings a resumed run may change; anything else must match the checkpoint.
pub const RESUMABLE_CHANGES: [&str; 10] = [
    "train.steps",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.sample_every",
    "train.lr",
    "train.lr_schedule",
    "train.grad_clip",
    "train.init_from",
    "sample.",
];

pub struct RunOptions {
    pub out: PathBuf,
    /// Continue from the newest checkpoint in `out`.
    pub resume: bool,
    /// Set (e.g. by Ctrl-C) to stop after the current step with a checkpoint.
    pub stop: Arc<AtomicBool>,
    /// The ranks that train together ([`ebdiff_core::Solo`] for one process).
    pub group: Arc<dyn Collective>,
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |e| RunError::Io(p.to_path_buf(), e)
}

pub struct RunOutcome {
    pub state: TrainState,
    /// Per-step losses of this invocation (steps `first_step..`).
    pub losses: Vec<f64>,
    pub first_step: u64,
    pub interrupted: bool,
    pub checkpoint: PathBuf,
}

/// `git rev-parse HEAD` (+ "-dirty"), when run inside a git checkout.
pub fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let rev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    Some(if dirty { format!("{rev}-dirty") } else { rev })
}

/// Trains `cfg` in the run directory `opts.out`. `on_step` sees every step (progress bars);
/// `snapshot(state, step)` is called every `train.sample_every` steps and at the end (sample
/// grids).
pub fn train_run(
    cfg: &ExperimentConfig,
    source: &impl BatchSource,
    device: &Device,
    opts: &RunOptions,
    mut on_step: impl FnMut(&StepReport),
    mut snapshot: impl FnMut(&TrainState),
) -> Result<RunOutcome, RunError> {
    let group = opts.group.as_ref();
    let root = group.is_root();
    let out = &opts.out;
    let config_text = cfg.to_toml();
    let train_opts = cfg.train_options();
    let schedule = cfg.diffusion.build();
    let git = git_revision();
    check_training_precision(device)?;
    if group.size() > cfg.train.batch_size {
        return Err(RunError::Data(format!(
            "train.batch_size = {} is smaller than the {} ranks: every rank needs at least one \
             example per step (raise the batch size or launch fewer ranks)",
            cfg.train.batch_size,
            group.size()
        )));
    }
    // Each rank may fail to set up on its own (a file it cannot read); all agree before the
    // first step, which would otherwise wait forever for the failed rank.
    let state = agree(
        group,
        initial_state(cfg, device, opts, &train_opts, schedule.len(), &config_text),
    )?;
    let first_step = state.step;
    let metrics_path = out.join("metrics.jsonl");
    let opened = if root {
        open_run_files(
            out,
            device,
            opts.resume,
            &git,
            first_step,
            &config_text,
            &metrics_path,
        )
        .map(Some)
    } else {
        Ok(None)
    };
    let mut metrics = agree(group, opened)?;
    let log = |line: &str| {
        if root {
            log_event(out, line);
        }
    };

    let save = |state: &TrainState| -> Result<PathBuf, RunError> {
        // Every rank checks that all hold the same state; rank 0 writes it; all learn the outcome.
        check_replicas(group, state)?;
        let written = if root {
            write_checkpoint(
                out,
                CheckpointMeta {
                    step: state.step,
                    examples_seen: state.examples_seen,
                    ema_updates: state.ema.updates,
                    seed: cfg.run.seed,
                    config: &config_text,
                    git_revision: git.clone(),
                },
                &state.model,
                &state.ema.model,
                &state.optim,
                cfg.train.keep_checkpoints,
            )
            .map_err(RunError::from)
        } else {
            Ok(crate::checkpoint::checkpoint_dir(out, state.step))
        };
        agree(group, written)
    };

    let log_every = cfg.train.log_every.max(1) as u64;
    let (ckpt_every, sample_every) = (
        cfg.train.checkpoint_every as u64,
        cfg.train.sample_every as u64,
    );
    let mut losses = Vec::new();
    let mut window = (0.0, 0usize, 0.0f64);
    let mut last_ckpt = first_step;
    let mut hook_error = None;
    let mut interrupted = false;
    let mut last_seconds = 0.0;
    let (state, result) = train_dsm_on(group, state, &schedule, source, &train_opts, |r, state| {
        losses.push(r.loss);
        if root {
            on_step(r);
        }
        window = (window.0 + r.loss, window.1 + 1, window.2.max(r.grad_norm));
        if r.step % log_every == 0 || r.step as usize == cfg.train.steps {
            let rate = window.1 as f64 * cfg.train.batch_size as f64
                / (r.seconds - last_seconds).max(1e-9);
            last_seconds = r.seconds;
            let line = serde_json::json!({
                "step": r.step, "loss": window.0 / window.1 as f64, "lr": r.lr,
                "grad_norm_max": window.2, "ema_beta": r.ema_beta,
                "examples_per_s": rate, "seconds": r.seconds,
            });
            window = (0.0, 0, 0.0);
            if let Some(Err(e)) = metrics.as_mut().map(|m| writeln!(m, "{line}")) {
                hook_error = Some(RunError::Io(metrics_path.clone(), e));
                return Control::Stop;
            }
        }
        if ckpt_every > 0 && r.step % ckpt_every == 0 {
            match save(state) {
                Ok(p) => {
                    last_ckpt = r.step;
                    log(&format!("checkpoint {} (loss {:.5})", p.display(), r.loss));
                }
                Err(e) => {
                    hook_error = Some(e);
                    return Control::Stop;
                }
            }
        }
        if root && sample_every > 0 && r.step % sample_every == 0 {
            snapshot(state);
        }
        if opts.stop.load(Ordering::SeqCst) {
            interrupted = true;
            return Control::Stop;
        }
        Control::Continue
    });
    drop(metrics);
    agree(group, hook_error.map_or(Ok(()), Err))?;
    // Checkpoint the final (or last good) state unless that step was just written (rank 0 sees
    // the files; the others follow its answer).
    let none_yet = root && list_checkpoints(out).is_empty();
    let none_yet = group.broadcast_bytes(&[u8::from(none_yet)]) == [1];
    let checkpoint = if state.step != last_ckpt || none_yet {
        Some(save(&state)?)
    } else if root {
        latest_checkpoint(out)
    } else {
        Some(crate::checkpoint::checkpoint_dir(out, state.step))
    };
    if let Some(c) = &checkpoint {
        log(&format!(
            "checkpoint {} at step {}",
            c.display(),
            state.step
        ));
    }
    if let Err(failure) = result {
        log(&format!("stopped: {failure}"));
        let report = out.join("failure.json");
        let text = serde_json::json!({
            "step": failure.step, "loss": failure.loss, "tensor": failure.tensor,
            "last_good_checkpoint": checkpoint.as_ref().map(|p| p.display().to_string()),
        });
        if root {
            std::fs::write(&report, serde_json::to_string_pretty(&text).expect("json"))
                .map_err(io(&report))?;
        }
        return Err(RunError::NonFinite {
            failure,
            checkpoint,
            report,
        });
    }
    if interrupted {
        log(&format!("interrupted at step {}", state.step));
    } else {
        log(&format!("finished at step {}", state.step));
        if root && (sample_every == 0 || state.step % sample_every != 0) {
            snapshot(&state);
        }
    }
    Ok(RunOutcome {
        checkpoint: checkpoint.expect("a checkpoint was written"),
        state,
        losses,
        first_step,
        interrupted,
    })
}

/// The state a run starts from: its newest checkpoint (`opts.resume`) or a fresh model.
fn initial_state(
    cfg: &ExperimentConfig,
    device: &Device,
    opts: &RunOptions,
    train_opts: &TrainOptions,
    levels: usize,
    config_text: &str,
) -> Result<TrainState, RunError> {
    let out = &opts.out;
    Ok(if opts.resume {
        let dir = latest_checkpoint(out).ok_or_else(|| CheckpointError::NotFound {
            run_dir: out.clone(),
        })?;
        // Compare configs first: "hidden 16 vs 32" says more than a tensor-shape error.
        let saved = read_state(&dir)?;
        let differences = config_differences(&saved.config, config_text, &RESUMABLE_CHANGES);
        if !differences.is_empty() {
            return Err(CheckpointError::Mismatch { dir, differences }.into());
        }
        let restored = load_checkpoint(
            &dir,
            &cfg.model,
            levels,
            device,
            train_opts.optimizer.init(),
        )?;
        tracing::info!(checkpoint = %dir.display(), step = restored.state.step, "resuming");
        TrainState {
            model: restored.model,
            ema: Ema::restored(restored.ema, restored.state.ema_updates),
            optim: restored.optim,
            step: restored.state.step,
            examples_seen: restored.state.examples_seen,
        }
    } else {
        if !list_checkpoints(out).is_empty() {
            return Err(RunError::Exists(out.clone()));
        }
        let ad = device.clone().autodiff();
        let model = match &cfg.train.init_from {
            // Lazily built and filled from the file: no random draws.
            Some(path) => {
                ebdiff_core::module_weights::load_module(cfg.model.init(levels, &ad), path)
                    .map_err(|e| RunError::Weights {
                        path: path.clone(),
                        message: format!("init_from: {e}"),
                    })?
            }
            None => ebdiff_model::seeded_init(&ad, cfg.run.seed, || cfg.model.init(levels, &ad)),
        };
        TrainState::new(model, &train_opts.optimizer)
    })
}

/// f16 cannot train here: Adam's ε (1e-8) is 0 in f16 and the second moment g² underflows below
/// 2.4e-4, so the first steps divide by zero (measured: NaN at step 2 on the 2-D config).
/// PyTorch's AMP keeps f32 master weights for this; Burn 0.22 has none. bf16 has f32's range.
pub fn check_training_precision(device: &Device) -> Result<(), RunError> {
    if device.settings().float_dtype == burn::tensor::FloatDType::F16 {
        return Err(RunError::Precision(
            "training in f16 is refused: without f32 master weights (Burn has none) Adam's ε = \
             1e-8 and small squared gradients are 0 in f16 and the first steps divide by zero. \
             Train in bf16 (f32's range), flex32 (f32 storage, f16 matmul inputs) or f32; f16 is \
             fine for sampling."
                .into(),
        ));
    }
    Ok(())
}

/// Rank 0's files of a starting run: config.toml, run.json, train.log and metrics.jsonl (cut
/// back to the resumed step), the last opened for appending.
fn open_run_files(
    out: &Path,
    device: &Device,
    resume: bool,
    git: &Option<String>,
    first_step: u64,
    config_text: &str,
    metrics_path: &Path,
) -> Result<std::fs::File, RunError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    log_event(
        out,
        &if resume {
            format!(
                "resumed at step {first_step} (git {})",
                git.as_deref().unwrap_or("unknown")
            )
        } else {
            format!("started (git {})", git.as_deref().unwrap_or("unknown"))
        },
    );
    let p = out.join("config.toml");
    std::fs::write(&p, config_text).map_err(io(&p))?;
    append_run_log(out, git, first_step, device)?;
    // Metrics of steps after the checkpoint belong to the lost future: drop them.
    keep_metrics_up_to(metrics_path, first_step)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(metrics_path)
        .map_err(io(metrics_path))
}

/// Appends a timestamped line to `train.log` (best effort: a full disk must not stop training
/// before the checkpoint write reports it).
fn log_event(out: &Path, line: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("train.log"))
    {
        let _ = writeln!(f, "[unix {now}] {line}");
    }
}

fn append_run_log(
    out: &Path,
    git: &Option<String>,
    step: u64,
    device: &Device,
) -> Result<(), RunError> {
    let p = out.join("run.json");
    let mut log: Vec<serde_json::Value> = std::fs::read_to_string(&p)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    log.push(serde_json::json!({
        "started_unix": now, "from_step": step, "git_revision": git,
        "ebdiff_version": env!("CARGO_PKG_VERSION"),
        "device": format!("{device:?}"),
        "float_dtype": format!("{:?}", device.settings().float_dtype),
    }));
    std::fs::write(&p, serde_json::to_string_pretty(&log).expect("json")).map_err(io(&p))
}

fn keep_metrics_up_to(path: &Path, step: u64) -> Result<(), RunError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(path, kept).map_err(io(path))
}
