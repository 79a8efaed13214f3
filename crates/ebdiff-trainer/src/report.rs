//! The run report, `RUN/report/index.html`: training curves (loss with smoothing, learning rate,
//! gradient norm, EMA β, examples/s against step, as SVG), the sample grids or scatter plots of
//! every saved step side by side, the run's starts and resumptions, its evaluation results and
//! the resolved config. Written at the end of training and by `cargo xtask report RUN`; it only
//! reads the run directory, so it works on any run, finished or not, old or new.

use anyhow::{Context, Result};
use ebdiff_eval::chart::{Chart, Series, chart_svg};
use ebdiff_eval::html::{escape, fill};
use plotters::prelude::SeriesLabelPosition;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const PAGE: &str = include_str!("report.html");

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, serde::Deserialize)]
struct Logged {
    step: f64,
    loss: f64,
    lr: f64,
    grad_norm_max: f64,
    ema_beta: f64,
    examples_per_s: f64,
}

fn read_metrics(run: &Path) -> Result<Vec<Logged>> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{} is not a run directory: no metrics.jsonl", run.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| {
                format!("{}: line {} is not a metrics record", path.display(), i + 1)
            })
        })
        .collect()
}

/// Bias-corrected exponential moving average with a time constant of about `n / 20` points.
fn smoothed(values: &[f64]) -> Vec<f64> {
    let span = (values.len() as f64 / 20.0).max(1.0);
    let decay = 1.0 - 1.0 / span;
    let (mut avg, mut weight) = (0.0, 0.0);
    values
        .iter()
        .map(|v| {
            avg = decay * avg + (1.0 - decay) * v;
            weight = decay * weight + (1.0 - decay);
            avg / weight
        })
        .collect()
}

/// The sample images of a run with a caption each, oldest first: `samples/step-N.png` (what
/// training writes), `samples-step-N.png` (older runs) and the final `samples.png`.
fn sample_images(run: &Path) -> Vec<(String, String)> {
    let mut steps: Vec<(u64, String)> = Vec::new();
    let mut scan = |dir: &Path, prefix: &str, rel: &str| {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(step) = name
                .strip_prefix(prefix)
                .and_then(|s| s.strip_suffix(".png"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                steps.push((step, format!("{rel}{name}")));
            }
        }
    };
    scan(&run.join("samples"), "step-", "../samples/");
    scan(run, "samples-step-", "../");
    steps.sort();
    let mut out: Vec<(String, String)> = steps
        .into_iter()
        .map(|(step, src)| (src, format!("step {step}")))
        .collect();
    if run.join("samples.png").is_file() {
        out.push(("../samples.png".into(), "final (EMA)".into()));
    }
    out
}

/// Starts and resumptions (`run.json`) and the events of `train.log` that change the run's
/// course (interrupted, resumed, stopped, finished).
fn history(run: &Path) -> String {
    let mut html = String::new();
    if let Ok(text) = std::fs::read_to_string(run.join("run.json"))
        && let Ok(starts) = serde_json::from_str::<Vec<serde_json::Value>>(&text)
    {
        html.push_str(
            "<table><tr><th>start</th><th>from step</th><th>ebdiff</th><th>git</th></tr>\n",
        );
        for (i, s) in starts.iter().enumerate() {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                if i == 0 { "started" } else { "resumed" },
                s["from_step"],
                escape(s["ebdiff_version"].as_str().unwrap_or("?")),
                escape(s["git_revision"].as_str().unwrap_or("?")),
            );
        }
        html.push_str("</table>\n");
    }
    if let Ok(log) = std::fs::read_to_string(run.join("train.log")) {
        let events: Vec<&str> = log
            .lines()
            .filter(|l| {
                ["interrupted", "resumed", "stopped", "finished", "started"]
                    .iter()
                    .any(|k| l.contains(k))
            })
            .collect();
        if !events.is_empty() {
            let _ = writeln!(
                html,
                "<p>From <code>train.log</code>:</p><pre>{}</pre>",
                escape(&events.join("\n"))
            );
        }
    }
    if html.is_empty() {
        html.push_str("<p>No <code>run.json</code> or <code>train.log</code> in this run.</p>");
    }
    html
}

