//! Shared foundations of ebdiff: the VP noise schedule (the one place σ_t is defined),
//! run-time backend selection, seeded host-side randomness, and strict TOML config loading.

pub mod backend;
pub mod config;
pub mod rng;
pub mod schedule;

pub use backend::BackendKind;
pub use config::{ConfigError, load_toml, parse_toml};
pub use schedule::{NoiseSchedule, ScheduleConfig};
