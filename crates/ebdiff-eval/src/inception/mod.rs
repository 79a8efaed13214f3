//! The FID Inception-v3 network: Burn implementation, TF1 resize, and weight import.

pub mod network;
pub mod resize;
pub mod torch_file;
pub mod weights;

pub use network::{FEATURE_DIM, INCEPTION_SIZE, InceptionV3};
pub use resize::{resize_tf1_bilinear, tf1_bilinear_weights};
pub use weights::{
    DEFAULT_WEIGHTS_DIR, InceptionError, WeightLayout, WeightsProvenance, convert_weights,
    ensure_inception, import_torch_weights, load_inception, save_random_weights,
};
