//! Image datasets (work in progress on this branch).

pub mod error;
pub mod dataset;
pub mod idx;
mod pickle;
pub mod cifar10;
pub mod download;
pub mod folder;
mod seeding;
pub mod shapes;
pub mod loader;
