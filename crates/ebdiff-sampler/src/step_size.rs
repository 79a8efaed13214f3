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
}
