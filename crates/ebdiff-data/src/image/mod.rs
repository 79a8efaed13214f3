//! Image datasets for the paper's image experiments: MNIST, Fashion-MNIST, CIFAR-10, folders of
//! images and a procedural shapes dataset for composition, all loaded into one [`ImageDataset`]
//! of u8 CHW pixels and batched by a resumable [`ImageLoader`].

pub mod cifar10;
pub mod config;
pub mod dataset;
pub mod download;
pub mod error;
pub mod folder;
pub mod idx;
pub mod loader;

mod seeding;
pub mod shapes;

pub use cifar10::{
    CIFAR10_BINARY_MD5, CIFAR10_BINARY_URL, CIFAR10_CLASSES, SizeCheck, load_cifar10,
};
pub use config::ImageDataConfig;
pub use dataset::{ImageDataset, Split};
pub use download::{Remote, ensure_cifar10, extract_tar_gz, fetch};
pub use error::DataError;
pub use folder::load_image_folder;
pub use idx::{load_fashion_mnist, load_mnist};
pub use loader::{ImageBatch, ImageLoader, LoaderOptions};
pub use shapes::{ShapesConfig, generate, object_present, occupied_cells};
