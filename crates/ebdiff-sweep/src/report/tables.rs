//! `results.csv` (one row per cell) and the per-panel tables (mean ± std over seeds per group,
//! then a row of exact samples scored like the cells), rendered as `results.md` here and as HTML
//! by [`super::html`].

use super::{CellState, Panel, Report, mean_std};
use crate::spec::{Cell, exact_target};
use anyhow::Result;
use ebdiff_core::rng::stream;
use ebdiff_eval::{LOG_DENSITY_FLOOR, MMD_BANDWIDTHS, mean_log_density, mmd2_rbf, w2_exact};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One panel's table: a header, then one row per group (and the exact-samples row).
pub(super) struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

pub(super) struct Row {
    pub cells: Vec<String>,
    /// The row of independent exact samples (the best a sampler can score at this count).
    pub exact: bool,
}

/// What each reported column means, for the note under the tables (only the columns shown).
fn metric_notes() -> Vec<(&'static str, String)> {
    let bandwidths: Vec<String> = MMD_BANDWIDTHS.iter().map(f64::to_string).collect();
    vec![
        (
            "accuracy",
            "accuracy is the share of samples with an object in every requested cell (the labels \
             of the composition's conditional models), by the dataset's exact pixel detector"
                .into(),
        ),
        (
            "cell_recall",
            "cell recall is the mean share of the requested cells that hold an object".into(),
        ),
        (
            "objects",
            "objects is the mean number of occupied cells per sample".into(),
        ),
        (
            "log_density",
            format!(
                "log-density is the mean log p(x) under the exact composed target with per-sample \
                 values floored at {LOG_DENSITY_FLOOR} (`floored` is the share at the floor)"
            ),
        ),
        (
            "mmd2",
            format!(
                "MMD² is unbiased with RBF bandwidths {}",
                bandwidths.join(", ")
            ),
        ),
        (
            "w2",
            "W2 is the exact optimal assignment to as many exact samples".into(),
        ),
        (
            "fid",
            "FID and KID compare the samples' Inception pool3 features with `eval.reference` \
             (each cell's `fid.json` records the convention)"
                .into(),
        ),
        (
            "nfe",
            "NFE counts target evaluations per chain (each evaluates every component model)".into(),
        ),
        (
            "acceptance",
            "acceptance is the mean MH acceptance over levels".into(),
        ),
        (
            "ess_min",
            "ESS min is SMC's smallest ESS/N over the levels (1/N: one particle carried all the \
             weight), resamplings the number of levels that resampled"
                .into(),
        ),
        (
            "step_size",
            "step size is the mean over levels of the step actually used".into(),
        ),
    ]
}

/// Mean ± std with `p` decimals (the mean alone for one value or no spread); "–" for none.
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

