//! The `[data]` section: a 2-D toy (`ring`, `blobs`, `rect`) or an image dataset (`mnist`,
//! `fashion-mnist`, `cifar10`, `image-folder`, `shapes`), chosen by `kind`, and the batch
//! sources that feed them to the training loop.

use crate::train::{Batch, BatchSource};
use ebdiff_data::Toy2dConfig;
use ebdiff_data::image::{DataError, ImageDataConfig, ImageDataset, ImageLoader, LoaderOptions};
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;

pub const TOY2D_KINDS: [&str; 3] = ["ring", "blobs", "rect"];
pub const IMAGE_KINDS: [&str; 5] = [
    "mnist",
    "fashion-mnist",
    "cifar10",
    "image-folder",
    "shapes",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DataConfig {
    Toy2d(Toy2dConfig),
    Image(ImageDataConfig),
}

impl<'de> Deserialize<'de> for DataConfig {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Dispatch on `kind` by hand: an untagged enum would hide the real error behind
        // "data did not match any variant".
        let value = toml::Value::deserialize(de)?;
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "missing `kind`: one of {}",
                    [&TOY2D_KINDS[..], &IMAGE_KINDS[..]].concat().join(", ")
                ))
            })?
            .to_string();
        let sub = |e: String| D::Error::custom(e);
        if TOY2D_KINDS.contains(&kind.as_str()) {
            serde_path_to_error::deserialize(value)
                .map(DataConfig::Toy2d)
                .map_err(|e| sub(path_message(e)))
        } else if IMAGE_KINDS.contains(&kind.as_str()) {
            serde_path_to_error::deserialize(value)
                .map(DataConfig::Image)
                .map_err(|e| sub(path_message(e)))
        } else {
            Err(D::Error::custom(format!(
                "unknown data kind `{kind}`, expected one of {}",
                [&TOY2D_KINDS[..], &IMAGE_KINDS[..]].concat().join(", ")
            )))
        }
    }
}

fn path_message(e: serde_path_to_error::Error<toml::de::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.into_inner().message().to_string();
    if path == "." || path.is_empty() {
        inner
    } else {
        format!("at {path}: {inner}")
    }
}

impl DataConfig {
    pub fn as_toy2d(&self) -> Option<&Toy2dConfig> {
        match self {
            DataConfig::Toy2d(t) => Some(t),
            DataConfig::Image(_) => None,
        }
    }
}

/// Images as training batches: `[B, C·H·W]` in [−1, 1], labels when the model is conditional.
pub struct ImageSource {
    pub loader: ImageLoader,
    pub conditional: bool,
}

impl ImageSource {
    /// Batches of `batch_size` drawn by seed (see `ImageLoader`: a pure function of the step).
    pub fn new(
        dataset: Arc<ImageDataset>,
        cfg: &ImageDataConfig,
        batch_size: usize,
        seed: u64,
        conditional: bool,
    ) -> Result<Self, DataError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let options = LoaderOptions {
            batch_size,
            seed,
            hflip: cfg.hflip(),
            threads,
        };
        Ok(ImageSource {
            loader: ImageLoader::new(dataset, options)?,
            conditional,
        })
    }
}

impl BatchSource for ImageSource {
    fn dim(&self) -> usize {
        self.loader.dataset().pixels_per_image()
    }
    fn batch(&self, step: u64, size: usize) -> Batch {
        assert_eq!(
            size,
            self.loader.options().batch_size,
            "loader built for another batch size"
        );
        let b = self.loader.batch(step);
        Batch {
            x: b.x,
            labels: self.conditional.then_some(b.labels),
        }
    }
}