/// `summary.json` and every evaluation result under `checkpoints/*/eval/*/result.json`.
fn results(run: &Path) -> String {
    let mut html = String::new();
    let mut show = |path: &Path| {
        if let Ok(text) = std::fs::read_to_string(path) {
            let rel = path.strip_prefix(run).unwrap_or(path);
            let _ = writeln!(
                html,
                "<h3><code>{}</code></h3><pre>{}</pre>",
                escape(&rel.display().to_string()),
                escape(&text)
            );
        }
    };
    show(&run.join("summary.json"));
    let mut evals: Vec<PathBuf> = std::fs::read_dir(run.join("checkpoints"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|c| {
            std::fs::read_dir(c.path().join("eval"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path().join("result.json"))
        .filter(|p| p.is_file())
        .collect();
    evals.sort();
    for p in &evals {
        show(p);
    }
    if html.is_empty() {
        html.push_str(
            "<p>No summary or evaluation results yet (<code>cargo xtask eval</code>).</p>",
        );
    }
    html
}

/// Writes `run/report/index.html` (and its plots) and returns its path.
pub fn write_run_report(run: &Path) -> Result<PathBuf> {
    let metrics = read_metrics(run)?;
    let dir = run.join("report");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let steps: Vec<f64> = metrics.iter().map(|m| m.step).collect();
    let series = |label: &str, values: Vec<f64>| Series {
        label: label.to_string(),
        points: steps
            .iter()
            .zip(values)
            .map(|(s, v)| (*s, v, 0.0))
            .collect(),
    };
    let losses: Vec<f64> = metrics.iter().map(|m| m.loss).collect();
    let plots: [(&str, &str, &str, Vec<Series>); 5] = [
        (
            "loss.svg",
            "Training loss (mean per logged window)",
            "loss",
            vec![
                series("logged", losses.clone()),
                series("smoothed", smoothed(&losses)),
            ],
        ),
        (
            "lr.svg",
            "Learning rate",
            "lr",
            vec![series("lr", metrics.iter().map(|m| m.lr).collect())],
        ),
        (
            "grad-norm.svg",
            "Gradient norm (max per window, before clipping)",
            "‖g‖",
            vec![series(
                "max",
                metrics.iter().map(|m| m.grad_norm_max).collect(),
            )],
        ),
        (
            "ema-beta.svg",
            "EMA decay β per step",
            "β",
            vec![series("β", metrics.iter().map(|m| m.ema_beta).collect())],
        ),
        (
            "throughput.svg",
            "Training throughput",
            "examples/s",
            vec![series(
                "examples/s",
                metrics.iter().map(|m| m.examples_per_s).collect(),
            )],
        ),
    ];
    let mut curves = String::new();
    for (file, title, y, series) in &plots {
        let chart = Chart {
            title,
            x_desc: "step",
            y_desc: y,
            log_x: false,
            lines: true,
            legend: SeriesLabelPosition::UpperRight,
        };
        match chart_svg(&dir.join(file), &chart, series) {
            Ok(()) => {
                let _ = writeln!(
                    curves,
                    "<img class=\"plot\" src=\"{file}\" alt=\"{title}\">"
                );
            }
            // A run with one logged step has nothing to draw for some curves.
            Err(e) => {
                let _ = writeln!(
                    curves,
                    "<p>{}: {}</p>",
                    escape(title),
                    escape(&e.to_string())
                );
            }
        }
    }
    let mut samples = String::new();
    for (src, caption) in sample_images(run) {
        let _ = writeln!(
            samples,
            "<figure><img class=\"sample\" src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
            escape(&src),
            escape(&caption),
            escape(&caption)
        );
    }
    if samples.is_empty() {
        samples.push_str("<p>No sample images saved yet.</p>");
    }
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap_or_default();
    let name = run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let last = metrics.last();
    let status = format!(
        "{} logged steps, last step {}, last loss {}",
        metrics.len(),
        last.map_or("-".into(), |m| m.step.to_string()),
        last.map_or("-".into(), |m| format!("{:.5}", m.loss)),
    );
    let page = fill(
        PAGE,
        &[
            ("name", &escape(&name)),
            ("path", &escape(&run.display().to_string())),
            ("status", &escape(&status)),
            ("curves", &curves),
            ("samples", &samples),
            ("history", &history(run)),
            ("results", &results(run)),
            ("config", &escape(&config)),
        ],
    )?;
    let index = dir.join("index.html");
    std::fs::write(&index, page).with_context(|| format!("cannot write {}", index.display()))?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_follows_a_constant_and_lags_a_step() {
        assert!(smoothed(&[2.0; 50]).iter().all(|v| (v - 2.0).abs() < 1e-12));
        let mut v = vec![0.0; 100];
        v[50..].fill(1.0);
        let s = smoothed(&v);
        assert!(
            s[50] > 0.0 && s[50] < 0.5 && s[99] > 0.9,
            "{:?}",
            &s[48..56]
        );
    }
}
