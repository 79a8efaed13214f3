//! The sweep report under `<out>/report/`, one module per output:
//! - [`tables`]: `results.csv` (one row per cell) and `results.md` (mean ± std over seeds per
//!   group, a row of exact samples as the reference);
//! - [`plots`]: SVG charts (`plots/*.svg`) of the quality metrics against NFE, step size and
//!   `report.x` ([`chart`] draws one);
//! - [`html`]: `index.html` from `template.html`, with the tables, plots and each group's samples.
//!
//! This file reads the cells' states, groups the cells (same labels but the seed) into panels,
//! and writes the outputs.

mod html;
mod plots;
mod tables;

use super::cell::{CellResult, STATUS_NA, STATUS_OK};
use super::spec::{Cell, SEED_AXIS, Sweep};
use super::{Summary, cell_dir, finished};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A metric column of the report: (result key, column title, decimals).
type Column = (&'static str, &'static str, usize);

/// Metric columns in report order.
const COLUMNS: &[Column] = &[
    ("accuracy", "accuracy", 3),
    ("cell_recall", "cell recall", 3),
    ("objects", "objects", 2),
    ("fid", "FID", 2),
    ("kid", "KID", 4),
    ("log_density", "log-density", 3),
    ("floored_fraction", "floored", 3),
    ("mmd2", "MMD²", 4),
    ("w2", "W2", 4),
    ("acceptance", "acceptance", 3),
    ("nfe", "NFE", 0),
    ("ess_min", "ESS min", 3),
    ("resamplings", "resamplings", 0),
    ("seconds", "seconds", 1),
    ("step_size", "step size", 4),
];

/// State of one cell as the report sees it.
pub enum CellState {
    Done(CellResult),
    Failed(String),
    Missing,
}

pub fn cell_state(out: &Path, cell: &Cell) -> CellState {
    if let Some(r) = finished(out, cell) {
        return CellState::Done(r);
    }
    let err = cell_dir(out, cell).join("error.json");
    match std::fs::read_to_string(&err)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    {
        Some(v) => CellState::Failed(v["error"].as_str().unwrap_or("unknown error").to_string()),
        None => CellState::Missing,
    }
}

/// Appends this invocation's counts and wall time to `<out>/runs.jsonl`.
pub fn append_run_log(out: &Path, s: &Summary, wall: f64, jobs: usize) -> Result<()> {
    use std::io::Write;
    let line = serde_json::json!({
        "computed": s.computed.len(),
        "skipped": s.skipped.len(),
        "not_applicable": s.not_applicable.len(),
        "failed": s.failed.len(),
        "not_started": s.not_started,
        "wall_seconds": wall,
        "jobs": jobs,
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("runs.jsonl"))?;
    writeln!(f, "{line}")?;
    Ok(())
}

/// Mean and sample standard deviation (0 for one value) of the values of a group's seeds.
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// Cells that differ only in their seed.
struct Group<'a> {
    name: String,
    cells: Vec<(&'a Cell, &'a CellState)>,
}

impl Group<'_> {
    fn done(&self) -> Vec<&CellResult> {
        self.cells
            .iter()
            .filter_map(|(_, s)| match s {
                CellState::Done(r) if r.status == STATUS_OK => Some(r),
                _ => None,
            })
            .collect()
    }
    fn values(&self, key: &str) -> Vec<f64> {
        self.done()
            .iter()
            .filter_map(|r| r.metrics.get(key).copied())
            .filter(|v| v.is_finite())
            .collect()
    }
    fn first(&self) -> &Cell {
        self.cells[0].0
    }
    fn status(&self) -> String {
        let (mut ok, mut na, mut failed, mut missing) = (0, 0, 0, 0);
        let mut reason = None;
        for (_, s) in &self.cells {
            match s {
                CellState::Done(r) if r.status == STATUS_NA => {
                    na += 1;
                    reason = r.reason.clone();
                }
                CellState::Done(_) => ok += 1,
                CellState::Failed(_) => failed += 1,
                CellState::Missing => missing += 1,
            }
        }
        let mut parts = Vec::new();
        if ok > 0 {
            parts.push(format!("{ok} ok"));
        }
        if na > 0 {
            parts.push(format!("not applicable: {}", reason.unwrap_or_default()));
        }
        if failed > 0 {
            parts.push(format!("{failed} failed"));
        }
        if missing > 0 {
            parts.push(format!("{missing} not run"));
        }
        parts.join(", ")
    }
}

fn groups<'a>(cells: &'a [(Cell, CellState)]) -> Vec<Group<'a>> {
    let mut out: Vec<Group> = Vec::new();
    for (c, s) in cells {
        let g = c.group();
        match out.iter_mut().find(|x| x.name == g) {
            Some(x) => x.cells.push((c, s)),
            None => out.push(Group {
                name: g,
                cells: vec![(c, s)],
            }),
        }
    }
    out
}

/// The groups under one value of `report.panels` ("all" without it): one table, one set of
/// plots, one gallery.
struct Panel<'g, 'a> {
    name: String,
    groups: Vec<&'g Group<'a>>,
}

/// What every output is made from.
struct Report<'g, 'a> {
    sweep: &'a Sweep,
    out: &'a Path,
    cells: &'a [(Cell, CellState)],
    /// The columns some finished cell has a value for.
    used: Vec<Column>,
    /// Table rows are labelled by these axes (all but the seed and the panel axis).
    row_axes: Vec<&'a String>,
    panels: Vec<Panel<'g, 'a>>,
}

