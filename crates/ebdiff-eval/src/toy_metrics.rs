//! Mean log-density of 2-D samples under an exactly known target: the one definition, with or
//! without a floor on the per-sample values.
//!
//! Who uses which convention, and why:
//! - the trainer's toy evaluation ([`log_density_gap`], `evaluate_toy2d`, the oracle sampling
//!   test) takes the plain mean (`floor: None`): the gap to exact samples is an estimate of a
//!   cross-entropy read in fractions of a nat (on Gaussian toys, positive everywhere), which a
//!   floor would bias; on a rectangle toy a sample outside its support shows as −∞ instead of
//!   being hidden;
//! - sweeps score composed targets (products, negations, smoothed rectangles) that have no mass
//!   in whole regions, where one stray sample would make the mean −∞; they floor each sample at
//!   [`LOG_DENSITY_FLOOR`] and report the floored share next to the mean.

use ebdiff_data::Toy2d;

/// The sweeps' per-sample floor: a smoothed rectangle has no mass outside [−1.1, 1.1]², so one
/// stray sample would otherwise make the mean −∞.
pub const LOG_DENSITY_FLOOR: f64 = -30.0;

/// Mean log p(x) of a sample set, and the share of samples raised to the floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanLogDensity {
    pub mean: f64,
    /// Share of samples whose log-density was below the floor (or NaN); 0 without a floor.
    pub floored_fraction: f64,
}

/// Mean of `log_density` over flat `[n, 2]` `samples` (n ≥ 1). With `floor`, every value below it
/// (and NaN) counts as the floor; without, the plain mean (−∞ or NaN propagate).
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub fn mean_log_density(
    log_density: impl Fn([f64; 2]) -> f64,
    samples: &[f32],
    floor: Option<f64>,
) -> MeanLogDensity {
    let n = samples.len() / 2;
    let mut below = 0usize;
    let sum: f64 = samples
        .chunks_exact(2)
        .map(|p| {
            let v = log_density([p[0] as f64, p[1] as f64]);
            match floor {
                Some(f) if !(v >= f) => {
                    below += 1;
                    f
                }
                _ => v,
            }
        })
        .sum();
    MeanLogDensity {
        mean: sum / n as f64,
        floored_fraction: below as f64 / n as f64,
    }
}

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

/// Scores flat `[n, 2]` model samples against `exact` samples of the same target, by the plain
/// (unfloored) [`mean_log_density`].
pub fn log_density_gap(
    target: &Toy2d,
    model_samples: &[f32],
    exact_samples: &[f32],
) -> LogDensityReport {
    let mean = |s: &[f32]| mean_log_density(|p| target.log_density(p), s, None).mean;
    LogDensityReport {
        model: mean(model_samples),
        exact: mean(exact_samples),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_raises_low_and_nan_values_and_counts_them() {
        // log p = x: values 1, −50, NaN, −2.
        let samples = [1.0, 0.0, -50.0, 0.0, f32::NAN, 0.0, -2.0, 0.0];
        let floored = mean_log_density(|p| p[0], &samples, Some(LOG_DENSITY_FLOOR));
        assert_eq!(floored.mean, (1.0 - 30.0 - 30.0 - 2.0) / 4.0);
        assert_eq!(floored.floored_fraction, 0.5);
        let plain = mean_log_density(|p| p[0], &samples[..4], None);
        assert_eq!((plain.mean, plain.floored_fraction), (-24.5, 0.0));
        assert!(mean_log_density(|p| p[0], &samples, None).mean.is_nan());
    }

    #[test]
    fn gap_is_the_plain_mean_of_the_toy() {
        let toy = Toy2d::ring(4, 1.0, 0.1);
        let a = [1.0, 0.0, 0.0, 1.0];
        let b = [0.5, 0.5, -1.0, 0.0];
        let r = log_density_gap(&toy, &a, &b);
        assert_eq!(r.model, toy.mean_log_density(&a));
        assert_eq!(r.exact, toy.mean_log_density(&b));
    }
}
