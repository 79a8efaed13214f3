//! `cargo xtask sweep experiments/sweeps/NAME.toml`: the CLI of `ebdiff_sweep`.

use crate::progress::{bar, stop_on_ctrl_c};
use crate::train::step_bar;
use anyhow::Result;
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_sweep::{Outcome, RunOptions, cell_dir, finished, report, run_cells, train_missing};
use std::path::PathBuf;
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

pub fn run(args: SweepArgs, backend: BackendKind) -> Result<()> {
    let sweep = ebdiff_sweep::load(&args.sweep)?;
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
        let device = crate::device(backend)?;
        let group = crate::group();
        let root = group.is_root();
        let stop = stop_on_ctrl_c()?;
        let mut training: Option<(PathBuf, indicatif::ProgressBar)> = None;
        train_missing(&sweep, &device, &group, stop.clone(), |dir, r| {
            if training.as_ref().is_none_or(|(d, _)| d != dir) {
                let steps = sweep
                    .train
                    .get(dir)
                    .and_then(|c| ebdiff_trainer::ExperimentConfig::load(c).ok());
                let b = steps
                    .as_ref()
                    .map_or_else(indicatif::ProgressBar::hidden, step_bar);
                b.println(format!("training {}", dir.display()));
                training = Some((dir.to_path_buf(), b));
            }
            if let Some((_, b)) = &training {
                b.set_position(r.step);
            }
        })?;
        if root {
            println!(
                "sweep `{}`: {} cells → {}{}",
                sweep.name,
                sweep.cells.len(),
                out.join("cells").display(),
                if group.size() > 1 {
                    format!(" (rank r of {} runs cells r, r + {0}, …)", group.size())
                } else {
                    String::new()
                }
            );
        }
        // Rank 0's bar counts its own cells; the summary below counts every rank's.
        let cells_bar = if root {
            bar(
                sweep.cells.len().div_ceil(group.size()),
                "{bar:30} cell {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
            )
        } else {
            indicatif::ProgressBar::hidden()
        };
        let shown = cells_bar.clone();
        let started = Instant::now();
        let summary = run_cells(
            &sweep,
            &out,
            &RunOptions {
                jobs: args.jobs,
                stop: stop.clone(),
                device,
                on_cell: Some(Box::new(move |cell, outcome| {
                    if let Outcome::Failed(m) = outcome {
                        shown.println(format!("cell {} failed: {m}", cell.dir_name()));
                    }
                    shown.set_message(cell.name.clone());
                    shown.inc(1);
                })),
                group: group.clone(),
            },
        )?;
        cells_bar.finish_and_clear();
        if !root {
            return Ok(());
        }
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
