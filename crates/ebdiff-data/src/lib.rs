//! Data for ebdiff. The 2-D toys have exact samplers and exact log-densities, so that sample
//! quality can be measured against the truth; `target2d` composes them into the exact targets of
//! the paper's product, mixture and negation demos. `image` loads and batches the image datasets.
//! `io` reads and writes the array and object files every crate uses (`.npy`, `.npz`, pickle).

pub mod image;
pub mod io;
pub mod target2d;
pub mod toy2d;

pub use crate::image::{
    DataError, ImageBatch, ImageDataConfig, ImageDataset, ImageLoader, LoaderOptions, Remote,
    ShapesConfig, Split,
};
pub use target2d::{Composition2d, ExactTarget2d};
pub use toy2d::{BACKGROUND_HALF_WIDTH, Toy2d, Toy2dConfig};

/// Mean of `f` over flat `[n, 2]` points.
pub(crate) fn mean_over_points(points: &[f32], f: impl Fn([f64; 2]) -> f64) -> f64 {
    let n = points.len() / 2;
    points
        .chunks_exact(2)
        .map(|p| f([p[0] as f64, p[1] as f64]))
        .sum::<f64>()
        / n as f64
}
