//! One SVG chart (points, error bars, optional lines) for the report's plots (plotters, SVG backend: no
//! system fonts needed).

use anyhow::Result;
use plotters::prelude::*;
use std::path::Path;

/// One labelled series of (x, y, ±y error) points.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// Labels and layout of one chart.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    /// Log x axis.
    pub log_x: bool,
    /// Join each series' points (sorted by x) with lines.
    pub lines: bool,
    pub legend: SeriesLabelPosition,
}

/// Points (with error bars) per series.
pub fn chart_svg(path: &Path, chart: &Chart, series: &[Series]) -> Result<()> {
    let Chart {
        title,
        x_desc,
        y_desc,
        log_x,
        lines,
        legend,
    } = chart;
    let (title, x_desc, y_desc, log_x, lines) = (*title, *x_desc, *y_desc, *log_x, *lines);
    let finite = |v: f64| v.is_finite();
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y, _)| finite(*x) && finite(*y) && (!log_x || *x > 0.0))
    };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y, e) in pts() {
        let e = if e.is_finite() { e } else { 0.0 };
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y - e);
        y1 = y1.max(y + e);
    }
    if x0 > x1 {
        anyhow::bail!("{title}: nothing to plot");
    }
    if log_x {
        x0 /= 1.5;
        x1 *= 1.5;
    } else {
        let pad = ((x1 - x0) * 0.05).max(1e-9);
        x0 -= pad;
        x1 += pad;
    }
    let pad = ((y1 - y0) * 0.08).max(1e-6);
    y0 -= pad;
    y1 += pad;
    // Lines with many points (acceptance per level): small markers.
    let radius = if lines && series.iter().any(|s| s.points.len() > 12) {
        2
    } else {
        4
    };
    let root = SVGBackend::new(path, (640, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .max_light_lines(2)
                .x_labels(8)
                .x_label_formatter(&|x: &f64| tick(*x))
                .x_desc(x_desc)
                .y_desc(y_desc)
                .label_style(("sans-serif", 12))
                .draw()?;
            for (i, s) in series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let mut p: Vec<(f64, f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y, _)| finite(*x) && finite(*y) && (!log_x || *x > 0.0))
                    .collect();
                p.sort_by(|a, b| a.0.total_cmp(&b.0));
                if lines {
                    chart.draw_series(LineSeries::new(
                        p.iter().map(|(x, y, _)| (*x, *y)),
                        color.stroke_width(2),
                    ))?;
                }
                chart.draw_series(p.iter().filter(|(_, _, e)| *e > 0.0 && e.is_finite()).map(
                    |(x, y, e)| {
                        ErrorBar::new_vertical(*x, y - e, *y, y + e, color.stroke_width(1), 6)
                    },
                ))?;
                chart
                    .draw_series(
                        p.iter()
                            .map(|(x, y, _)| Circle::new((*x, *y), radius, color.filled())),
                    )?
                    .label(s.label.clone())
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
            }
            chart
                .configure_series_labels()
                .position(legend.clone())
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()?;
        }};
    }
    if log_x {
        draw!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?);
    } else {
        draw!(builder.build_cartesian_2d(x0..x1, y0..y1)?);
    }
    root.present()?;
    Ok(())
}

/// Tick label: integers as such, small values in scientific notation.
fn tick(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1.0 {
        format!("{x:.0}")
    } else if x.abs() >= 0.1 {
        format!("{x:.1}")
    } else {
        format!("{x:.0e}")
    }
}
