//! Why a run could not train, load or sample, and why a training step could not be taken;
//! shared by the loop, the run directory, the ranks of a data-parallel run and the experiments,
//! each message naming the fix.

use crate::checkpoint::CheckpointError;
use std::path::PathBuf;

/// Why a step could not be taken.
#[derive(Debug, Clone, PartialEq)]
pub struct NonFinite {
    /// The 1-based step that failed (its update was not applied).
    pub step: u64,
    pub loss: f64,
    /// The loss, or the first parameter whose gradient is not finite.
    pub tensor: String,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {}: non-finite {} (loss = {}); the update was not applied",
            self.step, self.tensor, self.loss
        )
    }
}

#[derive(Debug)]
pub enum RunError {
    Io(PathBuf, std::io::Error),
    Checkpoint(CheckpointError),
    /// Training diverged; `checkpoint` holds the last good state.
    NonFinite {
        failure: NonFinite,
        checkpoint: Option<PathBuf>,
        report: PathBuf,
    },
    /// `out` already holds a run and `--resume` was not given.
    Exists(PathBuf),
    /// A directory that should hold a run does not (`hint` says what is missing).
    NotARun {
        path: PathBuf,
        hint: &'static str,
    },
    /// A run's config.toml does not parse or validate.
    Config(ebdiff_core::ConfigError),
    /// A weights file cannot be loaded.
    Weights {
        path: PathBuf,
        message: String,
    },
    /// The training data cannot be built.
    Data(String),
    /// The models of a sampling config do not fit together, or the sampler refused.
    Sampling(String),
    /// Ranks of a data-parallel run no longer hold the same state.
    Replicas(String),
    /// The device computes in a float type training cannot use.
    Precision(String),
    /// Another rank failed; this rank stopped with it.
    OtherRank {
        rank: usize,
        message: String,
    },
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            RunError::Checkpoint(e) => write!(f, "{e}"),
            RunError::NonFinite {
                failure,
                checkpoint,
                report,
            } => {
                write!(
                    f,
                    "training diverged at {failure} (details: {})",
                    report.display()
                )?;
                if let Some(c) = checkpoint {
                    write!(
                        f,
                        ". The last good state is {}; lower train.lr or set train.grad_clip, \
                         then continue with --resume",
                        c.display()
                    )?;
                }
                Ok(())
            }
            RunError::Exists(p) => write!(
                f,
                "{} already holds a run with checkpoints: pass --resume to continue it, or \
                 --out DIR to start a new one",
                p.display()
            ),
            RunError::NotARun { path, hint } => {
                write!(f, "{} is not a run directory: {hint}", path.display())
            }
            RunError::Config(e) => write!(f, "{e}"),
            RunError::Weights { path, message } => {
                write!(f, "cannot load {}: {message}", path.display())
            }
            RunError::Data(m)
            | RunError::Sampling(m)
            | RunError::Replicas(m)
            | RunError::Precision(m) => f.write_str(m),
            RunError::OtherRank { rank, message } => write!(f, "rank {rank} failed: {message}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<CheckpointError> for RunError {
    fn from(e: CheckpointError) -> Self {
        RunError::Checkpoint(e)
    }
}
