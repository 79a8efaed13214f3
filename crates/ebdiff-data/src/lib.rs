//! Data for ebdiff. The 2-D toys have exact samplers and exact log-densities, so that sample
//! quality can be measured against the truth.

pub mod toy2d;

pub use toy2d::{Toy2d, Toy2dConfig};
