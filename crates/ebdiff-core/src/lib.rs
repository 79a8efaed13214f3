//! Shared foundations of ebdiff: the VP noise schedule (the one place σ_t is defined),
//! run-time backend selection, the collective operations of multi-process runs, the lock over Burn's process-wide RNG and autodiff graph, seeded
//! host-side randomness, and strict TOML config loading.

pub mod backend;
pub mod burn_globals;
pub mod collective;
pub mod config;
pub mod module_weights;
pub mod named_device;
pub mod rng;
pub mod safetensors;
pub mod schedule;

pub use backend::{BackendKind, Precision};
pub use collective::{Collective, Solo};
pub use config::{ConfigError, load_toml, parse_toml};
pub use named_device::NamedDevice;
pub use schedule::{NoiseSchedule, ScheduleConfig};
