//! Scores of 2-D samples against an exact target, shared by `experiment compose2d` and sweeps.

use ebdiff_data::ExactTarget2d;

/// MMD kernel bandwidths: from sub-mode (σ = 0.075) to ring scale.
pub const MMD_BANDWIDTHS: [f64; 4] = [0.025, 0.05, 0.1, 0.2];

/// Per-sample log-densities are floored here: a smoothed rectangle has no mass outside
/// [−1.1, 1.1]², so one stray sample would otherwise make the mean −∞. The share of floored
/// samples is reported next to the mean.
pub const LOG_DENSITY_FLOOR: f64 = -30.0;

/// (mean floored log-density, fraction of samples below the floor). NaN counts as below.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub fn scored_log_density(target: &ExactTarget2d, samples: &[f32]) -> (f64, f64) {
    let lp: Vec<f64> = samples
        .chunks_exact(2)
        .map(|p| target.log_density([p[0] as f64, p[1] as f64]))
        .collect();
    let below = lp.iter().filter(|v| !(**v >= LOG_DENSITY_FLOOR)).count();
    let mean = lp
        .iter()
        .map(|v| {
            if *v >= LOG_DENSITY_FLOOR {
                *v
            } else {
                LOG_DENSITY_FLOOR
            }
        })
        .sum::<f64>()
        / lp.len() as f64;
    (mean, below as f64 / lp.len() as f64)
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}
