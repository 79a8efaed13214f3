//! Checkpoints: everything needed to continue a run exactly.
//!
//! `checkpoints/step-00001000/` holds `model.safetensors` (live weights), `ema.safetensors`,
//! `optim.safetensors` (Adam moments, named by parameter path) and `state.json` (step, examples
//! seen, seed, the run's config, sha256 of every file). Identical states give identical bytes, so
//! the digests identify the weights. Checkpoints of format 1 (Burn `.bpk` records) still load.
//! Data order and noise are pure functions of (seed, step) (`ebdiff_core::rng::stream_at`), so the
//! step *is* the RNG state. A checkpoint is written into a temporary directory and renamed into
//! place, so a crash mid-write never leaves a half checkpoint under a real name.

use crate::optim_weights::{optim_from_safetensors, optim_to_safetensors};
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use ebdiff_core::module_weights::{WeightsError, load_weights, save_module};
use ebdiff_core::safetensors::{SafeTensors, SafetensorsError};
use ebdiff_model::{DiffusionModel, ModelConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Format 2: safetensors. Format 1 (Burn `.bpk` records) is read, never written.
const FORMAT: u32 = 2;

fn weight_files(format: u32) -> [&'static str; 3] {
    if format == 1 {
        ["model.bpk", "ema.bpk", "optim.bpk"]
    } else {
        ["model.safetensors", "ema.safetensors", "optim.safetensors"]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDigest {
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub format: u32,
    /// Optimizer steps completed.
    pub step: u64,
    pub examples_seen: u64,
    pub ema_updates: u64,
    pub seed: u64,
    /// The experiment config (TOML) the run was started with.
    pub config: String,
    pub git_revision: Option<String>,
    pub files: BTreeMap<String, FileDigest>,
}

#[derive(Debug)]
pub enum CheckpointError {
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    Corrupt {
        path: PathBuf,
        problem: String,
    },
    Mismatch {
        dir: PathBuf,
        differences: Vec<String>,
    },
    NotFound {
        run_dir: PathBuf,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            CheckpointError::Corrupt { path, problem } => write!(
                f,
                "corrupt checkpoint file {}: {problem}. Delete this checkpoint directory to resume \
                 from the previous one.",
                path.display()
            ),
            CheckpointError::Mismatch { dir, differences } => write!(
                f,
                "checkpoint {} was written by a different experiment; it differs in:\n  {}\n\
                 Resume with the config stored in the run directory, or start a new run \
                 (another --out).",
                dir.display(),
                differences.join("\n  ")
            ),
            CheckpointError::NotFound { run_dir } => write!(
                f,
                "--resume: no checkpoint under {}/checkpoints. Start without --resume.",
                run_dir.display()
            ),
        }
    }
}

impl std::error::Error for CheckpointError {}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Size and sha256 of a file, streamed (a CIFAR-size checkpoint is over 500 MB).
fn digest(path: &Path) -> Result<FileDigest, CheckpointError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).map_err(io(path))?;
    Ok(FileDigest {
        bytes,
        sha256: hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

pub fn checkpoint_dir(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join("checkpoints").join(format!("step-{step:08}"))
}

/// What a checkpoint holds besides the three weight files.
pub struct CheckpointMeta<'a> {
    pub step: u64,
    pub examples_seen: u64,
    pub ema_updates: u64,
    pub seed: u64,
    pub config: &'a str,
    pub git_revision: Option<String>,
}

/// Writes a checkpoint atomically and keeps only the newest `keep` (≥ 1).
pub fn write_checkpoint(
    run_dir: &Path,
    meta: CheckpointMeta,
    model: &DiffusionModel,
    ema: &DiffusionModel,
    optim: &ModuleOptimizer,
    keep: usize,
) -> Result<PathBuf, CheckpointError> {
    let root = run_dir.join("checkpoints");
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let final_dir = checkpoint_dir(run_dir, meta.step);
    let tmp = root.join(format!(".tmp-step-{:08}-{}", meta.step, std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let meta_tag = BTreeMap::from([("format".to_string(), "ebdiff".to_string())]);
    let save_err = |e: SafetensorsError| match e {
        SafetensorsError::Io(path, error) => CheckpointError::Io { path, error },
        other => CheckpointError::Io {
            path: tmp.clone(),
            error: std::io::Error::other(other.to_string()),
        },
    };
    let p = tmp.join("model.safetensors");
    save_module(model, &p, meta_tag.clone()).map_err(save_err)?;
    let p = tmp.join("ema.safetensors");
    save_module(ema, &p, meta_tag.clone()).map_err(save_err)?;
    let p = tmp.join("optim.safetensors");
    let state = optim_to_safetensors(optim, model).map_err(|problem| CheckpointError::Corrupt {
        path: p.clone(),
        problem,
    })?;
    state.write(&p).map_err(save_err)?;
    let mut files = BTreeMap::new();
    for name in weight_files(FORMAT) {
        files.insert(name.to_string(), digest(&tmp.join(name))?);
    }
    let state = CheckpointState {
        format: FORMAT,
        step: meta.step,
        examples_seen: meta.examples_seen,
        ema_updates: meta.ema_updates,
        seed: meta.seed,
        config: meta.config.to_string(),
        git_revision: meta.git_revision,
        files,
    };
    let p = tmp.join("state.json");
    std::fs::write(&p, serde_json::to_string_pretty(&state).expect("json")).map_err(io(&p))?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
    prune(run_dir, keep.max(1))?;
    Ok(final_dir)
}

/// Finished checkpoints of a run, oldest first.
pub fn list_checkpoints(run_dir: &Path) -> Vec<(u64, PathBuf)> {
    let root = run_dir.join("checkpoints");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("step-")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    out.sort();
    out
}

pub fn latest_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    list_checkpoints(run_dir).pop().map(|(_, p)| p)
}

fn prune(run_dir: &Path, keep: usize) -> Result<(), CheckpointError> {
    let all = list_checkpoints(run_dir);
    for (_, dir) in all.iter().take(all.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    Ok(())
}

/// Reads `state.json` and verifies every file's size and sha256.
pub fn read_state(dir: &Path) -> Result<CheckpointState, CheckpointError> {
    let p = dir.join("state.json");
    let text = std::fs::read_to_string(&p).map_err(io(&p))?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|e| CheckpointError::Corrupt {
            path: p.clone(),
            problem: format!("unreadable state: {e}"),
        })?;
    if state.format != FORMAT && state.format != 1 {
        return Err(CheckpointError::Corrupt {
            path: p,
            problem: format!(
                "format {} but this ebdiff reads formats 1 and {FORMAT}",
                state.format
            ),
        });
    }
    for name in weight_files(state.format) {
        let path = dir.join(name);
        let expected = state
            .files
            .get(name)
            .ok_or_else(|| CheckpointError::Corrupt {
                path: p.clone(),
                problem: format!("no digest recorded for {name}"),
            })?;
        if !path.exists() {
            return Err(CheckpointError::Corrupt {
                path,
                problem: "file is missing".into(),
            });
        }
        let got = digest(&path)?;
        if got.bytes != expected.bytes {
            return Err(CheckpointError::Corrupt {
                path,
                problem: format!(
                    "{} bytes, but {} were written (truncated or overwritten)",
                    got.bytes, expected.bytes
                ),
            });
        }
        if got.sha256 != expected.sha256 {
            return Err(CheckpointError::Corrupt {
                path,
                problem: format!(
                    "sha256 {} does not match the recorded {}",
                    got.sha256, expected.sha256
                ),
            });
        }
    }
    Ok(state)
}

/// Weights and optimizer state restored from a verified checkpoint.
pub struct Restored {
    pub state: CheckpointState,
    pub model: DiffusionModel,
    pub ema: DiffusionModel,
    pub optim: ModuleOptimizer,
}

/// Loads a checkpoint into freshly initialized modules of `model_cfg` (the live model on
/// `device`'s autodiff twin). `optim` is a new optimizer of the right kind.
pub fn load_checkpoint(
    dir: &Path,
    model_cfg: &ModelConfig,
    timesteps: usize,
    device: &Device,
    optim: ModuleOptimizer,
) -> Result<Restored, CheckpointError> {
    let state = read_state(dir)?;
    let corrupt = |name: &str| {
        let path = dir.join(name);
        move |e: WeightsError| CheckpointError::Corrupt {
            path,
            problem: format!("{e}"),
        }
    };
    // Modules built lazily and filled from the files: nothing is drawn from the backend RNG.
    let model = load_weights(
        model_cfg.init(timesteps, &device.clone().autodiff()),
        dir,
        "model",
    )
    .map_err(corrupt("model"))?;
    let ema =
        load_weights(model_cfg.init(timesteps, device), dir, "ema").map_err(corrupt("ema"))?;
    let optim = if state.format == 1 {
        optim
            .load(dir.join("optim.bpk"))
            .map_err(|e| CheckpointError::Corrupt {
                path: dir.join("optim.bpk"),
                problem: format!("does not fit the configured model: {e:?}"),
            })?
    } else {
        let p = dir.join("optim.safetensors");
        let bad = |problem: String| CheckpointError::Corrupt {
            path: p.clone(),
            problem,
        };
        let file = SafeTensors::read(&p).map_err(|e| bad(e.to_string()))?;
        optim_from_safetensors(optim, &model, &file).map_err(bad)?
    };
    Ok(Restored {
        state,
        model,
        ema,
        optim,
    })
}

/// Keys (dotted paths) whose values differ between two TOML documents, skipping keys under
/// `allowed` prefixes (settings a resumed run may change, e.g. `train.steps`).
pub fn config_differences(saved: &str, current: &str, allowed: &[&str]) -> Vec<String> {
    fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let parse = |s: &str| {
        s.parse::<toml::Value>()
            .unwrap_or(toml::Value::Table(Default::default()))
    };
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &parse(saved), &mut a);
    flatten("", &parse(current), &mut b);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| !allowed.iter().any(|p| k.starts_with(p)))
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k}: checkpoint {} vs now {}",
                a.get(k).map_or("(unset)", |s| s.as_str()),
                b.get(k).map_or("(unset)", |s| s.as_str())
            )
        })
        .collect()
}
