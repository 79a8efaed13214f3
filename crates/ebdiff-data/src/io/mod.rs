//! The array and object files of ebdiff, read and written in one place:
//! - [`npy`]: numpy `.npy` arrays (the sweep's and `cargo xtask sample`'s `samples.npy`);
//! - [`npz`]: zips of `.npy` arrays (FID statistics, feature shards, test fixtures);
//! - [`pickle`]: a pickle reader that executes nothing (CIFAR-10 python batches, PyTorch files).

pub mod npy;
pub mod npz;
pub mod pickle;
