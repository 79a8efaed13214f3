//! The metric files of `train --dashboard` (burn-train's format, written beside the run): one
//! line per step for each plotted metric, the throughput from the step times, and a folder per
//! session (`epoch-N`) so that a resumed run keeps the earlier session's files.

use ebdiff_trainer::StepReport;
use ebdiff_trainer::dashboard::{DashboardLog, METRICS};
use std::path::Path;

fn report(step: u64, seconds: f64) -> StepReport {
    StepReport {
        step,
        loss: 0.25 * step as f64,
        lr: 1e-3,
        grad_norm: 2.0,
        ema_beta: 0.9,
        seconds,
    }
}

/// burn-train names a metric's file after it, spaces as underscores.
fn lines(run: &Path, session: usize, metric: &str) -> Vec<f64> {
    let file = run.join(format!("burn-train/train/epoch-{session}/{metric}.log"));
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn every_step_is_logged_and_a_resumed_session_writes_its_own_files() {
    let run = tempfile::tempdir().unwrap();
    let mut log = DashboardLog::open(run.path(), 4);
    assert_eq!(log.session(), 1);
    // Steps 1–3 end at 0.5 s, 1.5 s and 2.0 s: batches of 4 → 8, 4 and 8 examples/s.
    let mut rates = Vec::new();
    for (step, seconds) in [(1, 0.5), (2, 1.5), (3, 2.0)] {
        let values = log.record(&report(step, seconds));
        assert_eq!(values.len(), METRICS.len());
        rates.push(values[4].1);
    }
    assert_eq!(rates, [8.0, 4.0, 8.0]);
    drop(log); // flushes burn-train's logger threads
    assert_eq!(lines(run.path(), 1, "Loss"), [0.25, 0.5, 0.75]);
    assert_eq!(lines(run.path(), 1, "Examples_per_second"), [8.0, 4.0, 8.0]);

    // The run started once (run.json lists its starts): the resumed session is the second. Its
    // first step counts from the checkpoint it resumed at, not from step 0.
    std::fs::write(run.path().join("run.json"), r#"[{"step": 0}]"#).unwrap();
    let mut log = DashboardLog::open(run.path(), 4);
    assert_eq!(log.session(), 2);
    assert_eq!(log.record(&report(4, 0.25))[4].1, 16.0);
    drop(log);
    assert_eq!(lines(run.path(), 2, "Loss"), [1.0]);
    assert_eq!(lines(run.path(), 1, "Loss"), [0.25, 0.5, 0.75]);
}
