//! Per-level step-size and mass laws (method.md §4.7), kept apart from the kernels.

use ebdiff_core::NoiseSchedule;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "law", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LevelSchedule {
    /// The same value at every level.
    Constant { value: f64 },
    /// c·β_k.
    BetaScaled { c: f64 },
    /// a·β_k^b (Sjöberg's fitted laws).
    BetaPower { a: f64, b: f64 },
    /// One value per level, indexed by level.
    Table { values: Vec<f64> },
}

impl LevelSchedule {
    pub fn constant(value: f64) -> Self {
        LevelSchedule::Constant { value }
    }

    pub fn at(&self, schedule: &NoiseSchedule, level: usize) -> f64 {
        match self {
            LevelSchedule::Constant { value } => *value,
            LevelSchedule::BetaScaled { c } => c * schedule.beta(level),
            LevelSchedule::BetaPower { a, b } => a * schedule.beta(level).powf(*b),
            LevelSchedule::Table { values } => values[level],
        }
    }

    pub fn validate(&self, levels: usize) -> Result<(), String> {
        let positive = |v: f64, what: &str| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{what} must be positive, got {v}"))
            }
        };
        match self {
            LevelSchedule::Constant { value } => positive(*value, "value"),
            LevelSchedule::BetaScaled { c } => positive(*c, "c"),
            LevelSchedule::BetaPower { a, b } => positive(*a, "a").and(if b.is_finite() {
                Ok(())
            } else {
                Err("b must be finite".into())
            }),
            LevelSchedule::Table { values } => {
                if values.len() != levels {
                    return Err(format!(
                        "table has {} values but the schedule has {levels} levels",
                        values.len()
                    ));
                }
                values.iter().try_for_each(|v| positive(*v, "table value"))
            }
        }
    }
}

/// Least-squares fit of step = a·β^b to (β, step) pairs, in logs: the law Sjöberg et al. fit to
/// per-level tuned steps. Needs two distinct β and positive values.
pub fn fit_beta_power(points: &[(f64, f64)]) -> Result<(f64, f64), String> {
    if let Some(p) = points.iter().find(|(b, s)| !(*b > 0.0 && *s > 0.0)) {
        return Err(format!(
            "β and step must be positive to fit a·β^b, got {p:?}"
        ));
    }
    let logs: Vec<(f64, f64)> = points.iter().map(|(b, s)| (b.ln(), s.ln())).collect();
    let n = logs.len() as f64;
    let mx = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let my = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx.is_nan() || sxx <= 1e-12 * n {
        return Err(format!(
            "the {} tuned levels share one β: a·β^b is not identified (use a constant step)",
            points.len()
        ));
    }
    let b = sxy / sxx;
    Ok(((my - b * mx).exp(), b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebdiff_core::ScheduleConfig;

    #[test]
    fn laws_follow_beta() {
        let s = ScheduleConfig::linear(100).build();
        assert_eq!(LevelSchedule::constant(0.3).at(&s, 7), 0.3);
        assert!((LevelSchedule::BetaScaled { c: 2.0 }.at(&s, 50) - 2.0 * s.beta(50)).abs() < 1e-15);
        let p = LevelSchedule::BetaPower { a: 4.0, b: 1.5 }.at(&s, 10);
        assert!((p - 4.0 * s.beta(10).powf(1.5)).abs() < 1e-15);
        assert!(
            LevelSchedule::Table {
                values: vec![1.0; 99]
            }
            .validate(100)
            .is_err()
        );
        assert!(LevelSchedule::BetaScaled { c: -1.0 }.validate(100).is_err());
    }

    #[test]
    fn the_power_law_fit_recovers_a_and_b() {
        let points: Vec<(f64, f64)> = [0.01, 0.03, 0.1, 0.2]
            .iter()
            .map(|&beta: &f64| (beta, 9.33 * beta.powf(1.48)))
            .collect();
        let (a, b) = fit_beta_power(&points).unwrap();
        assert!(
            (a - 9.33).abs() < 1e-9 && (b - 1.48).abs() < 1e-12,
            "{a} {b}"
        );
        assert!(
            fit_beta_power(&[(0.1, 1.0), (0.1, 2.0)])
                .unwrap_err()
                .contains("one β")
        );
        assert!(fit_beta_power(&[(0.1, -1.0), (0.2, 2.0)]).is_err());
    }
}
