//! Sampler sweeps (`cargo xtask sweep experiments/sweeps/NAME.toml`): every cell of a sweep (a
//! grid or list over sampling-config keys) runs in its own directory under `<out>/cells/`,
//! resumably, and a report (CSV, Markdown, SVG plots, an HTML page) goes under `<out>/report/`.
//!
//! - [`spec`]: sweep files → cells with stable ids;
//! - [`cell`]: one cell: sample ([`output::sample_to_dir`]) and score;
//! - [`report`]: tables, plots and the HTML page (the metrics themselves are `ebdiff_eval`'s);
//! - this file: the runner (jobs, resumption, stop flag) and `[train]` models.
//!
//! On several ranks (`RunOptions::group`, e.g. `mpirun -np N cargo xtask sweep`) rank r runs the
//! cells whose index is r mod N and every rank waits for the others at the end, so the cell
//! directories are those of one process; the output directory must be shared by the ranks.
//!
//! A cell is done when its `result.json` exists and records the cell's resolved config; it is
//! written atomically (temporary file, then rename) after everything else, so a cell
//! interrupted half-way has no result.json and is redone from scratch on the next run.

pub mod cell;
pub mod output;
pub mod report;
pub mod spec;
#[cfg(test)]
mod tests;

use anyhow::{Context, Result};
use burn::tensor::Device;
use cell::{CellResult, STATUS_NA, run_cell};
use ebdiff_core::Collective;
pub use spec::{Cell, Sweep, load};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How a cell ended in this invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Sampled and scored now.
    Computed,
    /// Already finished with the same config.
    Skipped,
    /// Cannot run by construction (recorded in result.json with the reason).
    NotApplicable(String),
    /// Failed; error.json holds the message.
    Failed(String),
}

#[derive(Debug, Default)]
pub struct Summary {
    pub computed: Vec<String>,
    pub skipped: Vec<String>,
    pub not_applicable: Vec<String>,
    pub failed: Vec<(String, String)>,
    /// Cells not started because a stop was requested.
    pub not_started: usize,
    pub seconds: f64,
}

/// Called with each cell and how it ended.
pub type CellCallback = Box<dyn Fn(&Cell, &Outcome) + Sync>;

pub struct RunOptions {
    pub jobs: usize,
    /// Checked between cells: once set, no new cell starts.
    pub stop: Arc<AtomicBool>,
    pub device: Device,
    /// Called after each cell (from the worker that ran it): progress bars, logs.
    pub on_cell: Option<CellCallback>,
    /// The ranks that share the cells ([`ebdiff_core::Solo`] for one process).
    pub group: Arc<dyn Collective>,
}

pub fn cell_dir(out: &Path, cell: &Cell) -> PathBuf {
    out.join("cells").join(cell.dir_name())
}

/// The finished result of `cell` in `out`, if result.json is valid and records its config.
pub fn finished(out: &Path, cell: &Cell) -> Option<CellResult> {
    let text = std::fs::read_to_string(cell_dir(out, cell).join("result.json")).ok()?;
    let r: CellResult = serde_json::from_str(&text).ok()?;
    (r.config == cell.resolved).then_some(r)
}

