//! `cargo xtask sweep experiments/sweeps/NAME.toml`: runs every cell of a sweep (a grid or list
//! over sampling-config keys), each in its own directory under `<out>/cells/`, resumably, and
//! writes a report (CSV, Markdown, SVG plots, an HTML page) under `<out>/report/`.
//!
//! A cell is done when its `result.json` exists and records the cell's resolved config; it is
//! written atomically (temporary file, then rename) after everything else, so a cell
//! interrupted half-way has no result.json and is redone from scratch on the next run.

pub mod cell;
pub mod metrics;
mod plots;
pub mod report;
pub mod spec;
#[cfg(test)]
mod tests;

use anyhow::{Context, Result};
use cell::{CellResult, STATUS_NA, run_cell};
use clap::Args;
use ebdiff_core::BackendKind;
use indicatif::{ProgressBar, ProgressStyle};
use spec::{Cell, Sweep};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Args)]
pub struct SweepArgs {
    /// Sweep definition (see experiments/sweeps/README.md).
    sweep: PathBuf,
    /// Output directory (default: the sweep file's path without `.toml`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cells run at once (each cell's sampler already uses every core of the flex backend).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Only (re)write the report from the finished cells.
    #[arg(long)]
    report_only: bool,
    /// List the cells and their directories, run nothing.
    #[arg(long)]
    dry_run: bool,
}

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
    pub backend: BackendKind,
    pub progress: bool,
    /// Called after each cell (from the worker that ran it).
    pub on_cell: Option<CellCallback>,
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
fn process(sweep: &Sweep, out: &Path, cell: &Cell, device: &burn::tensor::Device) -> Outcome {
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

/// Runs the cells of `sweep` into `out/cells/`, `opts.jobs` at a time.
pub fn run_cells(sweep: &Sweep, out: &Path, opts: &RunOptions) -> Result<Summary> {
    let device = opts.backend.device().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(out.join("cells"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    let start = Instant::now();
    let bar = if opts.progress {
        ProgressBar::new(sweep.cells.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} cell {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap(),
    );
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
                    let Some(cell) = sweep.cells.get(i) else {
                        break;
                    };
                    bar.set_message(cell.name.clone());
                    let outcome = process(sweep, out, cell, &device);
                    if let Some(f) = &opts.on_cell {
                        f(cell, &outcome);
                    }
                    let mut s = summary.lock().unwrap();
                    let name = cell.dir_name();
                    match &outcome {
                        Outcome::Computed => s.computed.push(name),
                        Outcome::Skipped => s.skipped.push(name),
                        Outcome::NotApplicable(_) => s.not_applicable.push(name),
                        Outcome::Failed(m) => {
                            bar.println(format!("cell {name} failed: {m}"));
                            s.failed.push((name, m.clone()))
                        }
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut s = summary.into_inner().unwrap();
    s.not_started = sweep.cells.len()
        - s.computed.len()
        - s.skipped.len()
        - s.not_applicable.len()
        - s.failed.len();
    s.seconds = start.elapsed().as_secs_f64();
    Ok(s)
}

/// Trains the models of `[train]` whose run directory has no `ema.bpk` yet.
fn train_missing(sweep: &Sweep, backend: BackendKind) -> Result<()> {
    for (dir, config) in &sweep.train {
        if dir.join("ema.bpk").exists() {
            continue;
        }
        let cfg = ebdiff_trainer::ExperimentConfig::load(config)?;
        println!("training `{}` → {}", config.display(), dir.display());
        crate::train::train_to_dir(&cfg, dir, backend, dir.join("checkpoints").exists())?;
        if !dir.join("ema.bpk").exists() {
            anyhow::bail!("training of {} was interrupted", dir.display());
        }
    }
    Ok(())
}

pub fn run(args: SweepArgs, backend: BackendKind) -> Result<()> {
    let sweep = spec::load(&args.sweep)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.sweep.with_extension(""));
    if args.dry_run {
        for c in &sweep.cells {
            let state = if finished(&out, c).is_some() {
                "done"
            } else {
                "todo"
            };
            println!("{state}  {}", cell_dir(&out, c).display());
        }
        println!("{} cells", sweep.cells.len());
        return Ok(());
    }
    if !args.report_only {
        train_missing(&sweep, backend)?;
        let stop = crate::train::stop_on_ctrl_c()?;
        println!(
            "sweep `{}`: {} cells → {}",
            sweep.name,
            sweep.cells.len(),
            out.join("cells").display()
        );
        let started = Instant::now();
        let summary = run_cells(
            &sweep,
            &out,
            &RunOptions {
                jobs: args.jobs,
                stop: stop.clone(),
                backend,
                progress: true,
                on_cell: None,
            },
        )?;
        report::append_run_log(&out, &summary, started.elapsed().as_secs_f64(), args.jobs)?;
        println!(
            "{} computed, {} already done, {} not applicable, {} failed{} in {:.0} s",
            summary.computed.len(),
            summary.skipped.len(),
            summary.not_applicable.len(),
            summary.failed.len(),
            if summary.not_started > 0 {
                format!(", {} not started (stopped)", summary.not_started)
            } else {
                String::new()
            },
            summary.seconds
        );
        for (name, msg) in &summary.failed {
            println!("  failed: {name}: {msg}");
        }
        let dir = report::write_report(&sweep, &out, Some(&args.sweep))?;
        println!("report: {}", dir.join("index.html").display());
        if !summary.failed.is_empty() {
            anyhow::bail!(
                "{} cell(s) failed (see their error.json)",
                summary.failed.len()
            );
        }
        if summary.not_started > 0 {
            anyhow::bail!(
                "stopped: {} cell(s) not started; re-run to continue",
                summary.not_started
            );
        }
        return Ok(());
    }
    let dir = report::write_report(&sweep, &out, Some(&args.sweep))?;
    println!("report: {}", dir.join("index.html").display());
    Ok(())
}