/// results.csv: one row per cell with its labels, status, metrics and note.
pub(super) fn csv(report: &Report) -> String {
    let mut csv = String::from("cell,id");
    for a in &report.sweep.axes {
        let _ = write!(csv, ",{a}");
    }
    csv.push_str(",status");
    for (k, _, _) in &report.used {
        let _ = write!(csv, ",{k}");
    }
    csv.push_str(",note\n");
    for (c, s) in report.cells {
        let _ = write!(csv, "{},{}", c.name, c.id);
        for a in &report.sweep.axes {
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
        for (k, _, _) in &report.used {
            match metrics.and_then(|m| m.get(*k)) {
                Some(v) => {
                    let _ = write!(csv, ",{v}");
                }
                None => csv.push(','),
            }
        }
        let _ = writeln!(csv, ",\"{}\"", note.replace('"', "'"));
    }
    csv
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
    let target = exact_target(&name)?;
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

/// The table of one panel: row axes, seeds, the used metric columns and the status.
pub(super) fn panel_table(report: &Report, panel: &Panel) -> Result<Table> {
    let mut header: Vec<String> = report.row_axes.iter().map(|a| a.to_string()).collect();
    header.push("seeds".into());
    header.extend(report.used.iter().map(|(_, t, _)| t.to_string()));
    header.push("status".into());
    let mut rows = Vec::new();
    for g in &panel.groups {
        let c = g.first();
        let mut cells: Vec<String> = report
            .row_axes
            .iter()
            .map(|a| c.label(a).unwrap_or("").to_string())
            .collect();
        cells.push(g.done().len().to_string());
        cells.extend(report.used.iter().map(|(k, _, p)| fmt_ms(&g.values(k), *p)));
        cells.push(g.status());
        rows.push(Row {
            cells,
            exact: false,
        });
    }
    let exact_cells: Vec<&Cell> = panel
        .groups
        .iter()
        .flat_map(|g| g.cells.iter().map(|(c, _)| *c))
        .collect();
    if let Some(scores) = exact_reference(&exact_cells)? {
        let mut cells: Vec<String> = (0..report.row_axes.len())
            .map(|i| if i == 0 { "exact samples" } else { "" }.to_string())
            .collect();
        cells.push(scores.len().to_string());
        for (k, _, p) in &report.used {
            let v: Vec<f64> = scores.iter().filter_map(|m| m.get(*k).copied()).collect();
            cells.push(fmt_ms(&v, *p));
        }
        cells.push("reference: independent exact samples of the target".into());
        rows.push(Row { cells, exact: true });
    }
    Ok(Table { header, rows })
}

/// results.md: the counts, one table (and its plots) per panel, failures and a glossary of the
/// shown metrics.
pub(super) fn markdown(
    report: &Report,
    command: &str,
    counts: &str,
    tables: &[Table],
    plots: &[Vec<(String, String)>],
) -> String {
    let sweep = report.sweep;
    let mut md = format!(
        "# Sweep `{}`\n\n{}\n\nRegenerate: `{command}` (report only: `{command} --report-only`).\n\n{counts}\n",
        sweep.name, sweep.description
    );
    for ((panel, table), files) in report.panels.iter().zip(tables).zip(plots) {
        if report.panels.len() > 1 {
            let _ = writeln!(md, "\n## {}\n", panel.name);
        } else {
            md.push('\n');
        }
        let line = |cells: &[String]| {
            let mut line = String::from("|");
            for c in cells {
                let _ = write!(line, " {c} |");
            }
            line
        };
        let _ = writeln!(
            md,
            "{}\n|{}",
            line(&table.header),
            "---|".repeat(table.header.len())
        );
        for row in &table.rows {
            let _ = writeln!(md, "{}", line(&row.cells));
        }
        if !files.is_empty() {
            md.push('\n');
            for (f, t) in files {
                let _ = writeln!(md, "![{t}](plots/{f})");
            }
        }
    }
    let failures: Vec<String> = report
        .cells
        .iter()
        .filter_map(|(c, s)| match s {
            CellState::Failed(m) => Some(format!("- `{}`: {m}", c.dir_name())),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(md, "\n## Failed cells\n\n{}", failures.join("\n"));
    }
    let glossary: Vec<String> = metric_notes()
        .into_iter()
        .filter(|(k, _)| report.uses(k))
        .map(|(_, note)| note)
        .collect();
    if !glossary.is_empty() {
        let _ = writeln!(md, "\nMetrics: {}.", glossary.join("; "));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_glossary_quotes_the_metric_constants() {
        let notes: BTreeMap<_, _> = metric_notes().into_iter().collect();
        assert!(
            notes["mmd2"].ends_with("RBF bandwidths 0.025, 0.05, 0.1, 0.2"),
            "{}",
            notes["mmd2"]
        );
        assert!(notes["log_density"].contains("floored at -30 "));
    }

    #[test]
    fn a_spread_is_shown_only_between_differing_seeds() {
        assert_eq!(fmt_ms(&[], 2), "–");
        assert_eq!(fmt_ms(&[1.0], 2), "1.00");
        assert_eq!(fmt_ms(&[2.0, 2.0], 1), "2.0");
        assert_eq!(fmt_ms(&[1.0, 3.0], 1), "2.0 ± 1.4");
    }
}