impl<'g, 'a> Report<'g, 'a> {
    fn new(
        sweep: &'a Sweep,
        out: &'a Path,
        cells: &'a [(Cell, CellState)],
        groups: &'g [Group<'a>],
    ) -> Self {
        let used = COLUMNS
            .iter()
            .copied()
            .filter(|(k, _, _)| {
                cells
                    .iter()
                    .any(|(_, s)| matches!(s, CellState::Done(r) if r.metrics.contains_key(*k)))
            })
            .collect();
        let panel_axis = sweep.report.panels.as_deref();
        let row_axes = sweep
            .axes
            .iter()
            .filter(|a| a.as_str() != SEED_AXIS && Some(a.as_str()) != panel_axis)
            .collect();
        let mut panels: Vec<Panel> = Vec::new();
        for g in groups {
            let name = panel_axis
                .and_then(|p| g.first().label(p))
                .unwrap_or("all")
                .to_string();
            match panels.iter_mut().find(|p| p.name == name) {
                Some(p) => p.groups.push(g),
                None => panels.push(Panel {
                    name,
                    groups: vec![g],
                }),
            }
        }
        Self {
            sweep,
            out,
            cells,
            used,
            row_axes,
            panels,
        }
    }

    fn uses(&self, key: &str) -> bool {
        self.used.iter().any(|(k, _, _)| *k == key)
    }

    /// The series label of a group in plots: `report.series`' label, else every non-seed label
    /// except the panel's.
    fn series_of(&self, c: &Cell) -> String {
        let report = &self.sweep.report;
        match &report.series {
            Some(s) => c.label(s).unwrap_or("").to_string(),
            None => c
                .labels
                .iter()
                .filter(|(a, _)| a != SEED_AXIS && Some(a.as_str()) != report.panels.as_deref())
                .map(|(_, l)| l.as_str())
                .collect::<Vec<_>>()
                .join("-"),
        }
    }

    /// How the sweep is regenerated.
    fn command(&self, source: Option<&Path>) -> String {
        match source {
            Some(p) => format!("cargo xtask sweep {}", p.display()),
            None => "cargo xtask sweep <file>".into(),
        }
    }

    /// The paragraph of cell counts, seeds and times at the top of results.md and index.html.
    fn counts(&self) -> String {
        let cells = self.cells;
        // Run log: wall time of each invocation.
        let runs: Vec<serde_json::Value> = std::fs::read_to_string(self.out.join("runs.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let wall: f64 = runs.iter().filter_map(|r| r["wall_seconds"].as_f64()).sum();
        let cell_seconds: f64 = cells
            .iter()
            .filter_map(|(_, s)| match s {
                CellState::Done(r) => r.metrics.get("seconds").copied(),
                _ => None,
            })
            .sum();
        let count = |f: &dyn Fn(&CellState) -> bool| cells.iter().filter(|(_, s)| f(s)).count();
        let n_ok = count(&|s| matches!(s, CellState::Done(r) if r.status == STATUS_OK));
        let n_na = count(&|s| matches!(s, CellState::Done(r) if r.status == STATUS_NA));
        let n_failed = count(&|s| matches!(s, CellState::Failed(_)));
        let n_missing = count(&|s| matches!(s, CellState::Missing));
        let mut seeds: Vec<String> = cells
            .iter()
            .map(|(c, _)| c.sampling.seed.to_string())
            .collect();
        seeds.dedup();
        seeds.sort();
        seeds.dedup();
        format!(
            "{} cells: {n_ok} finished, {n_na} not applicable, {n_failed} failed, {n_missing} not \
             run. Seeds {}; each row is mean ± std over them. Wall time of the sweep invocations: \
             {:.0} s ({} invocation(s)); sampling time summed over cells: {:.0} s.",
            cells.len(),
            seeds.join(", "),
            wall,
            runs.len(),
            cell_seconds
        )
    }
}

/// Writes the report; returns its directory.
pub fn write_report(sweep: &Sweep, out: &Path, source: Option<&Path>) -> Result<PathBuf> {
    let dir = out.join("report");
    let plots_dir = dir.join("plots");
    if plots_dir.exists() {
        std::fs::remove_dir_all(&plots_dir)?;
    }
    std::fs::create_dir_all(&plots_dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let cells: Vec<(Cell, CellState)> = sweep
        .cells
        .iter()
        .map(|c| (c.clone(), cell_state(out, c)))
        .collect();
    let groups = groups(&cells);
    let report = Report::new(sweep, out, &cells, &groups);

    std::fs::write(dir.join("results.csv"), tables::csv(&report))?;
    let plots = plots::write_plots(&report, &plots_dir)?;
    let tables = report
        .panels
        .iter()
        .map(|p| tables::panel_table(&report, p))
        .collect::<Result<Vec<_>>>()?;
    let command = report.command(source);
    let counts = report.counts();
    std::fs::write(
        dir.join("results.md"),
        tables::markdown(&report, &command, &counts, &tables, &plots),
    )?;
    std::fs::write(
        dir.join("index.html"),
        html::index_html(&report, &command, &counts, &tables, &plots)?,
    )?;
    Ok(dir)
}
