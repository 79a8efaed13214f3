//! `[data]` section for image datasets: where the images come from, and [`ImageDataConfig::build`]
//! to load them in the model's data shape.
//!
//! ```toml
//! [data]
//! kind = "mnist"          # mnist | fashion-mnist | cifar10 | image-folder | shapes
//! root = "datasets/mnist"
//! limit = 10000           # optional: only the first 10 000 images
//! ```

use super::cifar10::{SizeCheck, load_cifar10};
use super::dataset::{ImageDataset, Split};
use super::download::{Remote, ensure_cifar10};
use super::error::DataError;
use super::folder::load_image_folder;
use super::idx::{load_fashion_mnist, load_mnist};
use super::shapes::{ShapesConfig, generate};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ImageDataConfig {
    /// MNIST digits, 1×28×28, 10 classes; zero-padded (centred) to a larger model size.
    Mnist {
        /// Folder of the four IDX files (raw or `.gz`).
        #[serde(default = "default_mnist_root")]
        root: PathBuf,
        /// `train` (60 000 images) or `test` (10 000).
        #[serde(default)]
        split: Split,
        /// Mirror examples left–right at random when batching.
        #[serde(default)]
        hflip: bool,
        /// Use only the first `limit` images.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Fashion-MNIST, 1×28×28, 10 classes; same files and options as MNIST.
    FashionMnist {
        /// Folder of the four IDX files (raw or `.gz`).
        #[serde(default = "default_fashion_mnist_root")]
        root: PathBuf,
        /// `train` (60 000 images) or `test` (10 000).
        #[serde(default)]
        split: Split,
        /// Mirror examples left–right at random when batching.
        #[serde(default)]
        hflip: bool,
        /// Use only the first `limit` images.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// CIFAR-10, 3×32×32, 10 classes.
    Cifar10 {
        /// Folder that holds (or will hold) `cifar-10-batches-bin/` or `cifar-10-batches-py/`.
        #[serde(default = "default_cifar10_root")]
        root: PathBuf,
        /// `train` (50 000 images) or `test` (10 000).
        #[serde(default)]
        split: Split,
        /// Download and unpack the binary release into `root` when neither folder exists.
        #[serde(default = "default_true")]
        download: bool,
        /// Mirror examples left–right at random when batching (the usual CIFAR augmentation).
        #[serde(default)]
        hflip: bool,
        /// Use only the first `limit` images.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// `root/<class>/*.png|jpg|jpeg`, classes numbered by folder name, resized to the model size.
    ImageFolder {
        /// Folder holding one subfolder per class.
        root: PathBuf,
        /// Channels (1 or 3); must equal the model's if given (default: the model's).
        #[serde(default)]
        channels: Option<usize>,
        /// Side of the square images; must equal the model's if given (default: the model's).
        #[serde(default)]
        size: Option<usize>,
        /// Mirror examples left–right at random when batching.
        #[serde(default)]
        hflip: bool,
        /// Use only the first `limit` images (in class, then file-name order).
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Procedurally generated shapes in grid cells; one class per cell. No `hflip` (it would move
    /// objects to other cells than their labels) and no `limit` (set `count`).
    Shapes {
        /// Number of images to generate.
        count: usize,
        /// Seed of the generator; the same seed gives the same images.
        #[serde(default)]
        seed: u64,
        /// Layout and look, as a `[data.shapes]` table (every key has a default).
        #[serde(default)]
        shapes: ShapesConfig,
    },
}

fn default_mnist_root() -> PathBuf {
    "datasets/mnist".into()
}
fn default_fashion_mnist_root() -> PathBuf {
    "datasets/fashion-mnist".into()
}
fn default_cifar10_root() -> PathBuf {
    "datasets".into()
}
fn default_true() -> bool {
    true
}

impl ImageDataConfig {
    /// Whether the loader should flip examples at random.
    pub fn hflip(&self) -> bool {
        match self {
            Self::Mnist { hflip, .. }
            | Self::FashionMnist { hflip, .. }
            | Self::Cifar10 { hflip, .. }
            | Self::ImageFolder { hflip, .. } => *hflip,
            Self::Shapes { .. } => false,
        }
    }

    fn limit(&self) -> Option<usize> {
        match self {
            Self::Mnist { limit, .. }
            | Self::FashionMnist { limit, .. }
            | Self::Cifar10 { limit, .. }
            | Self::ImageFolder { limit, .. } => *limit,
            Self::Shapes { .. } => None,
        }
    }

    /// Loads (downloading CIFAR-10 if allowed and missing) and brings the images to
    /// `target = [C, H, W]`, the model's data shape: MNIST and CIFAR are channel-converted
    /// (1 ↔ 3) and zero-padded, image folders are resized, shapes must be generated at that size.
    pub fn build(
        &self,
        target: [usize; 3],
        show_progress: bool,
    ) -> Result<ImageDataset, DataError> {
        let [c, h, w] = target;
        let dataset = match self {
            Self::Mnist { root, split, .. } => load_mnist(root, *split)?,
            Self::FashionMnist { root, split, .. } => load_fashion_mnist(root, *split)?,
            Self::Cifar10 {
                root,
                split,
                download,
                ..
            } => {
                if *download {
                    ensure_cifar10(
                        root,
                        &Remote::cifar10_binary(),
                        *split,
                        SizeCheck::Strict,
                        show_progress,
                    )?
                } else {
                    load_cifar10(root, *split, SizeCheck::Strict)?
                }
            }
            Self::ImageFolder {
                root,
                channels,
                size,
                ..
            } => {
                let disagree = |key: &str| {
                    DataError::invalid(
                        format!("data.{key}"),
                        format!(
                            "image-folder is asked for data.channels × data.size² images but the \
                             model's data_shape is {target:?}: make them agree or leave \
                             data.{key} out (it defaults to the model's)"
                        ),
                    )
                };
                if channels.is_some_and(|given| given != c) {
                    return Err(disagree("channels"));
                }
                if size.is_some_and(|given| given != h || given != w) {
                    return Err(disagree("size"));
                }
                load_image_folder(root, c, h, w)?
            }
            Self::Shapes {
                count,
                seed,
                shapes,
            } => {
                if target != [3, shapes.size, shapes.size] {
                    return Err(DataError::invalid(
                        "data.shapes.size",
                        format!(
                            "shapes images are [3, {0}, {0}] but the model's data_shape is \
                             {target:?}: set data.shapes.size or model.data_shape so they agree",
                            shapes.size
                        ),
                    ));
                }
                generate(shapes, *count, *seed)?
            }
        };
        let dataset = match self.limit() {
            Some(n) if n == 0 || n > dataset.len() => {
                return Err(DataError::invalid(
                    "data.limit",
                    format!(
                        "must be between 1 and the {} images of the dataset (or left out), got {n}",
                        dataset.len()
                    ),
                ));
            }
            Some(n) => dataset.subset(..n)?,
            None => dataset,
        };
        let dataset = dataset.to_channels(c)?.pad_to(h, w)?;
        dataset.validate("data")?;
        Ok(dataset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::Path;

    fn parse(s: &str) -> ImageDataConfig {
        toml::from_str(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A 28×28 MNIST-format split of 3 images whose pixels are all 200.
    fn write_tiny_mnist(dir: &Path) {
        let mut images = Vec::new();
        for v in [2051u32, 3, 28, 28] {
            images.extend_from_slice(&v.to_be_bytes());
        }
        images.extend(std::iter::repeat_n(200u8, 3 * 784));
        std::fs::write(dir.join("train-images-idx3-ubyte"), images).unwrap();
        let mut labels = Vec::new();
        for v in [2049u32, 3] {
            labels.extend_from_slice(&v.to_be_bytes());
        }
        labels.extend_from_slice(&[4, 1, 9]);
        std::fs::File::create(dir.join("train-labels-idx1-ubyte"))
            .unwrap()
            .write_all(&labels)
            .unwrap();
    }

    #[test]
    fn every_kind_parses_with_its_defaults() {
        assert_eq!(
            parse("kind = \"mnist\""),
            ImageDataConfig::Mnist {
                root: "datasets/mnist".into(),
                split: Split::Train,
                hflip: false,
                limit: None
            }
        );
        assert_eq!(
            parse("kind = \"fashion-mnist\"\nsplit = \"test\""),
            ImageDataConfig::FashionMnist {
                root: "datasets/fashion-mnist".into(),
                split: Split::Test,
                hflip: false,
                limit: None
            }
        );
        let cifar = parse("kind = \"cifar10\"\nhflip = true");
        assert_eq!(
            cifar,
            ImageDataConfig::Cifar10 {
                root: "datasets".into(),
                split: Split::Train,
                download: true,
                hflip: true,
                limit: None
            }
        );
        assert!(cifar.hflip());
        assert!(matches!(
            parse("kind = \"image-folder\"\nroot = \"faces\"\nsize = 64"),
            ImageDataConfig::ImageFolder {
                size: Some(64),
                channels: None,
                ..
            }
        ));
        let shapes = parse("kind = \"shapes\"\ncount = 100\n[shapes]\ngrid = 8\nsize = 64");
        let ImageDataConfig::Shapes {
            count,
            seed,
            shapes,
        } = shapes
        else {
            panic!("{shapes:?}")
        };
        assert_eq!(
            (count, seed, shapes.grid, shapes.size, shapes.max_objects),
            (100, 0, 8, 64, 3)
        );
    }

    #[test]
    fn unknown_keys_and_kinds_are_rejected() {
        for bad in [
            "kind = \"mnist\"\nroots = \"x\"",
            "kind = \"cifar100\"",
            "kind = \"shapes\"\ncount = 1\nhflip = true",
            "kind = \"shapes\"\ncount = 1\n[shapes]\ncolors = 3",
        ] {
            assert!(toml::from_str::<ImageDataConfig>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mnist_is_padded_to_the_model_size_and_limited() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_mnist(dir.path());
        let cfg = ImageDataConfig::Mnist {
            root: dir.path().into(),
            split: Split::Train,
            hflip: false,
            limit: Some(2),
        };
        let d = cfg.build([3, 32, 32], false).unwrap();
        assert_eq!(
            (d.len(), d.shape(), d.labels.clone()),
            (2, [3, 32, 32], vec![4, 1])
        );
        // Row 2 of each plane is the first image row: 2 zeros, 28 × 200, 2 zeros.
        let row = &d.image(1)[2 * 32 + 1024..3 * 32 + 1024];
        assert_eq!((row[1], row[2], row[29], row[30]), (0, 200, 200, 0));
        assert_eq!(d.image(0)[..64], [0; 64]);

        let err = cfg.build([1, 16, 16], false).unwrap_err().to_string();
        assert!(err.contains("28×28") && err.contains("16×16"), "{err}");
        let too_many = ImageDataConfig::Mnist {
            root: dir.path().into(),
            split: Split::Train,
            hflip: false,
            limit: Some(4),
        };
        let err = too_many.build([1, 28, 28], false).unwrap_err().to_string();
        assert!(
            err.starts_with("data.limit") && err.contains("the 3 images"),
            "{err}"
        );
    }

    #[test]
    fn missing_mnist_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = parse(&format!("kind = \"mnist\"\nroot = {:?}", dir.path()));
        let err = cfg.build([1, 28, 28], false).unwrap_err().to_string();
        assert!(err.contains("train-images-idx3-ubyte not found"), "{err}");
        assert!(err.contains("cargo xtask fetch mnist"), "{err}");
    }

    #[test]
    fn cifar10_without_download_points_to_the_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = parse(&format!(
            "kind = \"cifar10\"\ndownload = false\nroot = {:?}",
            dir.path()
        ));
        let err = cfg.build([3, 32, 32], false).unwrap_err().to_string();
        assert!(err.contains("cargo xtask fetch cifar10"), "{err}");
    }

    #[test]
    fn shapes_must_match_the_model_shape() {
        let cfg = parse("kind = \"shapes\"\ncount = 3\nseed = 5");
        let d = cfg.build([3, 32, 32], false).unwrap();
        assert_eq!((d.len(), d.num_classes), (3, 16));
        let err = cfg.build([3, 64, 64], false).unwrap_err().to_string();
        assert!(err.starts_with("data.shapes.size"), "{err}");
    }

    #[test]
    fn image_folder_keys_must_agree_with_the_model() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("a")).unwrap();
        ::image::RgbImage::from_pixel(5, 7, ::image::Rgb([9, 9, 9]))
            .save(root.path().join("a/x.png"))
            .unwrap();
        let cfg = parse(&format!(
            "kind = \"image-folder\"\nroot = {:?}\nsize = 8",
            root.path()
        ));
        let d = cfg.build([1, 8, 8], false).unwrap();
        assert_eq!(d.shape(), [1, 8, 8]);
        assert_eq!(d.image(0), &[9; 64]);
        let err = cfg.build([1, 16, 16], false).unwrap_err().to_string();
        assert!(err.starts_with("data.size"), "{err}");
    }
}