/// Writes `bytes` to `path` through a temporary file and a rename (atomic on one filesystem).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Runs one cell unless it is finished; records result.json or error.json.
fn process(sweep: &Sweep, out: &Path, cell: &Cell, device: &Device) -> Outcome {
    if let Some(r) = finished(out, cell) {
        return match r.reason {
            Some(reason) if r.status == STATUS_NA => Outcome::NotApplicable(reason),
            _ => Outcome::Skipped,
        };
    }
    let dir = cell_dir(out, cell);
    let attempt = || -> Result<CellResult> {
        if dir.exists() {
            // Half-written (no valid result.json) or a failed attempt: start over.
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        run_cell(cell, &dir, &sweep.metrics, device, |_, _| {})
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(attempt))
        .unwrap_or_else(|p| Err(anyhow::anyhow!("panicked: {}", panic_message(p))));
    let write = |r: &CellResult| -> Result<()> {
        write_atomic(
            &dir.join("result.json"),
            serde_json::to_string_pretty(r)?.as_bytes(),
        )
    };
    match result.and_then(|r| write(&r).map(|_| r)) {
        Ok(r) if r.status == STATUS_NA => Outcome::NotApplicable(r.reason.unwrap_or_default()),
        Ok(_) => Outcome::Computed,
        Err(e) => {
            let msg = format!("{e:#}");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(
                dir.join("error.json"),
                serde_json::to_string_pretty(&serde_json::json!({
                    "cell": cell.name,
                    "id": cell.id,
                    "error": msg,
                    "config": cell.resolved,
                }))
                .unwrap_or_default(),
            );
            Outcome::Failed(msg)
        }
    }
}

/// Runs the cells of `sweep` into `out/cells/`, `opts.jobs` at a time; on several ranks this
/// rank's cells, and the summary covers every rank's.
pub fn run_cells(sweep: &Sweep, out: &Path, opts: &RunOptions) -> Result<Summary> {
    let device = &opts.device;
    let (rank, ranks) = (opts.group.rank(), opts.group.size());
    std::fs::create_dir_all(out.join("cells"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    let start = Instant::now();
    let mine: Vec<&Cell> = sweep.cells.iter().skip(rank).step_by(ranks).collect();
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    if opts.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&cell) = mine.get(i) else {
                        break;
                    };
                    let outcome = process(sweep, out, cell, device);
                    if let Some(f) = &opts.on_cell {
                        f(cell, &outcome);
                    }
                    let mut s = summary.lock().unwrap();
                    let name = cell.dir_name();
                    match &outcome {
                        Outcome::Computed => s.computed.push(name),
                        Outcome::Skipped => s.skipped.push(name),
                        Outcome::NotApplicable(_) => s.not_applicable.push(name),
                        Outcome::Failed(m) => s.failed.push((name, m.clone())),
                    }
                }
            });
        }
    });
    let mut s = summary.into_inner().unwrap();
    if ranks > 1 {
        s = merge_summaries(opts.group.as_ref(), s);
    }
    s.not_started = sweep.cells.len()
        - s.computed.len()
        - s.skipped.len()
        - s.not_applicable.len()
        - s.failed.len();
    s.seconds = start.elapsed().as_secs_f64();
    Ok(s)
}

/// Every rank's summary, on every rank (after all ranks finished their cells).
fn merge_summaries(group: &dyn Collective, s: Summary) -> Summary {
    let json = serde_json::json!({
        "computed": s.computed, "skipped": s.skipped, "not_applicable": s.not_applicable,
        "failed": s.failed,
    });
    let mut merged = Summary::default();
    for part in group.all_gather_bytes(json.to_string().as_bytes()) {
        let v: serde_json::Value = serde_json::from_slice(&part).expect("our own JSON");
        let names = |k: &str| -> Vec<String> {
            serde_json::from_value(v[k].clone()).expect("a list of names")
        };
        merged.computed.extend(names("computed"));
        merged.skipped.extend(names("skipped"));
        merged.not_applicable.extend(names("not_applicable"));
        let failed: Vec<(String, String)> =
            serde_json::from_value(v["failed"].clone()).expect("(name, message) pairs");
        merged.failed.extend(failed);
    }
    merged
}

/// Trains the models of `[train]` whose run directory has no EMA weights yet (resuming one that
/// has checkpoints), data-parallel over the ranks of `group`. `on_step` sees every training
/// step on rank 0 (progress bars).
pub fn train_missing(
    sweep: &Sweep,
    device: &Device,
    group: &Arc<dyn Collective>,
    stop: Arc<AtomicBool>,
    mut on_step: impl FnMut(&Path, &ebdiff_trainer::StepReport),
) -> Result<()> {
    for (dir, config) in &sweep.train {
        // Rank 0's view of the files decides for all ranks.
        let done = ebdiff_core::module_weights::weights_file(dir, "ema").is_some();
        if group.broadcast_bytes(&[u8::from(done)]) == [1] {
            continue;
        }
        let cfg = ebdiff_trainer::ExperimentConfig::load(config)?;
        tracing::info!("training `{}` → {}", config.display(), dir.display());
        let opts = ebdiff_trainer::RunOptions {
            out: dir.clone(),
            resume: dir.join("checkpoints").exists(),
            stop: stop.clone(),
            group: group.clone(),
        };
        let trained = ebdiff_trainer::train_to_dir(&cfg, device, &opts, |r| on_step(dir, r))?;
        if trained.outcome.interrupted {
            anyhow::bail!(
                "training of {} was interrupted; re-run to continue it",
                dir.display()
            );
        }
    }
    Ok(())
}
