//! Evaluation: metrics of samples against exactly known targets, and plots.

pub mod scatter;
pub mod toy_metrics;

pub use scatter::{ScatterSeries, write_scatter_png};
pub use toy_metrics::{LogDensityReport, log_density_gap};
