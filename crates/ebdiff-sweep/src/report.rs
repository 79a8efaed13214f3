//! The sweep report under `<out>/report/`: results.csv (one row per cell), results.md (mean ±
//! std over seeds per group), SVG plots and index.html linking them and each cell's samples.

use super::cell::{CellResult, STATUS_NA, STATUS_OK};
use super::plots::{Chart, Series, chart_svg};
use super::spec::{Cell, SEED_AXIS, Sweep, sanitize};
use super::{Summary, cell_dir, finished};
use anyhow::{Context, Result};
use ebdiff_core::rng::stream;
use ebdiff_eval::{LOG_DENSITY_FLOOR, MMD_BANDWIDTHS, mean_log_density, mmd2_rbf, w2_exact};
use plotters::prelude::SeriesLabelPosition;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Metric columns in report order: (result key, column title, decimals).
const COLUMNS: &[(&str, &str, usize)] = &[
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
    ("seconds", "seconds", 1),
    ("step_size", "step size", 4),
];

/// Quality metrics plotted against NFE and step size: (key, title, higher is better).
const QUALITY: [(&str, &str); 6] = [
    ("accuracy", "composition accuracy (higher is better)"),
    ("fid", "FID (lower is better)"),
    ("kid", "KID (lower is better)"),
    ("log_density", "mean log-density (higher is better)"),
    ("mmd2", "MMD² (lower is better)"),
    ("w2", "W2 (lower is better)"),
];

/// What each reported column means, for the note under the tables (only the columns shown).
const METRIC_NOTES: &[(&str, &str)] = &[
    (
        "accuracy",
        "accuracy is the share of samples with an object in every requested cell (the labels of \
         the composition's conditional models), by the dataset's exact pixel detector",
    ),
    (
        "cell_recall",
        "cell recall is the mean share of the requested cells that hold an object",
    ),
    (
        "objects",
        "objects is the mean number of occupied cells per sample",
    ),
    (
        "log_density",
        "log-density is the mean log p(x) under the exact composed target with per-sample values \
         floored at -30 (`floored` is the share at the floor)",
    ),
    (
        "mmd2",
        "MMD² is unbiased with RBF bandwidths 0.025, 0.05, 0.1, 0.2",
    ),
    (
        "w2",
        "W2 is the exact optimal assignment to as many exact samples",
    ),
    (
        "fid",
        "FID and KID compare the samples' Inception pool3 features with `eval.reference` (each \
         cell's `fid.json` records the convention)",
    ),
    (
        "nfe",
        "NFE counts target evaluations per chain (each evaluates every component model)",
    ),
    (
        "acceptance",
        "acceptance is the mean MH acceptance over levels",
    ),
    (
        "step_size",
        "step size is the mean over levels of the step actually used",
    ),
];

/// (x, y, ±y) of a chart.
type Point = (f64, f64, f64);

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

