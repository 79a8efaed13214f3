//! Evaluation: metrics of samples against exactly known targets, distances between sample sets,
//! composition accuracy on the shapes dataset, feature-based image metrics (FID, KID,
//! precision/recall) with their statistics files, the FID pipelines of `cargo xtask fid`,
//! `fid-stats` and `eval` ([`pipeline`]), the `fid` and `fid-stats` commands themselves
//! ([`fid_commands`]), and plots. Array files are read and written by
//! [`ebdiff_data::io`].

pub mod chart;
pub mod composition_accuracy;
pub mod distances;
mod feature_rows;
pub mod feature_stats;
pub mod fid;
pub mod fid_commands;
pub mod frechet;
pub mod grid;
pub mod html;
pub mod inception;
pub mod kid;
pub mod pipeline;
pub mod precision_recall;
pub mod scatter;
pub mod stats_npz;
pub mod toy_metrics;

pub use composition_accuracy::{
    CompositionScore, ObjectCounts, composition_accuracy, object_counts,
};
pub use distances::{MMD_BANDWIDTHS, mmd2_rbf, w2_exact};
pub use feature_stats::FeatureStats;
pub use frechet::{FrechetError, frechet_distance};
pub use grid::{MODEL_PIXEL_QUANTIZATION, model_pixel_to_u8, write_image_grid_png};
pub use kid::{
    KidConfig, KidEstimate, kernel_inception_distance, kid_from_subsets, polynomial_mmd2_unbiased,
};
pub use precision_recall::{PR_NEIGHBOURHOOD, PrecisionRecall, precision_recall};
pub use scatter::{ScatterSeries, write_scatter_png};
pub use stats_npz::{
    load_stats_npz, save_features_npz, save_stats_npz, save_stats_npz_with_features,
};
pub use toy_metrics::{
    LOG_DENSITY_FLOOR, LogDensityReport, MeanLogDensity, log_density_gap, mean_log_density,
};
