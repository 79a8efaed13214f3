//! Data for ebdiff. The 2-D toys have exact samplers and exact log-densities, so that sample
//! quality can be measured against the truth; `target2d` composes them into the exact targets of
//! the paper's product, mixture and negation demos.

pub mod target2d;
pub mod toy2d;

pub use target2d::{Composition2d, ExactTarget2d};
pub use toy2d::{BACKGROUND_HALF_WIDTH, Toy2d, Toy2dConfig};
