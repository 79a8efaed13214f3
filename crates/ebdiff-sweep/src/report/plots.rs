//! The report's SVG charts (`report/plots/*.svg`), per panel: each quality metric against NFE,
//! against `report.x` and against the step size actually used, and MH acceptance per level.

use super::{Group, Report, mean_std};
use crate::spec::sanitize;
use anyhow::Result;
use ebdiff_eval::chart::{Chart, Series, chart_svg};
use plotters::prelude::SeriesLabelPosition;
use std::collections::BTreeMap;
use std::path::Path;

/// Quality metrics plotted against NFE, step size and `report.x`: (key, title).
const QUALITY: [(&str, &str); 6] = [
    ("accuracy", "composition accuracy (higher is better)"),
    ("fid", "FID (lower is better)"),
    ("kid", "KID (lower is better)"),
    ("log_density", "mean log-density (higher is better)"),
    ("mmd2", "MMD² (lower is better)"),
    ("w2", "W2 (lower is better)"),
];

/// (x, y, ±y) of a chart.
type Point = (f64, f64, f64);

/// Draws every chart into `plots_dir`; returns, per panel (in report order), the (file name,
/// title) of its charts.
pub(super) fn write_plots(report: &Report, plots_dir: &Path) -> Result<Vec<Vec<(String, String)>>> {
    let suffix = |p: &str| {
        if report.panels.len() > 1 {
            format!("-{p}")
        } else {
            String::new()
        }
    };
    let mut all = Vec::new();
    for panel in &report.panels {
        let name = panel.name.as_str();
        let mut files = Vec::new();
        let mut draw = |file: String, what: String, chart: &Chart, series: &[Series]| {
            chart_svg(&plots_dir.join(&file), chart, series)?;
            files.push((file, what));
            anyhow::Ok(())
        };
        let series_by = |f: &dyn Fn(&Group) -> Option<Point>| -> Vec<Series> {
            let mut out: Vec<Series> = Vec::new();
            for g in &panel.groups {
                let Some(p) = f(g) else { continue };
                let label = report.series_of(g.first());
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
            if !report.uses(key) {
                continue;
            }
            // Mean ± std of `key` at the mean of `x_key` over a group's seeds.
            let against = |x_key: &str| {
                series_by(&|g| {
                    let v = g.values(key);
                    let x = g.values(x_key);
                    (!v.is_empty() && !x.is_empty()).then(|| {
                        let (m, s) = mean_std(&v);
                        (mean_std(&x).0, m, s)
                    })
                })
            };
            let by_nfe = against("nfe");
            if !by_nfe.is_empty() && report.uses("nfe") {
                draw(
                    format!("{key}-vs-nfe{}.svg", suffix(name)),
                    format!("{key} vs NFE"),
                    &Chart {
                        title: &format!("{title} vs NFE — {name}"),
                        x_desc: "NFE (target evaluations per chain)",
                        y_desc: key,
                        log_x: true,
                        lines: false,
                        legend: SeriesLabelPosition::UpperRight,
                    },
                    &by_nfe,
                )?;
            }
            if let Some(xkey) = &report.sweep.report.x {
                let by_x = series_by(&|g| {
                    let v = g.values(key);
                    let x = g.first().number(xkey)?;
                    (!v.is_empty()).then(|| {
                        let (m, s) = mean_std(&v);
                        (x, m, s)
                    })
                });
                if !by_x.is_empty() {
                    draw(
                        format!("{key}-vs-{}{}.svg", sanitize(xkey), suffix(name)),
                        format!("{key} vs {xkey}"),
                        &Chart {
                            title: &format!("{title} vs {xkey} — {name}"),
                            x_desc: xkey,
                            y_desc: key,
                            log_x: false,
                            lines: true,
                            legend: SeriesLabelPosition::LowerRight,
                        },
                        &by_x,
                    )?;
                }
            }
            let by_step = against("step_size");
            let varied = by_step.iter().any(|s| {
                let mut xs: Vec<f64> = s.points.iter().map(|p| p.0).collect();
                xs.sort_by(f64::total_cmp);
                xs.dedup();
                xs.len() > 1
            });
            if varied {
                draw(
                    format!("{key}-vs-step-size{}.svg", suffix(name)),
                    format!("{key} vs step size"),
                    &Chart {
                        title: &format!("{title} vs step size — {name}"),
                        x_desc: "step size (mean over levels)",
                        y_desc: key,
                        log_x: true,
                        lines: true,
                        legend: SeriesLabelPosition::UpperRight,
                    },
                    &by_step,
                )?;
            }
        }
        // Acceptance per level, mean over seeds, one line per group.
        let mut acc_series = Vec::new();
        for g in &panel.groups {
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
            draw(
                format!("acceptance-vs-level{}.svg", suffix(name)),
                "acceptance vs level".into(),
                &Chart {
                    title: &format!("MH acceptance per level — {name}"),
                    x_desc: "level (0 = data)",
                    y_desc: "acceptance",
                    log_x: false,
                    lines: true,
                    legend: SeriesLabelPosition::LowerRight,
                },
                &acc_series,
            )?;
        }
        all.push(files);
    }
    Ok(all)
}
