//! `cargo xtask train --dashboard`: burn-train's terminal dashboard (live plots of loss, learning
//! rate, gradient norm, EMA β and throughput; progress and ETA) and its file metric logger, driven
//! from ebdiff's own training loop. burn-train's `Learner` cannot run that loop (the energy step
//! differentiates an explicit VJP, checkpoints hold EMA and data position, runs resume exactly);
//! its renderer and logger are independent of the `Learner` and take metrics from any loop.
//!
//! Stopping: the dashboard puts the terminal in raw mode, where Ctrl-C is a key press rather than
//! SIGINT, so this module turns signal generation back on: Ctrl-C stops training at the end of the
//! step and checkpoints, as without the dashboard. The dashboard's own `q` → "quit" does the same.

use burn_train::Interrupter;
use burn_train::logger::{FileMetricLogger, MetricLogger, TrainingProgressLogger};
use burn_train::metric::store::{MetricsUpdate, NumericMetricUpdate, Split};
use burn_train::metric::{
    MetricAttributes, MetricDefinition, MetricEntry, MetricId, NumericAttributes, NumericEntry,
    SerializedEntry,
};
use burn_train::renderer::tui::TuiMetricsRendererWrapper;
use burn_train::renderer::{MetricState, MetricsRenderer, MetricsRendererTraining};
use ebdiff_trainer::StepReport;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// (name, unit, higher is better) of every plotted metric, in display order.
const METRICS: [(&str, &str, bool); 5] = [
    ("Loss", "", false),
    ("Learning rate", "", true),
    ("Gradient norm", "", false),
    ("EMA beta", "", true),
    ("Examples per second", "ex/s", true),
];

pub struct Dashboard {
    renderer: TuiMetricsRendererWrapper,
    logger: FileMetricLogger,
    interrupter: Interrupter,
    ids: Vec<MetricId>,
    stop: Arc<AtomicBool>,
    batch_size: usize,
    first_step: Option<u64>,
    last: (u64, f64),
    last_isig: Instant,
    /// burn-train's logger writes `epoch-N/`; N counts this run's sessions (1, then one more
    /// per `--resume`), so a resumed run does not overwrite the earlier session's files.
    session: usize,
}

impl Dashboard {
    /// Opens the dashboard for a run of `total_steps` writing burn-train's metric files into
    /// `run/burn-train/train/epoch-N/` (N: this session). `stop` is the flag Ctrl-C sets; the
    /// dashboard's quit sets it too.
    pub fn open(run: &Path, total_steps: usize, batch_size: usize, stop: Arc<AtomicBool>) -> Self {
        let earlier_sessions = std::fs::read_to_string(run.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).ok())
            .map_or(0, |starts| starts.len());
        let interrupter = Interrupter::new();
        let mut renderer = TuiMetricsRendererWrapper::new(interrupter.clone(), None);
        let mut logger = FileMetricLogger::new(run.join("burn-train"));
        let mut ids = Vec::new();
        for (name, unit, higher_is_better) in METRICS {
            let id = MetricId::new(Arc::new(name.to_string()));
            let definition = MetricDefinition {
                metric_id: id.clone(),
                name: Arc::new(name.to_string()),
                description: None,
                attributes: MetricAttributes::Numeric(NumericAttributes {
                    unit: (!unit.is_empty()).then(|| unit.to_string()),
                    higher_is_better,
                }),
            };
            renderer.register_metric(definition.clone());
            logger.log_metric_definition(definition);
            ids.push(id);
        }
        renderer.start(1, 0, Some(total_steps), Some("ebdiff train"));
        renderer.start_split("train", total_steps);
        Dashboard {
            renderer,
            logger,
            interrupter,
            ids,
            stop,
            batch_size,
            first_step: None,
            last: (0, 0.0),
            last_isig: Instant::now() - Duration::from_secs(1),
            session: earlier_sessions + 1,
        }
    }

    /// Shows one training step.
    pub fn step(&mut self, r: &StepReport) {
        // The renderer thread enters raw mode at some point after `open`; restore Ctrl-C → SIGINT
        // a few times a second rather than racing it once.
        if self.last_isig.elapsed() > Duration::from_millis(200) {
            keep_ctrl_c_as_signal();
            self.last_isig = Instant::now();
        }
        if self.interrupter.should_stop() {
            self.stop.store(true, Ordering::SeqCst);
        }
        let first = *self.first_step.get_or_insert(r.step - 1);
        let dt = (r.seconds - self.last.1).max(1e-9);
        let rate = (r.step - self.last.0.max(first)) as f64 * self.batch_size as f64 / dt;
        self.last = (r.step, r.seconds);
        let values = [r.loss, r.lr, r.grad_norm, r.ema_beta, rate];
        let mut numeric = Vec::new();
        for (id, value) in self.ids.iter().zip(values) {
            let entry = MetricEntry::new(
                id.clone(),
                SerializedEntry::new(format!("{value:.5e}"), value.to_string()),
            );
            self.renderer.update_train(MetricState::Numeric(
                entry.clone(),
                Some(NumericEntry::Value(value)),
            ));
            numeric.push(NumericMetricUpdate {
                entry,
                numeric_entry: Some(NumericEntry::Value(value)),
                running_entry: None,
            });
        }
        self.logger.log(
            MetricsUpdate::new(Vec::new(), numeric),
            self.session,
            &Split::Train,
        );
        self.renderer.update_split(r.step as usize);
    }

    /// Closes the dashboard and gives the terminal back.
    pub fn close(mut self) {
        self.renderer.end_split();
        self.renderer.end();
        let _ = self.renderer.on_train_end(None);
        // Dropping the renderer closes its window and restores the terminal.
    }
}

/// Re-enables ISIG on the controlling terminal, which raw mode turns off, so that Ctrl-C raises
/// SIGINT (handled by `progress::stop_on_ctrl_c`).
fn keep_ctrl_c_as_signal() {
    // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios that tcgetattr fills; failures
    // (stdin not a terminal) leave the terminal untouched.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) == 0 && t.c_lflag & libc::ISIG == 0 {
            t.c_lflag |= libc::ISIG;
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
    }
}
