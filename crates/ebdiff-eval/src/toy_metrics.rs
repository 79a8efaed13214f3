//! Mean log-density of samples under the exact target, compared with as many exact samples.

use ebdiff_data::Toy2d;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogDensityReport {
    /// Mean log p(x) of the model's samples under the exact target.
    pub model: f64,
    /// Mean log p(x) of the same number of exact samples.
    pub exact: f64,
}

impl LogDensityReport {
    /// exact − model: how many nats the model's samples fall short (≤ 0 is as good as exact).
    pub fn gap(&self) -> f64 {
        self.exact - self.model
    }
}

/// Scores flat `[n, 2]` model samples against `exact` samples of the same target.
pub fn log_density_gap(
    target: &Toy2d,
    model_samples: &[f32],
    exact_samples: &[f32],
) -> LogDensityReport {
    LogDensityReport {
        model: target.mean_log_density(model_samples),
        exact: target.mean_log_density(exact_samples),
    }
}
