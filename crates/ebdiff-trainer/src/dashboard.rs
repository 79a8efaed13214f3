//! The terminal dashboard of `cargo xtask train --dashboard`: burn-train's renderer (live plots
//! of loss, learning rate, gradient norm, EMA β and throughput; progress and ETA) and its file
//! metric logger, driven from ebdiff's own training loop. burn-train's `Learner` cannot run that loop (the energy step
//! differentiates an explicit VJP, checkpoints hold EMA and data position, runs resume exactly);
//! its renderer and logger are independent of the `Learner` and take metrics from any loop.
//!
//! Stopping: the dashboard puts the terminal in raw mode, where Ctrl-C is a key press rather than
//! SIGINT, so this module turns signal generation back on: Ctrl-C stops training at the end of the
//! step and checkpoints, as without the dashboard. The dashboard's own `q` → "quit" does the same.

use crate::train::StepReport;
use burn_train::Interrupter;
use burn_train::logger::{FileMetricLogger, MetricLogger, TrainingProgressLogger};
use burn_train::metric::store::{MetricsUpdate, NumericMetricUpdate, Split};
use burn_train::metric::{
    MetricAttributes, MetricDefinition, MetricEntry, MetricId, NumericAttributes, NumericEntry,
    SerializedEntry,
};
use burn_train::renderer::tui::TuiMetricsRendererWrapper;
use burn_train::renderer::{MetricState, MetricsRenderer, MetricsRendererTraining};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// (name, unit, higher is better) of every plotted metric, in display order.
pub const METRICS: [(&str, &str, bool); 5] = [
    ("Loss", "", false),
    ("Learning rate", "", true),
    ("Gradient norm", "", false),
    ("EMA beta", "", true),
    ("Examples per second", "ex/s", true),
];

/// The dashboard's numbers without its window: the plotted metrics of every step (throughput
/// from the step times) written as burn-train's metric files, `run/burn-train/train/epoch-N/`
/// (N: this session of the run: 1, then one more per `--resume`, so that a resumed run does not
/// overwrite the earlier session's files).
pub struct DashboardLog {
    logger: FileMetricLogger,
    definitions: Vec<MetricDefinition>,
    batch_size: usize,
    first_step: Option<u64>,
    last: (u64, f64),
    session: usize,
}

impl DashboardLog {
    /// Opens the metric files of a run of batches of `batch_size`; the session number counts
    /// the starts recorded in `run/run.json` so far.
    pub fn open(run: &Path, batch_size: usize) -> Self {
        let earlier_sessions = std::fs::read_to_string(run.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).ok())
            .map_or(0, |starts| starts.len());
        let mut logger = FileMetricLogger::new(run.join("burn-train"));
        let mut definitions = Vec::new();
        for (name, unit, higher_is_better) in METRICS {
            let definition = MetricDefinition {
                metric_id: MetricId::new(Arc::new(name.to_string())),
                name: Arc::new(name.to_string()),
                description: None,
                attributes: MetricAttributes::Numeric(NumericAttributes {
                    unit: (!unit.is_empty()).then(|| unit.to_string()),
                    higher_is_better,
                }),
            };
            logger.log_metric_definition(definition.clone());
            definitions.push(definition);
        }
        DashboardLog {
            logger,
            definitions,
            batch_size,
            first_step: None,
            last: (0, 0.0),
            session: earlier_sessions + 1,
        }
    }

    /// The session whose files this log writes (`epoch-N`).
    pub fn session(&self) -> usize {
        self.session
    }

    /// Writes one step's metrics and returns them with their values, in [`METRICS`] order.
    pub fn record(&mut self, r: &StepReport) -> Vec<(MetricEntry, f64)> {
        let first = *self.first_step.get_or_insert(r.step - 1);
        let dt = (r.seconds - self.last.1).max(1e-9);
        let rate = (r.step - self.last.0.max(first)) as f64 * self.batch_size as f64 / dt;
        self.last = (r.step, r.seconds);
        let values = [r.loss, r.lr, r.grad_norm, r.ema_beta, rate];
        let entries: Vec<(MetricEntry, f64)> = self
            .definitions
            .iter()
            .zip(values)
            .map(|(d, value)| {
                let serialized = SerializedEntry::new(format!("{value:.5e}"), value.to_string());
                (MetricEntry::new(d.metric_id.clone(), serialized), value)
            })
            .collect();
        let numeric = entries
            .iter()
            .map(|(entry, value)| NumericMetricUpdate {
                entry: entry.clone(),
                numeric_entry: Some(NumericEntry::Value(*value)),
                running_entry: None,
            })
            .collect();
        self.logger.log(
            MetricsUpdate::new(Vec::new(), numeric),
            self.session,
            &Split::Train,
        );
        entries
    }
}

/// burn-train's terminal dashboard over a [`DashboardLog`].
///
/// ```no_run
/// use ebdiff_trainer::dashboard::Dashboard;
/// use ebdiff_trainer::{ExperimentConfig, RunOptions, train_to_dir};
/// use std::sync::Arc;
/// use std::sync::atomic::AtomicBool;
///
/// let cfg = ExperimentConfig::load("configs/toy2d.toml".as_ref())?;
/// let stop = Arc::new(AtomicBool::new(false));
/// let opts = RunOptions {
///     out: "runs/toy2d-energy".into(),
///     resume: false,
///     stop: stop.clone(),
///     group: ebdiff_core::collective::solo(),
/// };
/// let mut dashboard = Dashboard::open(&opts.out, cfg.train.steps, cfg.train.batch_size, stop);
/// let trained = train_to_dir(&cfg, &burn::tensor::Device::flex(), &opts, |r| dashboard.step(r));
/// dashboard.close();
/// trained?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Dashboard {
    renderer: TuiMetricsRendererWrapper,
    log: DashboardLog,
    interrupter: Interrupter,
    stop: Arc<AtomicBool>,
    last_isig: Instant,
}

impl Dashboard {
    /// Opens the dashboard for a run of `total_steps` writing burn-train's metric files into
    /// `run/burn-train/train/epoch-N/` ([`DashboardLog`]). `stop` is the flag Ctrl-C sets; the
    /// dashboard's quit sets it too.
    pub fn open(run: &Path, total_steps: usize, batch_size: usize, stop: Arc<AtomicBool>) -> Self {
        let interrupter = Interrupter::new();
        let mut renderer = TuiMetricsRendererWrapper::new(interrupter.clone(), None);
        let log = DashboardLog::open(run, batch_size);
        for definition in &log.definitions {
            renderer.register_metric(definition.clone());
        }
        renderer.start(1, 0, Some(total_steps), Some("ebdiff train"));
        renderer.start_split("train", total_steps);
        Dashboard {
            renderer,
            log,
            interrupter,
            stop,
            last_isig: Instant::now() - Duration::from_secs(1),
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
        for (entry, value) in self.log.record(r) {
            self.renderer.update_train(MetricState::Numeric(
                entry,
                Some(NumericEntry::Value(value)),
            ));
        }
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
/// SIGINT (which the caller's handler turns into the `stop` flag).
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