fn fmt_ms(v: &[f64], p: usize) -> String {
    if v.is_empty() {
        return "–".into();
    }
    let (m, s) = mean_std(v);
    if v.len() > 1 && s > 1e-9 * m.abs() {
        format!("{m:.p$} ± {s:.p$}")
    } else {
        format!("{m:.p$}")
    }
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The scores of exact samples, per seed of `cells` (one 2-D target, one count): a second
/// exact sample set scored like a cell's samples, i.e. the best a sampler can do at this count
/// (MMD² and W2 are not 0 between two finite sample sets). None without a common 2-D target.
fn exact_reference(cells: &[&Cell]) -> Result<Option<Vec<BTreeMap<&'static str, f64>>>> {
    let Some(first) = cells.first() else {
        return Ok(None);
    };
    let Some(name) = first.eval.target.clone() else {
        return Ok(None);
    };
    if cells
        .iter()
        .any(|c| c.eval.target.as_ref() != Some(&name) || c.sampling.count != first.sampling.count)
    {
        return Ok(None);
    }
    let mut seeds: Vec<u64> = cells.iter().map(|c| c.sampling.seed).collect();
    seeds.sort();
    seeds.dedup();
    let target = super::spec::exact_target(&name)?;
    let n = first.sampling.count;
    Ok(Some(
        seeds
            .iter()
            .map(|&seed| {
                // The reference the cells are compared with, and an independent exact set.
                let reference = target.sample(n, &mut stream(seed, "exact-reference"));
                let own = target.sample(n, &mut stream(seed, "exact-self"));
                let ld = mean_log_density(|p| target.log_density(p), &own, Some(LOG_DENSITY_FLOOR));
                BTreeMap::from([
                    ("log_density", ld.mean),
                    ("floored_fraction", ld.floored_fraction),
                    ("mmd2", mmd2_rbf(&own, &reference, &MMD_BANDWIDTHS)),
                    ("w2", w2_exact(&own, &reference)),
                ])
            })
            .collect(),
    ))
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
    let used: Vec<(&str, &str, usize)> = COLUMNS
        .iter()
        .copied()
        .filter(|(k, _, _)| {
            cells
                .iter()
                .any(|(_, s)| matches!(s, CellState::Done(r) if r.metrics.contains_key(*k)))
        })
        .collect();
    let axes: Vec<&String> = sweep.axes.iter().collect();

    // results.csv: one row per cell.
    let mut csv = String::from("cell,id");
    for a in &axes {
        let _ = write!(csv, ",{a}");
    }
    csv.push_str(",status");
    for (k, _, _) in &used {
        let _ = write!(csv, ",{k}");
    }
    csv.push_str(",note\n");
    for (c, s) in &cells {
        let _ = write!(csv, "{},{}", c.name, c.id);
        for a in &axes {
            let _ = write!(csv, ",{}", c.label(a).unwrap_or(""));
        }
        let (status, note, metrics) = match s {
            CellState::Done(r) => (
                r.status.clone(),
                r.reason.clone().unwrap_or_default(),
                Some(&r.metrics),
            ),
            CellState::Failed(m) => ("failed".into(), m.clone(), None),
            CellState::Missing => ("not-run".into(), String::new(), None),
        };
        let _ = write!(csv, ",{status}");
        for (k, _, _) in &used {
            match metrics.and_then(|m| m.get(*k)) {
                Some(v) => {
                    let _ = write!(csv, ",{v}");
                }
                None => csv.push(','),
            }
        }
        let _ = writeln!(csv, ",\"{}\"", note.replace('"', "'"));
    }
    std::fs::write(dir.join("results.csv"), csv)?;

    let groups = groups(&cells);
    let panel_of = |c: &Cell| -> String {
        sweep
            .report
            .panels
            .as_ref()
            .and_then(|p| c.label(p))
            .unwrap_or("all")
            .to_string()
    };
    let mut panels: Vec<String> = Vec::new();
    for g in &groups {
        let p = panel_of(g.first());
        if !panels.contains(&p) {
            panels.push(p);
        }
    }
    let series_of = |c: &Cell| -> String {
        match &sweep.report.series {
            Some(s) => c.label(s).unwrap_or("").to_string(),
            // Every non-seed label except the panel's.
            None => c
                .labels
                .iter()
                .filter(|(a, _)| {
                    a != SEED_AXIS && Some(a.as_str()) != sweep.report.panels.as_deref()
                })
                .map(|(_, l)| l.as_str())
                .collect::<Vec<_>>()
                .join("-"),
        }
    };
    let row_axes: Vec<&String> = axes
        .iter()
        .copied()
        .filter(|a| a.as_str() != SEED_AXIS && Some(a.as_str()) != sweep.report.panels.as_deref())
        .collect();

    // Plots.
    let mut plot_files: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let suffix = |p: &str| {
        if panels.len() > 1 {
            format!("-{p}")
        } else {
            String::new()
        }
    };
    for panel in &panels {
        let in_panel: Vec<&Group> = groups
            .iter()
            .filter(|g| &panel_of(g.first()) == panel)
            .collect();
        let mut files = Vec::new();
        let series_by = |f: &dyn Fn(&Group) -> Option<Point>| -> Vec<Series> {
            let mut out: Vec<Series> = Vec::new();
            for g in &in_panel {
                let Some(p) = f(g) else { continue };
                let label = series_of(g.first());
                match out.iter_mut().find(|s| s.label == label) {
                    Some(s) => s.points.push(p),
                    None => out.push(Series {
                        label,
                        points: vec![p],
                    }),
                }
            }
            out
        };
        for (key, title) in QUALITY {
            if !used.iter().any(|(k, _, _)| *k == key) {
                continue;
            }
            let by_nfe = series_by(&|g| {
                let v = g.values(key);
                let n = g.values("nfe");
                (!v.is_empty() && !n.is_empty()).then(|| {
                    let (m, s) = mean_std(&v);
                    (mean_std(&n).0, m, s)
                })
            });
            if !by_nfe.is_empty() && used.iter().any(|(k, _, _)| *k == "nfe") {
                let name = format!("{key}-vs-nfe{}.svg", suffix(panel));
                chart_svg(
                    &plots_dir.join(&name),
                    &Chart {
                        title: &format!("{title} vs NFE — {panel}"),
                        x_desc: "NFE (target evaluations per chain)",
                        y_desc: key,
                        log_x: true,
                        lines: false,
                        legend: SeriesLabelPosition::UpperRight,
                    },
                    &by_nfe,
                )?;
                files.push((name, format!("{key} vs NFE")));
            }
            if let Some(xkey) = &sweep.report.x {
                let by_x = series_by(&|g| {
                    let v = g.values(key);
                    let x = g.first().number(xkey)?;
                    (!v.is_empty()).then(|| {
                        let (m, s) = mean_std(&v);
                        (x, m, s)
                    })
                });
                if !by_x.is_empty() {
                    let name = format!("{key}-vs-{}{}.svg", sanitize(xkey), suffix(panel));
                    chart_svg(
                        &plots_dir.join(&name),
                        &Chart {
                            title: &format!("{title} vs {xkey} — {panel}"),
                            x_desc: xkey,
                            y_desc: key,
                            log_x: false,
                            lines: true,
                            legend: SeriesLabelPosition::LowerRight,
                        },
                        &by_x,
                    )?;
                    files.push((name, format!("{key} vs {xkey}")));
                }
            }
            let by_step = series_by(&|g| {
                let v = g.values(key);
                let st = g.values("step_size");
                (!v.is_empty() && !st.is_empty()).then(|| {
                    let (m, s) = mean_std(&v);
                    (mean_std(&st).0, m, s)
                })
            });
            let varied = by_step.iter().any(|s| {
                let mut xs: Vec<f64> = s.points.iter().map(|p| p.0).collect();
                xs.sort_by(f64::total_cmp);
                xs.dedup();
                xs.len() > 1
            });
            if varied {
                let name = format!("{key}-vs-step-size{}.svg", suffix(panel));
                chart_svg(
                    &plots_dir.join(&name),
                    &Chart {
                        title: &format!("{title} vs step size — {panel}"),
                        x_desc: "step size (mean over levels)",
                        y_desc: key,
                        log_x: true,
                        lines: true,
                        legend: SeriesLabelPosition::UpperRight,
                    },
                    &by_step,
                )?;
                files.push((name, format!("{key} vs step size")));
            }
        }
        // Acceptance per level, mean over seeds, one line per group.
        let mut acc_series = Vec::new();
        for g in &in_panel {
            let mut by_level: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for r in g.done() {
                for (l, a) in &r.acceptance_by_level {
                    by_level.entry(*l).or_default().push(*a);
                }
            }
            if by_level.is_empty() {
                continue;
            }
            acc_series.push(Series {
                label: g.name.clone(),
                points: by_level
                    .iter()
                    .map(|(l, v)| (*l as f64, mean_std(v).0, 0.0))
                    .collect(),
            });
        }
        if !acc_series.is_empty() {
            let name = format!("acceptance-vs-level{}.svg", suffix(panel));
            chart_svg(
                &plots_dir.join(&name),
                &Chart {
                    title: &format!("MH acceptance per level — {panel}"),
                    x_desc: "level (0 = data)",
                    y_desc: "acceptance",
                    log_x: false,
                    lines: true,
                    legend: SeriesLabelPosition::LowerRight,
                },
                &acc_series,
            )?;
            files.push((name, "acceptance vs level".into()));
        }
        plot_files.insert(panel.clone(), files);
    }

    // Run log: wall time of each invocation.
    let runs: Vec<serde_json::Value> = std::fs::read_to_string(out.join("runs.jsonl"))
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
    let command = match source {
        Some(p) => format!("cargo xtask sweep {}", p.display()),
        None => "cargo xtask sweep <file>".into(),
    };
    let seeds: Vec<String> = {
        let mut s: Vec<String> = cells
            .iter()
            .map(|(c, _)| c.sampling.seed.to_string())
            .collect();
        s.dedup();
        s.sort();
        s.dedup();
        s
    };
    let counts = format!(
        "{} cells: {n_ok} finished, {n_na} not applicable, {n_failed} failed, {n_missing} not run. \
         Seeds {}; each row is mean ± std over them. Wall time of the sweep invocations: {:.0} s \
         ({} invocation(s)); sampling time summed over cells: {:.0} s.",
        cells.len(),
        seeds.join(", "),
        wall,
        runs.len(),
        cell_seconds
    );

    // results.md
    let mut md = format!(
        "# Sweep `{}`\n\n{}\n\nRegenerate: `{command}` (report only: `{command} --report-only`).\n\n{counts}\n",
        sweep.name, sweep.description
    );
    let mut html_tables = String::new();
    for panel in &panels {
        let in_panel: Vec<&Group> = groups
            .iter()
            .filter(|g| &panel_of(g.first()) == panel)
            .collect();
        if panels.len() > 1 {
            let _ = writeln!(md, "\n## {panel}\n");
        } else {
            md.push('\n');
        }
        let mut head = String::from("|");
        let mut rule = String::from("|");
        let mut hhead = String::new();
        for a in &row_axes {
            let _ = write!(head, " {a} |");
            rule.push_str("---|");
            let _ = write!(hhead, "<th>{}</th>", esc(a));
        }
        head.push_str(" seeds |");
        rule.push_str("---|");
        hhead.push_str("<th>seeds</th>");
        for (_, t, _) in &used {
            let _ = write!(head, " {t} |");
            rule.push_str("---|");
            let _ = write!(hhead, "<th>{}</th>", esc(t));
        }
        head.push_str(" status |");
        rule.push_str("---|");
        hhead.push_str("<th>status</th>");
        let _ = writeln!(md, "{head}\n{rule}");
        let mut hrows = String::new();
        let exact_cells: Vec<&Cell> = in_panel
            .iter()
            .flat_map(|g| g.cells.iter().map(|(c, _)| *c))
            .collect();
        for g in in_panel {
            let c = g.first();
            let mut row = String::from("|");
            let mut hrow = String::from("<tr>");
            for a in &row_axes {
                let l = c.label(a).unwrap_or("");
                let _ = write!(row, " {l} |");
                let _ = write!(hrow, "<td>{}</td>", esc(l));
            }
            let n = g.done().len();
            let _ = write!(row, " {n} |");
            let _ = write!(hrow, "<td>{n}</td>");
            for (k, _, p) in &used {
                let v = fmt_ms(&g.values(k), *p);
                let _ = write!(row, " {v} |");
                let _ = write!(hrow, "<td>{}</td>", esc(&v));
            }
            let st = g.status();
            let _ = writeln!(row, " {st} |");
            let _ = writeln!(hrow, "<td>{}</td></tr>", esc(&st));
            md.push_str(&row);
            hrows.push_str(&hrow);
        }
        if let Some(scores) = exact_reference(&exact_cells)? {
            let mut row = String::from("|");
            let mut hrow = String::from("<tr class=\"exact\">");
            for (i, _) in row_axes.iter().enumerate() {
                let l = if i == 0 { "exact samples" } else { "" };
                let _ = write!(row, " {l} |");
                let _ = write!(hrow, "<td>{l}</td>");
            }
            let n = scores.len();
            let _ = write!(row, " {n} |");
            let _ = write!(hrow, "<td>{n}</td>");
            for (k, _, p) in &used {
                let v: Vec<f64> = scores.iter().filter_map(|m| m.get(*k).copied()).collect();
                let v = fmt_ms(&v, *p);
                let _ = write!(row, " {v} |");
                let _ = write!(hrow, "<td>{}</td>", esc(&v));
            }
            let note = "reference: independent exact samples of the target";
            let _ = writeln!(row, " {note} |");
            let _ = writeln!(hrow, "<td>{note}</td></tr>");
            md.push_str(&row);
            hrows.push_str(&hrow);
        }
        let files = &plot_files[panel];
        if !files.is_empty() {
            md.push('\n');
            for (f, t) in files {
                let _ = writeln!(md, "![{t}](plots/{f})");
            }
        }
        // Samples of the first seed of every group.
        let mut gallery = String::new();
        for g in groups.iter().filter(|g| &panel_of(g.first()) == panel) {
            let first_ok = g.cells.iter().find(|(c, s)| {
                matches!(s, CellState::Done(r) if r.status == STATUS_OK)
                    && cell_dir(out, c).join("samples.png").exists()
            });
            if let Some((c, _)) = first_ok {
                let rel = format!("../cells/{}/samples.png", c.dir_name());
                let _ = writeln!(
                    gallery,
                    "<figure><img src=\"{}\" alt=\"samples of {}\" width=\"192\" height=\"192\"><figcaption>{}</figcaption></figure>",
                    esc(&rel),
                    esc(&c.name),
                    esc(&c.name)
                );
            }
        }
        let plots_html: String = files
            .iter()
            .map(|(f, t)| {
                format!(
                    "<figure><img class=\"plot\" src=\"plots/{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n",
                    esc(f),
                    esc(t),
                    esc(t)
                )
            })
            .collect();
        let _ = write!(
            html_tables,
            "<section>\n<h2>{}</h2>\n<table>\n<thead><tr>{hhead}</tr></thead>\n<tbody>\n{hrows}</tbody>\n</table>\n<div class=\"plots\">\n{plots_html}</div>\n<h3>Samples (first seed; grey: exact target)</h3>\n<div class=\"gallery\">\n{gallery}</div>\n</section>\n",
            esc(panel)
        );
    }
    let failures: Vec<String> = cells
        .iter()
        .filter_map(|(c, s)| match s {
            CellState::Failed(m) => Some(format!("- `{}`: {m}", c.dir_name())),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(md, "\n## Failed cells\n\n{}", failures.join("\n"));
    }
    let glossary: Vec<&str> = METRIC_NOTES
        .iter()
        .filter(|(k, _)| used.iter().any(|(u, _, _)| u == k))
        .map(|(_, note)| *note)
        .collect();
    if !glossary.is_empty() {
        let _ = writeln!(md, "\nMetrics: {}.", glossary.join("; "));
    }
    std::fs::write(dir.join("results.md"), &md)?;

    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Sweep {name}</title>\n<style>\n\
body {{ font-family: sans-serif; margin: 2em; color: #222; }}\n\
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}\n\
th, td {{ border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; white-space: nowrap; }}\n\
td:last-child {{ white-space: normal; min-width: 20em; }}\n\
tr.exact {{ background: #f4f4f4; font-style: italic; }}\n\
th {{ background: #eee; }}\n\
figure {{ display: inline-block; margin: 0.4em; vertical-align: top; }}\n\
figcaption {{ font-size: 0.8em; text-align: center; max-width: 192px; word-wrap: break-word; }}\n\
img.plot {{ width: 640px; height: 420px; border: 1px solid #ddd; }}\n\
</style>\n</head>\n<body>\n<h1>Sweep <code>{name}</code></h1>\n<p>{desc}</p>\n<p>Regenerate: <code>{cmd}</code></p>\n<p>{counts}</p>\n\
<p>Tables: <a href=\"results.csv\">results.csv</a> (one row per cell), <a href=\"results.md\">results.md</a>.</p>\n{tables}</body>\n</html>\n",
        name = esc(&sweep.name),
        desc = esc(&sweep.description),
        cmd = esc(&command),
        counts = esc(&counts),
        tables = html_tables,
    );
    std::fs::write(dir.join("index.html"), html)?;
    Ok(dir)
}
